// Command goclient is the Go HTTP client of the apiwarden end-to-end tests.
// It speaks HTTP/1.1 over raw TCP so tests control the wire exactly:
// keep-alive sequences, pipelined batches, large bodies written in many
// small writes, garbage, half-open and idle connections. It reads a JSON job
// from the file named by its first argument and prints a JSON result.
package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

// Request is one HTTP request of a job.
type Request struct {
	Method   string            `json:"method"`
	Target   string            `json:"target"` // path and query
	Headers  map[string]string `json:"headers,omitempty"`
	Body     string            `json:"body,omitempty"`
	BodySize int               `json:"bodySize,omitempty"` // synthetic body of this many bytes
	Chunked  bool              `json:"chunked,omitempty"`
}

// Raw is one connection carrying arbitrary bytes.
type Raw struct {
	Data       []byte `json:"data"`
	CloseWrite bool   `json:"closeWrite,omitempty"` // half-close after writing
	NoRead     bool   `json:"noRead,omitempty"`     // leave the connection half-open, unread
}

// Job is the whole input.
type Job struct {
	Mode     string        `json:"mode"` // keepalive | pipeline | raw | idle
	Addr     string        `json:"addr"`
	Requests []Request     `json:"requests,omitempty"`
	Raws     []Raw         `json:"raws,omitempty"`
	Idle     int           `json:"idle,omitempty"`
	Hold     time.Duration `json:"hold,omitempty"`
	// CAFile, when set, makes keepalive and pipeline jobs speak TLS,
	// trusting this CA (PEM) and offering only HTTP/1.1.
	CAFile string `json:"caFile,omitempty"`
}

// Result is the output.
type Result struct {
	Statuses  []int    `json:"statuses,omitempty"`
	BodyBytes []int    `json:"bodyBytes,omitempty"`
	Raw       []string `json:"raw,omitempty"`
	Opened    int      `json:"opened,omitempty"`
	Error     string   `json:"error,omitempty"`
}

const writeSize = 4096 // many small writes, so large bodies span many segments

func body(r Request) []byte {
	if r.BodySize == 0 {
		return []byte(r.Body)
	}
	b := bytes.Repeat([]byte("a"), r.BodySize)
	if r.BodySize >= 12 {
		copy(b, `{"blob":"`)
		copy(b[len(b)-2:], `"}`)
	}
	return b
}

func encode(r Request, host string) []byte {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: awe2e-goclient\r\n", r.Method, r.Target, host)
	for k, v := range r.Headers {
		fmt.Fprintf(&buf, "%s: %s\r\n", k, v)
	}
	b := body(r)
	switch {
	case r.Chunked:
		buf.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		for len(b) > 0 {
			n := min(len(b), 16384)
			fmt.Fprintf(&buf, "%x\r\n", n)
			buf.Write(b[:n])
			buf.WriteString("\r\n")
			b = b[n:]
		}
		buf.WriteString("0\r\n\r\n")
	case len(b) > 0 || r.Method == "POST" || r.Method == "PUT":
		fmt.Fprintf(&buf, "Content-Length: %d\r\n\r\n", len(b))
		buf.Write(b)
	default:
		buf.WriteString("\r\n")
	}
	return buf.Bytes()
}

func writeAll(c net.Conn, b []byte) error {
	for len(b) > 0 {
		n := min(len(b), writeSize)
		if _, err := c.Write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func readResp(br *bufio.Reader, method string, res *Result) error {
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	res.Statuses = append(res.Statuses, resp.StatusCode)
	res.BodyBytes = append(res.BodyBytes, int(n))
	return nil
}

func run(job Job) (res Result, err error) {
	switch job.Mode {
	case "keepalive", "pipeline":
		c, err := dial(job)
		if err != nil {
			return res, err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		br := bufio.NewReader(c)
		if job.Mode == "pipeline" {
			// All requests in one write, so several requests share a segment.
			var all []byte
			for _, r := range job.Requests {
				all = append(all, encode(r, job.Addr)...)
			}
			if _, err := c.Write(all); err != nil {
				return res, err
			}
			for _, r := range job.Requests {
				if err := readResp(br, r.Method, &res); err != nil {
					return res, err
				}
			}
			return res, nil
		}
		for _, r := range job.Requests {
			if err := writeAll(c, encode(r, job.Addr)); err != nil {
				return res, err
			}
			if err := readResp(br, r.Method, &res); err != nil {
				return res, err
			}
		}
		return res, nil
	case "raw":
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for _, r := range job.Raws {
			c, err := net.DialTimeout("tcp", job.Addr, 5*time.Second)
			if err != nil {
				return res, err
			}
			if _, err := c.Write(r.Data); err != nil {
				c.Close()
				return res, err
			}
			if r.NoRead {
				held = append(held, c)
				res.Raw = append(res.Raw, "")
				continue
			}
			if r.CloseWrite {
				_ = c.(*net.TCPConn).CloseWrite()
			}
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			b, _ := io.ReadAll(c)
			c.Close()
			res.Raw = append(res.Raw, string(b))
		}
		time.Sleep(job.Hold)
		return res, nil
	case "idle":
		conns := make([]net.Conn, 0, job.Idle)
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for i := 0; i < job.Idle; i++ {
			c, err := net.DialTimeout("tcp", job.Addr, 5*time.Second)
			if err != nil {
				return res, fmt.Errorf("idle conn %d: %w", i, err)
			}
			conns = append(conns, c)
			res.Opened++
		}
		time.Sleep(job.Hold)
		return res, nil
	}
	return res, fmt.Errorf("unknown mode %q", job.Mode)
}

// dial opens the job's connection: plain TCP, or TLS when CAFile is set.
func dial(job Job) (net.Conn, error) {
	if job.CAFile == "" {
		return net.DialTimeout("tcp", job.Addr, 5*time.Second)
	}
	pem, err := os.ReadFile(job.CAFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificate in %s", job.CAFile)
	}
	host, _, err := net.SplitHostPort(job.Addr)
	if err != nil {
		return nil, err
	}
	d := &net.Dialer{Timeout: 5 * time.Second}
	return tls.DialWithDialer(d, "tcp", job.Addr, &tls.Config{RootCAs: pool, ServerName: host, NextProtos: []string{"http/1.1"}})
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: goclient JOB.json")
		os.Exit(2)
	}
	b, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var job Job
	if err := json.Unmarshal(b, &job); err != nil {
		fmt.Fprintln(os.Stderr, "job:", err)
		os.Exit(2)
	}
	res, err := run(job)
	if err != nil {
		res.Error = err.Error()
	}
	_ = json.NewEncoder(os.Stdout).Encode(res)
	if err != nil {
		os.Exit(1)
	}
}

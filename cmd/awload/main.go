// Command awload is apiwarden's HTTP/1.1 load generator for benchmarks. It
// runs either closed-loop (each connection sends its next request when the
// last answer arrived: saturation throughput) or open-loop at a fixed rate,
// where every request has a scheduled send time and its latency is measured
// from that time, so a stalled server is charged for the requests it delayed
// (no coordinated omission). Latencies go into an HDR histogram; the result
// is printed as JSON.
package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram range: 1 µs to 60 s at 3 significant digits.
const (
	histMinUs = 1
	histMaxUs = 60_000_000
	histSig   = 3
	// maxRespHeader bounds a response header block; larger is an error.
	maxRespHeader = 64 << 10
)

// Result is the JSON output.
type Result struct {
	Mode     string  `json:"mode"` // closed | open
	Conns    int     `json:"conns"`
	Rate     float64 `json:"rate,omitempty"`
	Seconds  float64 `json:"seconds"`
	Requests int64   `json:"requests"`
	Errors   int64   `json:"errors"`
	Missed   int64   `json:"missed"` // open loop: scheduled but not sent before the end
	RPS      float64 `json:"rps"`
	P50Us    int64   `json:"p50_us"`
	P90Us    int64   `json:"p90_us"`
	P99Us    int64   `json:"p99_us"`
	P999Us   int64   `json:"p999_us"`
	MaxUs    int64   `json:"max_us"`
	// Service time from the actual send, ignoring generator lateness; equal
	// to the above in closed loop.
	SvcP50Us  int64  `json:"svc_p50_us"`
	SvcP99Us  int64  `json:"svc_p99_us"`
	LateP50Us int64  `json:"late_p50_us"` // open loop: how late sends left vs schedule
	FirstErr  string `json:"first_error,omitempty"`
}

type config struct {
	addr     string
	path     string
	host     string
	conns    int
	duration time.Duration
	rate     float64
	timeout  time.Duration
	// newConn opens a new connection for every request (Connection:
	// close; the server closes first, so the client keeps no TIME_WAIT)
	// instead of reusing keep-alive connections. Latency includes the
	// TCP handshake.
	newConn bool
	// tlsConf, when set, speaks HTTPS: every connection is a TLS client
	// session (resumed from a shared cache with -new-conn, as browsers
	// and SDKs do).
	tlsConf *tls.Config
}

type worker struct {
	hist     *hdrhistogram.Histogram
	svc      *hdrhistogram.Histogram
	late     *hdrhistogram.Histogram
	requests int64
	errors   int64
	missed   int64
	firstErr error
}

// conn is one keep-alive connection with a reusable request.
type conn struct {
	c   net.Conn
	br  *bufio.Reader
	req []byte
	cfg *config
}

func (w *worker) dial(cfg *config) (*conn, error) {
	c, err := net.DialTimeout("tcp", cfg.addr, cfg.timeout)
	if err != nil {
		return nil, err
	}
	if cfg.tlsConf != nil {
		tc := tls.Client(c, cfg.tlsConf)
		_ = tc.SetDeadline(time.Now().Add(cfg.timeout))
		if err := tc.Handshake(); err != nil {
			c.Close()
			return nil, fmt.Errorf("tls handshake: %w", err)
		}
		c = tc
	}
	closeHdr := ""
	if cfg.newConn {
		closeHdr = "Connection: close\r\n"
	}
	req := fmt.Appendf(nil, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: awload\r\n%s\r\n", cfg.path, cfg.host, closeHdr)
	return &conn{c: c, br: bufio.NewReaderSize(c, 32<<10), req: req, cfg: cfg}, nil
}

// roundTrip sends one request and reads one Content-Length response.
func (c *conn) roundTrip() error {
	_ = c.c.SetDeadline(time.Now().Add(c.cfg.timeout))
	if _, err := c.c.Write(c.req); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	length := -1
	status := 0
	hdrBytes := 0
	for {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			return fmt.Errorf("read header: %w", err)
		}
		hdrBytes += len(line)
		if hdrBytes > maxRespHeader {
			return errors.New("response header too large")
		}
		line = bytes.TrimRight(line, "\r\n")
		if status == 0 {
			f := bytes.Fields(line)
			if len(f) < 2 {
				return fmt.Errorf("bad status line %q", line)
			}
			status, _ = strconv.Atoi(string(f[1]))
			continue
		}
		if len(line) == 0 {
			break
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if ok && bytes.EqualFold(bytes.TrimSpace(k), []byte("content-length")) {
			length, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
		} else if ok && bytes.EqualFold(bytes.TrimSpace(k), []byte("transfer-encoding")) {
			return errors.New("chunked responses are not supported")
		}
	}
	if status == 204 || status == 304 {
		length = 0
	}
	if length < 0 {
		return errors.New("response without Content-Length")
	}
	if _, err := c.br.Discard(length); err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	if status >= 400 {
		return fmt.Errorf("status %d", status)
	}
	return nil
}

func (w *worker) fail(err error) {
	w.errors++
	if w.firstErr == nil {
		w.firstErr = err
	}
}

// one sends one request on *c, dialing when there is none; with newConn
// every request gets its own connection, closed after the server's FIN.
// It returns when the response was complete (before that wait); dialErr
// reports that the request failed before it was sent.
func (w *worker) one(cfg *config, c **conn) (done time.Time, dialErr bool, err error) {
	if *c == nil {
		if *c, err = w.dial(cfg); err != nil {
			*c = nil
			return time.Time{}, true, err
		}
	}
	err = (*c).roundTrip()
	done = time.Now()
	if err != nil || cfg.newConn {
		if err == nil {
			(*c).drain()
		}
		(*c).c.Close()
		*c = nil
	}
	return done, false, err
}

// drain waits for the server to close (it was asked to), so the server
// side is the active closer and holds the TIME_WAIT.
func (c *conn) drain() {
	_ = c.c.SetReadDeadline(time.Now().Add(c.cfg.timeout))
	_, _ = c.br.Discard(1 << 20)
}

// closedLoop sends back-to-back until end.
func (w *worker) closedLoop(cfg *config, end time.Time) {
	var c *conn
	defer func() {
		if c != nil {
			c.c.Close()
		}
	}()
	for time.Now().Before(end) {
		t0 := time.Now()
		done, dialErr, err := w.one(cfg, &c)
		if err != nil {
			w.fail(err)
			if dialErr {
				if !cfg.newConn {
					return
				}
				time.Sleep(time.Millisecond)
			}
			continue
		}
		us := max(done.Sub(t0).Microseconds(), histMinUs)
		_ = w.hist.RecordValue(us)
		_ = w.svc.RecordValue(us)
		w.requests++
	}
}

// openLoop sends request i of this worker at start + (idx + i*conns)/rate and
// records completion minus that scheduled time.
func (w *worker) openLoop(cfg *config, idx int, start, end time.Time) {
	var c *conn
	defer func() {
		if c != nil {
			c.c.Close()
		}
	}()
	if !cfg.newConn {
		var err error
		if c, err = w.dial(cfg); err != nil {
			w.fail(err)
			return
		}
	}
	interval := time.Duration(float64(time.Second) * float64(cfg.conns) / cfg.rate)
	sched := start.Add(time.Duration(float64(time.Second) * float64(idx) / cfg.rate))
	for ; sched.Before(end); sched = sched.Add(interval) {
		if d := time.Until(sched); d > 0 {
			time.Sleep(d)
		} else if time.Now().After(end) {
			// Behind schedule at the end of the run: these were never
			// sent (the sends at sched, sched+interval, ... before end).
			w.missed += missedBefore(sched, end, interval)
			return
		}
		sent := time.Now()
		_ = w.late.RecordValue(min(max(sent.Sub(sched).Microseconds(), histMinUs), histMaxUs))
		now, dialErr, err := w.one(cfg, &c)
		if err != nil {
			w.fail(err)
			if dialErr && !cfg.newConn {
				return
			}
			continue
		}
		_ = w.hist.RecordValue(min(max(now.Sub(sched).Microseconds(), histMinUs), histMaxUs))
		_ = w.svc.RecordValue(min(max(now.Sub(sent).Microseconds(), histMinUs), histMaxUs))
		w.requests++
	}
}

// missedBefore counts the schedule points sched + k*interval (k >= 0)
// before end.
func missedBefore(sched, end time.Time, interval time.Duration) int64 {
	if !sched.Before(end) || interval <= 0 {
		return 0
	}
	d := end.Sub(sched)
	return int64((d + interval - 1) / interval)
}

func run(cfg config) Result {
	workers := make([]*worker, cfg.conns)
	start := time.Now().Add(20 * time.Millisecond)
	end := start.Add(cfg.duration)
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{hist: hdrhistogram.New(histMinUs, histMaxUs, histSig),
			svc:  hdrhistogram.New(histMinUs, histMaxUs, histSig),
			late: hdrhistogram.New(histMinUs, histMaxUs, histSig)}
		workers[i] = w
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if cfg.rate > 0 {
				w.openLoop(&cfg, i, start, end)
			} else {
				time.Sleep(time.Until(start))
				w.closedLoop(&cfg, end)
			}
		}(i)
	}
	wg.Wait()
	elapsed := time.Since(start)
	h := hdrhistogram.New(histMinUs, histMaxUs, histSig)
	svc := hdrhistogram.New(histMinUs, histMaxUs, histSig)
	late := hdrhistogram.New(histMinUs, histMaxUs, histSig)
	res := Result{Mode: "closed", Conns: cfg.conns, Rate: cfg.rate, Seconds: elapsed.Seconds()}
	if cfg.rate > 0 {
		res.Mode = "open"
	}
	for _, w := range workers {
		h.Merge(w.hist)
		svc.Merge(w.svc)
		late.Merge(w.late)
		res.Requests += w.requests
		res.Errors += w.errors
		res.Missed += w.missed
		if w.firstErr != nil && res.FirstErr == "" {
			res.FirstErr = w.firstErr.Error()
		}
	}
	res.RPS = float64(res.Requests) / elapsed.Seconds()
	res.P50Us = h.ValueAtQuantile(50)
	res.P90Us = h.ValueAtQuantile(90)
	res.P99Us = h.ValueAtQuantile(99)
	res.P999Us = h.ValueAtQuantile(99.9)
	res.MaxUs = h.Max()
	res.SvcP50Us = svc.ValueAtQuantile(50)
	res.SvcP99Us = svc.ValueAtQuantile(99)
	res.LateP50Us = late.ValueAtQuantile(50)
	return res
}

func main() {
	var cfg config
	flag.StringVar(&cfg.addr, "addr", "127.0.0.1:8080", "server host:port")
	flag.StringVar(&cfg.path, "path", "/", "request path")
	flag.StringVar(&cfg.host, "host", "", "Host header (default: addr)")
	flag.IntVar(&cfg.conns, "conns", 16, "keep-alive connections")
	flag.DurationVar(&cfg.duration, "duration", 5*time.Second, "measurement time")
	flag.Float64Var(&cfg.rate, "rate", 0, "requests per second over all connections; 0 = closed loop (saturation)")
	flag.DurationVar(&cfg.timeout, "timeout", 5*time.Second, "per-request timeout")
	flag.BoolVar(&cfg.newConn, "new-conn", false, "a new TCP connection for every request (Connection: close) instead of keep-alive")
	caFile := flag.String("cacert", "", "speak HTTPS, trusting the CA certificate(s) in this PEM file")
	flag.Parse()
	if *caFile != "" {
		conf, err := tlsConfig(*caFile, cfg.addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, "awload:", err)
			os.Exit(2)
		}
		cfg.tlsConf = conf
	}
	if cfg.host == "" {
		cfg.host = cfg.addr
	}
	if cfg.conns < 1 {
		fmt.Fprintln(os.Stderr, "awload: -conns must be >= 1")
		os.Exit(2)
	}
	res := run(cfg)
	enc := json.NewEncoder(os.Stdout)
	_ = enc.Encode(res)
	if res.Requests == 0 {
		os.Exit(1)
	}
}

// tlsConfig trusts the CAs of caFile and verifies the server as the host
// part of addr (an IP in the benchmarks' certificates).
func tlsConfig(caFile, addr string) (*tls.Config, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate", caFile)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("-addr: %w", err)
	}
	return &tls.Config{RootCAs: pool, ServerName: host, NextProtos: []string{"http/1.1"},
		ClientSessionCache: tls.NewLRUClientSessionCache(256)}, nil
}

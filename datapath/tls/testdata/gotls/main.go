// Command gotls is the Go crypto/tls test peer of datapath/tls: an HTTPS
// server answering GET /size/N with N bytes, or a client fetching one URL
// (optionally a number of times, for the probe-cost benchmark).
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strconv"
	"strings"
)

func main() {
	mode := flag.String("mode", "server", "server or client")
	addr := flag.String("addr", "127.0.0.1:8443", "listen address (server)")
	cert := flag.String("cert", "", "certificate PEM (server)")
	key := flag.String("key", "", "key PEM (server)")
	url := flag.String("url", "", "URL to fetch (client)")
	n := flag.Int("n", 1, "requests (client)")
	maxVer := flag.String("tls", "1.3", "highest TLS version: 1.2 or 1.3")
	flag.Parse()
	ver := uint16(tls.VersionTLS13)
	if *maxVer == "1.2" {
		ver = tls.VersionTLS12
	}
	switch *mode {
	case "server":
		srv := &http.Server{
			Addr:      *addr,
			TLSConfig: &tls.Config{MaxVersion: ver},
			// HTTP/1.1 only: the test compares plaintext bytes.
			TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				size := 5
				if s, ok := strings.CutPrefix(r.URL.Path, "/size/"); ok {
					size, _ = strconv.Atoi(s)
				}
				body := strings.Repeat("0123456789abcdef", size/16+1)[:size]
				w.Header().Set("Content-Length", strconv.Itoa(size))
				io.WriteString(w, body)
			}),
		}
		log.Fatal(srv.ListenAndServeTLS(*cert, *key))
	case "client":
		tr := &http.Transport{
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true, MaxVersion: ver},
			ForceAttemptHTTP2: false,
			TLSNextProto:      map[string]func(string, *tls.Conn) http.RoundTripper{},
		}
		c := &http.Client{Transport: tr}
		for i := 0; i < *n; i++ {
			resp, err := c.Get(*url)
			if err != nil {
				log.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				log.Fatal(err)
			}
			if i == *n-1 {
				os.Stdout.Write(b)
			}
		}
	default:
		fmt.Fprintln(os.Stderr, "unknown mode")
		os.Exit(2)
	}
}

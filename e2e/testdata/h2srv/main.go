// Command h2srv is the HTTP/2 test server of the e2e tests: a grpc-go
// server with the health service (plaintext), a Go h2c server and a Go
// net/http server with h2 over TLS (ALPN), each on its own port. With
// -check ADDR it is instead a grpc-go client calling Health/Check.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

func main() {
	grpcAddr := flag.String("grpc", "", "grpc-go health server address")
	grpcTLSAddr := flag.String("grpc-tls", "", "grpc-go health server address, TLS")
	useTLS := flag.Bool("tls-client", false, "client: speak TLS (certificate not verified)")
	h2cAddr := flag.String("h2c", "", "h2c server address")
	tlsAddr := flag.String("tls", "", "h2 over TLS server address")
	reqLog := flag.String("reqlog", "", "append \"PROTO PATH\" of every HTTP request the handler runs for to this file")
	check := flag.String("check", "", "client: call grpc.health.v1.Health/Check on this address")
	n := flag.Int("n", 1, "client: Check calls for service svc.A (SERVING)")
	unknown := flag.Int("unknown", 0, "client: Check calls for an unknown service (NOT_FOUND)")
	wait := flag.String("wait", "", "client: after the calls, wait for this file, then call again (same connection)")
	again := flag.Int("again", 0, "client: Check calls after -wait")
	unknownName := flag.String("unknown-name", "svc.unknown", "client: the service name of the -unknown calls")
	stream := flag.String("stream", "", "client: call test.v1.Echo's streaming methods on this address")
	flag.Parse()
	if *stream != "" {
		cc := dial(*stream, *useTLS)
		defer cc.Close()
		streamClient(cc)
		return
	}
	if *check != "" {
		client(*check, *useTLS, *n, *unknown, *unknownName, *wait, *again)
		return
	}
	cert := selfSigned()
	for _, g := range []struct {
		addr string
		tls  bool
	}{{*grpcAddr, false}, {*grpcTLSAddr, true}} {
		if g.addr == "" {
			continue
		}
		l, err := net.Listen("tcp", g.addr)
		if err != nil {
			log.Fatal(err)
		}
		var opts []grpc.ServerOption
		if g.tls {
			opts = append(opts, grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}})))
		}
		s := grpc.NewServer(opts...)
		hs := health.NewServer()
		hs.SetServingStatus("svc.A", healthpb.HealthCheckResponse_SERVING)
		healthpb.RegisterHealthServer(s, hs)
		s.RegisterService(&echoService, struct{}{})
		go func() { log.Fatal(s.Serve(l)) }()
	}
	mux := http.NewServeMux()
	var logf *os.File
	if *reqLog != "" {
		f, err := os.OpenFile(*reqLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			log.Fatal(err)
		}
		logf = f
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if logf != nil {
			// Written before anything else: the protect test asserts no
			// line for a request it cut.
			fmt.Fprintf(logf, "%s %s\n", r.Proto, r.URL.Path)
		}
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"proto":%q,"path":%q,"n":%d}`, r.Proto, r.URL.Path, len(b))
	})
	if *h2cAddr != "" {
		var p http.Protocols
		p.SetUnencryptedHTTP2(true)
		p.SetHTTP1(true)
		srv := &http.Server{Addr: *h2cAddr, Handler: mux, Protocols: &p}
		go func() { log.Fatal(srv.ListenAndServe()) }()
	}
	if *tlsAddr != "" {
		srv := &http.Server{Addr: *tlsAddr, Handler: mux, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
		go func() { log.Fatal(srv.ListenAndServeTLS("", "")) }()
	}
	select {}
}

func client(addr string, useTLS bool, n, unknown int, unknownName, wait string, again int) {
	cc := dial(addr, useTLS)
	defer cc.Close()
	hc := healthpb.NewHealthClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	codes := map[string]int{}
	for i := 0; i < n+unknown; i++ {
		svc := "svc.A"
		if i >= n {
			svc = unknownName
		}
		_, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		codes[status.Code(err).String()]++
	}
	if wait != "" {
		fmt.Fprintln(os.Stderr, "waiting for", wait)
		for {
			if _, err := os.Stat(wait); err == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		for i := 0; i < again; i++ {
			_, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "svc.A"})
			codes["again-"+status.Code(err).String()]++
		}
	}
	json.NewEncoder(os.Stdout).Encode(codes)
}

// dial opens a gRPC client connection; with useTLS the server certificate
// is not verified (h2srv's is self-signed).
func dial(addr string, useTLS bool) *grpc.ClientConn {
	creds := insecure.NewCredentials()
	if useTLS {
		creds = credentials.NewTLS(&tls.Config{InsecureSkipVerify: true})
	}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		log.Fatal(err)
	}
	return cc
}

func selfSigned() tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "h2srv"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"h2srv"}, IPAddresses: []net.IP{net.IPv4zero}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		log.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

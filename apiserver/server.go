// Package apiserver serves apiwarden's control API on one TCP port: gRPC,
// the same API as REST/JSON through grpc-gateway, Prometheus /metrics and
// /healthz.
//
// One port for everything is done with HTTP/2 cleartext (h2c, prior
// knowledge) in net/http: gRPC clients speak HTTP/2 without TLS, curl and
// browsers speak HTTP/1.1, and a request is routed by its protocol and
// content type. This keeps a single http.Server with one shutdown path,
// where cmux would need two servers sniffing the first bytes. The price is
// grpc-go's ServeHTTP transport, which is slower than its native one; for
// an admin API that is irrelevant.
package apiserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/reflection"
	"google.golang.org/protobuf/encoding/protojson"

	apiwardenv1 "github.com/apiwarden/apiwarden/api/apiwarden/v1"
)

// Limits of one API request.
const (
	// MaxRequestBytes bounds a REST body and a gRPC message. Requests are
	// tiny (a prefix and a reason); anything larger is a mistake or abuse.
	MaxRequestBytes = 1 << 20
	// DefaultShutdownTimeout is how long Serve waits for requests in
	// flight after its context ends before closing connections.
	DefaultShutdownTimeout = 5 * time.Second
	// readHeaderTimeout drops clients that open a connection and stall.
	readHeaderTimeout = 10 * time.Second
)

// Config configures a Server.
type Config struct {
	// Version is reported by GetStatus when the backend leaves it empty.
	Version string
	// ShutdownTimeout overrides DefaultShutdownTimeout when positive.
	ShutdownTimeout time.Duration
	// Pprof serves Go's profiler under /debug/pprof/ (for measuring the
	// agent's own cost; the API listens on loopback by default).
	Pprof bool
	// Token, when set, is the bearer token every request needs (gRPC
	// metadata "authorization", REST header Authorization), except
	// /healthz and, with PublicMetrics, /metrics. CheckExposure says when
	// it is required.
	Token         string
	PublicMetrics bool
}

// Server is the API server. Create it with New, run it with Serve.
type Server struct {
	cfg     Config
	log     *slog.Logger
	grpc    *grpc.Server
	handler http.Handler
}

// New builds the gRPC service, the REST gateway and the HTTP routes. reg
// receives the API's own metrics and is what /metrics serves; nil means a
// private registry.
func New(cfg Config, backend Backend, reg *prometheus.Registry, log *slog.Logger) *Server {
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = DefaultShutdownTimeout
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "apiserver")
	m := newMetrics(reg)
	svc := &service{backend: backend, version: cfg.Version, metrics: m}

	auth := newAuthenticator(cfg.Token, m.unauthenticated)
	unary := []grpc.UnaryServerInterceptor{m.unaryInterceptor}
	var stream []grpc.StreamServerInterceptor
	if auth != nil {
		// After the metrics interceptor, so refused calls are counted there
		// too (code Unauthenticated).
		unary = append(unary, auth.unary)
		stream = append(stream, auth.stream)
	}
	gs := grpc.NewServer(
		grpc.MaxRecvMsgSize(MaxRequestBytes),
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
	)
	apiwardenv1.RegisterApiwardenServer(gs, svc)
	// Reflection lets grpcurl and similar tools work without the proto.
	reflection.Register(gs)

	// EmitUnpopulated: zero counts and empty maps appear in the JSON, so
	// clients see a stable shape ("statusCodes": {} rather than nothing).
	jsonpb := &runtime.JSONPb{
		MarshalOptions:   protojson.MarshalOptions{EmitUnpopulated: true},
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: true},
	}
	gw := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.HTTPBodyMarshaler{Marshaler: jsonpb}),
		runtime.WithMiddlewares(m.restMiddleware),
		// DELETE /v1/blocklist must not match /v1/blocklist/{prefix=**}
		// with an empty prefix, or the ?prefix= query form would be lost.
		runtime.WithStrictDeepWildcardMatching(),
	)
	// In-process registration: REST calls reach svc directly, no loopback
	// gRPC hop. It only fails for streaming methods, which we do not have.
	if err := apiwardenv1.RegisterApiwardenHandlerServer(context.Background(), gw, svc); err != nil {
		panic(fmt.Sprintf("apiserver: register gateway: %v", err))
	}

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok"))
	})
	if cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	doc := openAPIDocument(auth != nil)
	mux.HandleFunc("GET "+OpenAPIPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(doc)
	})
	mux.Handle("/", http.MaxBytesHandler(gw, MaxRequestBytes))

	var rest http.Handler = mux
	if auth != nil {
		rest = auth.http(mux, func(r *http.Request) bool {
			return r.URL.Path == "/healthz" || (cfg.PublicMetrics && r.URL.Path == "/metrics")
		})
	}
	s := &Server{cfg: cfg, log: log, grpc: gs}
	s.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			gs.ServeHTTP(w, r)
			return
		}
		rest.ServeHTTP(w, r)
	})
	return s
}

// Handler returns the combined handler (gRPC over HTTP/2, REST, /metrics,
// /healthz) for callers that run their own http.Server. gRPC through it
// needs a server that speaks HTTP/2.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve listens on addr and serves until ctx ends, then shuts down
// gracefully. A bind failure is returned as one line, e.g.
// "api listen 127.0.0.1:9464: address already in use".
func (s *Server) Serve(ctx context.Context, addr string) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return listenError(addr, err)
	}
	return s.ServeListener(ctx, ln)
}

// ServeListener serves on ln (which it closes) until ctx ends. It returns
// nil after a clean shutdown.
func (s *Server) ServeListener(ctx context.Context, ln net.Listener) error {
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		Handler:           s.handler,
		Protocols:         &protocols,
		ReadHeaderTimeout: readHeaderTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	s.log.Info("api serving", "addr", ln.Addr().String())

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	select {
	case err := <-errc:
		s.grpc.Stop()
		return fmt.Errorf("api serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}

	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		// Requests still running after the grace period are cut.
		s.log.Warn("api shutdown timed out, closing connections", "timeout", s.cfg.ShutdownTimeout)
		_ = srv.Close()
	}
	s.grpc.Stop()
	<-errc // Serve has returned http.ErrServerClosed.
	s.log.Info("api stopped")
	return nil
}

// listenError turns net's "listen tcp 127.0.0.1:9464: bind: address already
// in use" into "api listen 127.0.0.1:9464: address already in use", keeping
// the errno for errors.Is.
func listenError(addr string, err error) error {
	if sce, ok := errors.AsType[*os.SyscallError](err); ok {
		return fmt.Errorf("api listen %s: %w", addr, sce.Err)
	}
	if oe, ok := errors.AsType[*net.OpError](err); ok && oe.Err != nil {
		return fmt.Errorf("api listen %s: %w", addr, oe.Err)
	}
	return fmt.Errorf("api listen %s: %w", addr, err)
}

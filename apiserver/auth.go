package apiserver

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// The API's authentication is a bearer token: "Authorization: Bearer
// <token>" on REST, the "authorization" metadata key (same value) on gRPC.
// It is required when Config.Token is set, which the agent does whenever
// the API listens beyond loopback (see CheckExposure). /healthz stays open
// for probes, /metrics too when Config.PublicMetrics is set.

// maxTokenBytes bounds a token file: a token is a line, not a document.
const maxTokenBytes = 4096

// errUnauthenticated is what a client without the right token is told.
// It does not say which of "missing" and "wrong" applies.
const errUnauthenticated = "missing or invalid bearer token (send \"Authorization: Bearer <token>\")"

// ReadTokenFile reads a bearer token: the file's content with surrounding
// whitespace removed. An empty or oversized file is an error, so a
// misconfigured deployment fails at start rather than accepting anyone.
func ReadTokenFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("api token file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxTokenBytes+1))
	if err != nil {
		return "", fmt.Errorf("api token file: %w", err)
	}
	if len(data) > maxTokenBytes {
		return "", fmt.Errorf("api token file %s: larger than %d bytes", path, maxTokenBytes)
	}
	tok := strings.TrimSpace(string(data))
	if tok == "" {
		return "", fmt.Errorf("api token file %s: empty", path)
	}
	if strings.ContainsAny(tok, " \t\r\n") {
		return "", fmt.Errorf("api token file %s: the token must be one word", path)
	}
	return tok, nil
}

// IsLoopback reports whether a listen address ("host:port") binds only
// loopback addresses: 127.0.0.0/8, ::1 or the name localhost. An empty
// host, 0.0.0.0, :: and every other name count as exposed.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// CheckExposure refuses an API address beyond loopback without a token.
func CheckExposure(addr, token string) error {
	if token != "" || IsLoopback(addr) {
		return nil
	}
	return fmt.Errorf("api-addr %s is not a loopback address: refusing to serve the API without authentication; "+
		"set apiTokenFile (flag --api-token-file) to a file holding a bearer token, or listen on 127.0.0.1", addr)
}

// authenticator checks bearer tokens in constant time.
type authenticator struct {
	sum      [sha256.Size]byte // of the expected token; comparing hashes hides its length
	rejected *prometheus.CounterVec
}

func newAuthenticator(token string, rejected *prometheus.CounterVec) *authenticator {
	if token == "" {
		return nil
	}
	return &authenticator{sum: sha256.Sum256([]byte(token)), rejected: rejected}
}

// ok checks an Authorization value ("Bearer <token>", scheme case-insensitive).
func (a *authenticator) ok(header string) bool {
	scheme, tok, found := strings.Cut(strings.TrimSpace(header), " ")
	if !found || !strings.EqualFold(scheme, "bearer") {
		// Compare anyway so a missing scheme costs the same time.
		tok = ""
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(got[:], a.sum[:]) == 1 && tok != ""
}

func (a *authenticator) grpcOK(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		if a.ok(v) {
			return nil
		}
	}
	a.rejected.WithLabelValues("grpc").Inc()
	return status.Error(codes.Unauthenticated, errUnauthenticated)
}

func (a *authenticator) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := a.grpcOK(ctx); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (a *authenticator) stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := a.grpcOK(ss.Context()); err != nil {
		return err
	}
	return handler(srv, ss)
}

// http guards next; public paths pass without a token.
func (a *authenticator) http(next http.Handler, public func(*http.Request) bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if public(r) || a.ok(r.Header.Get("Authorization")) {
			next.ServeHTTP(w, r)
			return
		}
		a.rejected.WithLabelValues("rest").Inc()
		w.Header().Set("WWW-Authenticate", `Bearer realm="apiwarden"`)
		writeJSONError(w, http.StatusUnauthorized, codes.Unauthenticated, errUnauthenticated)
	})
}

// writeJSONError answers like grpc-gateway does: a google.rpc.Status as
// JSON ({"code": 16, "message": "...", "details": []}).
func writeJSONError(w http.ResponseWriter, httpCode int, code codes.Code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpCode)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Details []any  `json:"details"`
	}{int(code), msg, []any{}})
}

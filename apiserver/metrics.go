package apiserver

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// metrics of the API itself. Label values are bounded: routes are the
// registered patterns and gRPC method names, never raw request paths.
type metrics struct {
	requests          *prometheus.CounterVec
	eventLimitClamped prometheus.Counter
	schemaTruncated   prometheus.Counter
	unauthenticated   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "apiwarden", Subsystem: "api", Name: "requests_total",
			Help: "API requests by transport (grpc, rest), route and result code.",
		}, []string{"transport", "route", "code"}),
		eventLimitClamped: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "apiwarden", Subsystem: "api", Name: "event_limit_clamped_total",
			Help: "ListEvents requests whose limit exceeded the maximum and was lowered to it.",
		}),
		schemaTruncated: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "apiwarden", Subsystem: "api", Name: "schema_truncated_total",
			Help: "Inventory schemas cut at the maximum rendering depth.",
		}),
		unauthenticated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "apiwarden", Subsystem: "api", Name: "unauthenticated_total",
			Help: "API requests refused for a missing or wrong bearer token, by transport (grpc, rest).",
		}, []string{"transport"}),
	}
	m.requests = register(reg, m.requests)
	m.unauthenticated = register(reg, m.unauthenticated)
	// Both transports start at 0, so rate() has data before the first refusal.
	m.unauthenticated.WithLabelValues("grpc")
	m.unauthenticated.WithLabelValues("rest")
	m.eventLimitClamped = register(reg, m.eventLimitClamped)
	m.schemaTruncated = register(reg, m.schemaTruncated)
	return m
}

// register adds c to reg, or returns the collector already registered
// under the same name, so two servers on one registry share counters
// instead of panicking.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}

// unaryInterceptor counts gRPC calls. REST calls go to the service
// in-process and never pass here; restMiddleware counts them.
func (m *metrics) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	m.requests.WithLabelValues("grpc", info.FullMethod, status.Code(err).String()).Inc()
	return resp, err
}

// restMiddleware counts gateway calls by their route pattern.
func (m *metrics) restMiddleware(next runtime.HandlerFunc) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next(sw, r, params)
		route := "unknown"
		if pat, ok := runtime.HTTPPattern(r.Context()); ok {
			route = pat.String()
		}
		m.requests.WithLabelValues("rest", r.Method+" "+route, strconv.Itoa(sw.code)).Inc()
	}
}

// statusWriter remembers the response code for restMiddleware.
type statusWriter struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.code, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach Flush and deadlines.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush keeps the gateway's flushing working through the wrapper.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

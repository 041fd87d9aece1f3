package xds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discoveryservice "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	extensionservice "github.com/envoyproxy/go-control-plane/envoy/service/extension/v3"
	listenerservice "github.com/envoyproxy/go-control-plane/envoy/service/listener/v3"
	routeservice "github.com/envoyproxy/go-control-plane/envoy/service/route/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
)

// Snapshot builds a consistent, validated snapshot holding only the
// policy's extension config (the ECDS resource), at the given version.
func Snapshot(version string, p Policy) (*cachev3.Snapshot, error) {
	return BuildSnapshot(version, Inputs{Policy: p})
}

// Config says which listeners the server publishes besides the ones
// proxyless gRPC servers ask for.
type Config struct {
	Envoy []EnvoyListener
	// Registerer receives the xDS metrics; nil registers none.
	Registerer prometheus.Registerer
}

// Server serves the policy over ADS (state of the world and delta) and the
// per-type discovery services. Each node gets its own snapshot: Envoy
// listeners are the same for all, proxyless gRPC listeners are the ones the
// node asked for, since their names carry the server's own address.
type Server struct {
	log   *slog.Logger
	cache cachev3.SnapshotCache
	envoy []EnvoyListener

	mu      sync.Mutex
	policy  Policy
	version uint64
	// streams holds, per open stream, its node and the proxyless listener
	// names it subscribes to; a node's listeners are the union of its
	// streams'.
	streams map[int64]*streamState
	// built is the proxyless listener set each node's snapshot holds.
	built map[string][]string
	// acked is the last version each node ACKed, by resource type (state
	// of the world streams only: delta ACKs carry no version).
	acked map[string]map[string]string

	pushes prometheus.Counter
	nacks  *prometheus.CounterVec
	ver    prometheus.Gauge
	// nackCount mirrors nacks for callers without a registry.
	nackCount atomic.Uint64
	// pushCount mirrors pushes; diag keeps the last error (status.go).
	pushCount atomic.Uint64
	diag      diagnostics
}

type streamState struct {
	node  string
	names map[string]bool
}

// NewServer returns a server with an empty (allow-everything) policy and
// no Envoy listeners.
func NewServer(log *slog.Logger) (*Server, error) {
	return New(log, Config{})
}

// New returns a server with an empty policy and the configured listeners.
func New(log *slog.Logger, cfg Config) (*Server, error) {
	for _, l := range cfg.Envoy {
		if err := l.Validate(); err != nil {
			return nil, err
		}
	}
	s := &Server{
		log:     log.With("component", "xds"),
		envoy:   cfg.Envoy,
		version: 1,
		streams: map[int64]*streamState{},
		built:   map[string][]string{},
		acked:   map[string]map[string]string{},
		pushes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "apiwarden", Subsystem: "xds", Name: "pushes_total",
			Help: "Snapshots set in the xDS cache (one per node and change).",
		}),
		nacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "apiwarden", Subsystem: "xds", Name: "nacks_total",
			Help: "xDS responses a client rejected, by resource type.",
		}, []string{"type"}),
		ver: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "apiwarden", Subsystem: "xds", Name: "version",
			Help: "Current xDS snapshot version (bumped on every policy or subscription change).",
		}),
	}
	// Known label values start at 0, so a rate() over them has data
	// before the first NACK.
	for _, t := range []string{resource.ListenerType, resource.RouteType, resource.ClusterType, resource.ExtensionConfigType} {
		s.nacks.WithLabelValues(t)
	}
	// Not ADS mode: in ADS mode the cache answers only when a request names
	// every resource of its type in the snapshot, and an Envoy and a
	// proxyless server on one node ask for different listener sets.
	s.cache = cachev3.NewSnapshotCache(false, nodeID{}, nil)
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{s.pushes, s.nacks, s.ver} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("xds metrics: %w", err)
			}
		}
	}
	if _, err := BuildSnapshot("0", Inputs{Envoy: cfg.Envoy}); err != nil {
		return nil, err
	}
	return s, nil
}

// nodeID keys snapshots by the node's id.
type nodeID struct{}

func (nodeID) ID(n *corev3.Node) string { return n.GetId() }

// Update publishes a new policy to every node.
func (s *Server) Update(ctx context.Context, p Policy) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Build once before touching state: a policy that does not build is
	// refused whole and the nodes keep the previous one.
	if _, err := BuildSnapshot("check", Inputs{Policy: p, Envoy: s.envoy}); err != nil {
		s.diag.fail("policy: " + err.Error())
		return err
	}
	s.policy = p
	s.version++
	s.diag.updated()
	var errs []error
	for node, names := range s.built {
		if err := s.setLocked(ctx, node, names); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		s.diag.fail(err.Error())
		return err
	}
	return nil
}

// Version is the current snapshot version.
func (s *Server) Version() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.version
}

// Nodes lists the nodes with a snapshot and the proxyless listeners each
// one holds.
func (s *Server) Nodes() map[string][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.built)
}

func (s *Server) setLocked(ctx context.Context, node string, names []string) error {
	snap, err := BuildSnapshot(strconv.FormatUint(s.version, 10), Inputs{Policy: s.policy, GRPCListeners: names, Envoy: s.envoy})
	if err != nil {
		return fmt.Errorf("node %q: %w", node, err)
	}
	if err := s.cache.SetSnapshot(ctx, node, snap); err != nil {
		return fmt.Errorf("node %q: %w", node, err)
	}
	s.built[node] = names
	s.pushes.Inc()
	s.pushCount.Add(1)
	s.ver.Set(float64(s.version))
	return nil
}

// subscribed records a stream's request and rebuilds the node's snapshot
// when the node is new or its proxyless listener set changed. It runs in the
// stream's goroutine before the cache sees the request, so the snapshot
// already holds the listener when the watch is created; otherwise the
// server would hear that its listener does not exist.
func (s *Server) subscribed(stream int64, node, typeURL string, set, add, remove []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.streams[stream]
	if !ok {
		st = &streamState{node: node, names: map[string]bool{}}
		s.streams[stream] = st
	}
	if typeURL == resource.ListenerType {
		if set != nil {
			clear(st.names)
			add = set
		}
		for _, n := range add {
			if _, _, ok := ServerListenerAddress(n); ok {
				st.names[n] = true
			}
		}
		for _, n := range remove {
			delete(st.names, n)
		}
	}
	names := s.nodeNamesLocked(node)
	if prev, ok := s.built[node]; ok && slices.Equal(prev, names) {
		return
	}
	if _, ok := s.built[node]; ok {
		s.version++ // the node's resources change
	}
	if err := s.setLocked(context.Background(), node, names); err != nil {
		s.log.Error("xds snapshot", "node", node, "err", err)
		return
	}
	s.log.Info("xds node subscribed", "node", node, "grpc_listeners", names, "version", s.version)
}

func (s *Server) nodeNamesLocked(node string) []string {
	set := map[string]bool{}
	for _, st := range s.streams {
		if st.node == node {
			maps.Copy(set, st.names)
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// Acked returns the versions a node last ACKed, by resource type URL.
func (s *Server) Acked(node string) map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.acked[node])
}

func (s *Server) ack(node, typeURL, version string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.acked[node] == nil {
		s.acked[node] = map[string]string{}
	}
	s.acked[node][typeURL] = version
}

// closed forgets a stream; when it was its node's last one the node's
// snapshot goes too, so proxies that come and go (pods) do not pile up
// snapshots rebuilt on every change. A node that reconnects gets a new one
// on its first request.
func (s *Server) closed(stream int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.streams[stream]
	if !ok {
		return
	}
	delete(s.streams, stream)
	for _, other := range s.streams {
		if other.node == st.node {
			return
		}
	}
	delete(s.built, st.node)
	delete(s.acked, st.node)
	s.cache.ClearSnapshot(st.node)
}

func (s *Server) nack(node, typeURL, version, msg string) {
	s.nacks.WithLabelValues(typeURL).Inc()
	s.nackCount.Add(1)
	s.diag.fail(fmt.Sprintf("NACK from %s (%s, version %s): %s", node, typeURL, version, msg))
	s.log.Warn("xds NACK", "node", node, "type", typeURL, "version", version, "err", msg)
}

// NACKs is the number of rejected responses so far, all types.
func (s *Server) NACKs() uint64 { return s.nackCount.Load() }

func (s *Server) callbacks() serverv3.Callbacks {
	return serverv3.CallbackFuncs{
		StreamRequestFunc: func(id int64, req *discoveryservice.DiscoveryRequest) error {
			if e := req.GetErrorDetail(); e != nil {
				s.nack(req.GetNode().GetId(), req.GetTypeUrl(), req.GetVersionInfo(), e.GetMessage())
			} else if req.GetResponseNonce() != "" {
				s.ack(req.GetNode().GetId(), req.GetTypeUrl(), req.GetVersionInfo())
			}
			names := req.GetResourceNames()
			if names == nil {
				names = []string{}
			}
			s.subscribed(id, req.GetNode().GetId(), req.GetTypeUrl(), names, nil, nil)
			return nil
		},
		StreamClosedFunc: func(id int64, _ *corev3.Node) { s.closed(id) },
		StreamDeltaRequestFunc: func(id int64, req *discoveryservice.DeltaDiscoveryRequest) error {
			if e := req.GetErrorDetail(); e != nil {
				s.nack(req.GetNode().GetId(), req.GetTypeUrl(), req.GetResponseNonce(), e.GetMessage())
			}
			s.subscribed(id, req.GetNode().GetId(), req.GetTypeUrl(), nil, req.GetResourceNamesSubscribe(), req.GetResourceNamesUnsubscribe())
			return nil
		},
		DeltaStreamClosedFunc: func(id int64, _ *corev3.Node) { s.closed(id) },
	}
}

// Serve answers xDS on addr until ctx ends.
func (s *Server) Serve(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("xds listen %s: %w", addr, err)
	}
	return s.ServeListener(ctx, ln)
}

// ServeListener answers xDS on ln until ctx ends.
func (s *Server) ServeListener(ctx context.Context, ln net.Listener) error {
	gs := grpc.NewServer()
	xs := serverv3.NewServer(ctx, s.cache, s.callbacks())
	discoveryservice.RegisterAggregatedDiscoveryServiceServer(gs, xs)
	extensionservice.RegisterExtensionConfigDiscoveryServiceServer(gs, xs)
	listenerservice.RegisterListenerDiscoveryServiceServer(gs, xs)
	routeservice.RegisterRouteDiscoveryServiceServer(gs, xs)
	clusterservice.RegisterClusterDiscoveryServiceServer(gs, xs)
	go func() { <-ctx.Done(); gs.GracefulStop() }()
	s.log.Info("xds serving", "addr", ln.Addr().String(), "ecds", FilterName, "envoy_listeners", len(s.envoy))
	if err := gs.Serve(ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("xds serve: %w", err)
	}
	return nil
}

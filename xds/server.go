package xds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync/atomic"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryservice "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	extensionservice "github.com/envoyproxy/go-control-plane/envoy/service/extension/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
)

// everyNode is the one snapshot key: every proxy gets the same policy, so
// the node hash ignores the node's identity.
type everyNode struct{}

func (everyNode) ID(*corev3.Node) string { return "apiwarden" }

// Snapshot builds a consistent snapshot holding the policy's extension
// config, at the given version.
func Snapshot(version string, p Policy) (*cachev3.Snapshot, error) {
	ec, err := ExtensionConfig(p)
	if err != nil {
		return nil, err
	}
	snap, err := cachev3.NewSnapshot(version, map[resource.Type][]types.Resource{
		resource.ExtensionConfigType: {ec},
	})
	if err != nil {
		return nil, fmt.Errorf("new snapshot: %w", err)
	}
	if err := snap.Consistent(); err != nil {
		return nil, fmt.Errorf("inconsistent snapshot: %w", err)
	}
	return snap, nil
}

// Server serves the policy over ADS and ECDS.
type Server struct {
	log     *slog.Logger
	cache   cachev3.SnapshotCache
	version atomic.Uint64
}

// NewServer returns a server with an empty (allow-everything) policy.
func NewServer(log *slog.Logger) (*Server, error) {
	s := &Server{log: log.With("component", "xds"), cache: cachev3.NewSnapshotCache(true, everyNode{}, nil)}
	if err := s.Update(context.Background(), Policy{}); err != nil {
		return nil, err
	}
	return s, nil
}

// Update publishes a new policy to every connected proxy.
func (s *Server) Update(ctx context.Context, p Policy) error {
	v := s.version.Add(1)
	snap, err := Snapshot(strconv.FormatUint(v, 10), p)
	if err != nil {
		return err
	}
	return s.cache.SetSnapshot(ctx, everyNode{}.ID(nil), snap)
}

// Version is the current snapshot version.
func (s *Server) Version() uint64 { return s.version.Load() }

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
	xs := serverv3.NewServer(ctx, s.cache, nil)
	discoveryservice.RegisterAggregatedDiscoveryServiceServer(gs, xs)
	extensionservice.RegisterExtensionConfigDiscoveryServiceServer(gs, xs)
	go func() { <-ctx.Done(); gs.GracefulStop() }()
	s.log.Info("xds serving", "addr", ln.Addr().String(), "resource", FilterName)
	if err := gs.Serve(ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("xds serve: %w", err)
	}
	return nil
}

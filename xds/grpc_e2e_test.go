package xds

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	grpcxds "google.golang.org/grpc/xds"
)

// TestProxylessGRPCServerEnforcesPolicy is the check against a real
// consumer: a grpc-go xDS server bootstrapped to apiwarden's xDS server
// asks for its listener by the server template, becomes SERVING, and
// enforces the deny rules and blocked sources apiwarden publishes, without
// NACKing any of it. Loopback only, no root.
func TestProxylessGRPCServerEnforcesPolicy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	s, err := NewServer(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	xln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	xctx, xstop := context.WithCancel(ctx)
	xdone := make(chan error, 1)
	go func() { xdone <- s.ServeListener(xctx, xln) }()
	defer func() { xstop(); <-xdone }()

	bootstrap := fmt.Sprintf(`{
		"xds_servers": [{"server_uri": %q, "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
		"node": {"id": "proxyless-test"},
		"server_listener_resource_name_template": %q
	}`, xln.Addr().String(), ServerListenerTemplate)

	serving := make(chan struct{}, 1)
	gs, err := grpcxds.NewGRPCServer(
		grpc.Creds(insecure.NewCredentials()),
		grpcxds.BootstrapContentsForTesting([]byte(bootstrap)),
		grpcxds.ServingModeCallback(func(addr net.Addr, args grpcxds.ServingModeChangeArgs) {
			t.Logf("serving mode %v on %v (err %v)", args.Mode, addr, args.Err)
			if args.Mode == connectivity.ServingModeServing {
				select {
				case serving <- struct{}{}:
				default:
				}
			}
		}),
	)
	if err != nil {
		t.Fatal(err)
	}
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	gln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(gln)
	defer gs.Stop()

	select {
	case <-serving:
	case <-ctx.Done():
		t.Fatalf("grpc xDS server never became SERVING; apiwarden nodes: %v", s.Nodes())
	}
	want := fmt.Sprintf(ServerListenerTemplate, gln.Addr().String())
	if got := s.Nodes()["proxyless-test"]; len(got) != 1 || got[0] != want {
		t.Fatalf("node listeners %v, want [%s]", got, want)
	}

	conn, err := grpc.NewClient(gln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)

	// await polls the health check until it returns code: policy updates
	// reach the server asynchronously and it drains old connections.
	await := func(step string, code codes.Code) {
		t.Helper()
		var last error
		for ctx.Err() == nil {
			cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := client.Check(cctx, &healthpb.HealthCheckRequest{})
			ccancel()
			if status.Code(err) == code {
				return
			}
			last = err
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("%s: never got %v, last error %v", step, code, last)
	}
	// update publishes p and waits until the server ACKed its listener.
	update := func(p Policy) {
		t.Helper()
		if err := s.Update(ctx, p); err != nil {
			t.Fatal(err)
		}
		want := strconv.FormatUint(s.Version(), 10)
		for s.Acked("proxyless-test")[resource.ListenerType] != want {
			if ctx.Err() != nil {
				t.Fatalf("listener version %s never ACKed (NACKs %d)", want, s.NACKs())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	await("empty policy", codes.OK)

	update(Policy{Denies: []Deny{{Method: "POST", PathPrefix: "/grpc.health.v1.Health/"}}})
	await("deny rule", codes.PermissionDenied)

	update(Policy{})
	await("deny rule removed", codes.OK)

	update(Policy{BlockedSources: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	await("blocked source", codes.PermissionDenied)

	// Monitor mode publishes shadow rules only: grpc-go lets calls through.
	update(Policy{BlockedSources: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, Monitor: true})
	await("monitor mode", codes.OK)

	// A deny on another path, or for another method (gRPC calls are
	// POST), leaves this one alone.
	update(Policy{Denies: []Deny{{PathPrefix: "/other.Service/"}, {Method: "GET", PathPrefix: "/grpc.health.v1.Health/"}}})
	await("unrelated deny", codes.OK)

	if n := s.NACKs(); n != 0 {
		t.Fatalf("%d NACKs", n)
	}
}

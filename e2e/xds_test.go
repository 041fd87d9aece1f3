package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	grpcxds "google.golang.org/grpc/xds"

	"github.com/apiwarden/apiwarden/e2e/harness"
)

// TestAgentXDSEnforcedByProxylessGRPC is the whole chain with the real
// agent: its deny rules and its blocklist (changed through the REST API)
// reach a grpc-go xDS server bootstrapped to the agent's --xds-addr, which
// enforces them. The gRPC traffic is on loopback, where the kernel guard is
// not attached (it watches the topology's veths only), so every refusal
// seen here is the proxyless server's.
func TestAgentXDSEnforcedByProxylessGRPC(t *testing.T) {
	bin := needAgent(t)
	w := newWorld(t)
	xdsPort, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	xdsAddr := fmt.Sprintf("127.0.0.1:%d", xdsPort)
	cfg := filepath.Join(w.dir, "agent-xds.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("xdsAddr: %s\ndenyRules:\n  - {method: POST, pathPrefix: /grpc.health.v1.Health/Watch}\n", xdsAddr)), 0o644)
	a := w.startAgentMode(t, bin, "protect", cfg)

	bootstrap := fmt.Sprintf(`{
		"xds_servers": [{"server_uri": %q, "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
		"node": {"id": "e2e-proxyless"},
		"server_listener_resource_name_template": "grpc/server?xds.resource.listening_address=%%s"
	}`, xdsAddr)
	serving := make(chan struct{}, 1)
	gs, err := grpcxds.NewGRPCServer(grpc.Creds(insecure.NewCredentials()),
		grpcxds.BootstrapContentsForTesting([]byte(bootstrap)),
		grpcxds.ServingModeCallback(func(addr net.Addr, args grpcxds.ServingModeChangeArgs) {
			if args.Mode == connectivity.ServingModeServing {
				select {
				case serving <- struct{}{}:
				default:
				}
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	healthpb.RegisterHealthServer(gs, health.NewServer())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(ln)
	t.Cleanup(gs.Stop)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	select {
	case <-serving:
	case <-ctx.Done():
		t.Fatal("proxyless server never became SERVING on the agent's xDS")
	}
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	check := func() error {
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		defer ccancel()
		_, err := client.Check(cctx, &healthpb.HealthCheckRequest{})
		return err
	}
	watch := func() error {
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		defer ccancel()
		st, err := client.Watch(cctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			return err
		}
		_, err = st.Recv()
		return err
	}
	await := func(step string, call func() error, want codes.Code) {
		t.Helper()
		var last error
		for ctx.Err() == nil {
			err := call()
			if status.Code(err) == want {
				return
			}
			last = err
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("%s: never got %v, last %v", step, want, last)
	}

	await("agent deny rule: Check passes", check, codes.OK)
	await("agent deny rule: Watch refused", watch, codes.PermissionDenied)

	if code, body, err := a.Do("POST", "/v1/blocklist", map[string]string{"prefix": "127.0.0.1", "reason": "xds e2e"}); err != nil || code != 200 {
		t.Fatalf("add block: %d %s %v", code, body, err)
	}
	await("blocked source", check, codes.PermissionDenied)
	if code, body, err := a.Do("DELETE", "/v1/blocklist/127.0.0.1/32", nil); err != nil || code != 200 {
		t.Fatalf("delete block: %d %s %v", code, body, err)
	}
	await("unblocked", check, codes.OK)

	// The agent logs NACKs; none may have happened.
	if out := a.Output(); strings.Contains(out, "xds NACK") {
		t.Fatalf("agent saw a NACK:\n%s", tailStr(out, 3000))
	}
	w.stopAgent(t, a)
}

package xds

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacconfigv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func TestEmptyPolicyDeniesNothing(t *testing.T) {
	rbac, err := BuildRBAC(Policy{})
	if err != nil {
		t.Fatal(err)
	}
	if rbac.Rules.Action != rbacconfigv3.RBAC_DENY || len(rbac.Rules.Policies) != 0 {
		t.Fatalf("empty policy must be a DENY set with no policies, got %v", rbac.Rules)
	}
}

func TestBlockedSourcesAndDeniesBecomeDenyPolicies(t *testing.T) {
	rbac, err := BuildRBAC(Policy{
		BlockedSources: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8::1/128")},
		Denies:         []Deny{{Method: "delete", PathPrefix: "/admin"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	src := rbac.Rules.Policies["blocked-sources"]
	ids := src.GetPrincipals()[0].GetOrIds().GetIds()
	if len(ids) != 2 || ids[0].GetRemoteIp().GetAddressPrefix() != "198.51.100.0" || ids[0].GetRemoteIp().GetPrefixLen().GetValue() != 24 {
		t.Fatalf("blocked sources: %v", ids)
	}
	deny := rbac.Rules.Policies["deny-0"].GetPermissions()[0].GetAndRules().GetRules()
	if deny[0].GetHeader().GetStringMatch().GetExact() != "DELETE" || deny[1].GetUrlPath().GetPath().GetPrefix() != "/admin" {
		t.Fatalf("deny rule: %v", deny)
	}
	if err := rbac.ValidateAll(); err != nil {
		t.Fatal(err)
	}
}

func TestDenyWithoutLeadingSlashIsRejected(t *testing.T) {
	if _, err := BuildRBAC(Policy{Denies: []Deny{{PathPrefix: "admin"}}}); err == nil {
		t.Fatal("accepted a path prefix without /")
	}
}

func TestTemplateRegexMatchesOneSegmentPerParam(t *testing.T) {
	re, err := TemplateRegex("/api/v1/users/{userId}/orders")
	if err != nil {
		t.Fatal(err)
	}
	r := regexp.MustCompile(re)
	for path, want := range map[string]bool{
		"/api/v1/users/42/orders":          true,
		"/api/v1/users/42/orders?limit=10": true,
		"/api/v1/users/42/x/orders":        false,
		"/api/v1/users//orders":            false,
		"/api/v1/users/42/orders/7":        false,
	} {
		if got := r.MatchString(path); got != want {
			t.Errorf("%s: got %v want %v", path, got, want)
		}
	}
}

func TestSnapshotIsConsistent(t *testing.T) {
	snap, err := Snapshot("1", Policy{AllowOnly: []Endpoint{{Method: "GET", PathTemplate: "/users/{id}"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := snap.GetVersion(resource.ExtensionConfigType); got != "1" {
		t.Fatalf("version %q", got)
	}
}

// TestClientReceivesPolicyUpdates speaks ADS like Envoy does: it asks for the
// extension config, receives the empty policy, then receives the update.
func TestClientReceivesPolicyUpdates(t *testing.T) {
	s, err := NewServer(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go s.ServeListener(ctx, ln)

	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	req := &discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: "envoy-1"}, TypeUrl: resource.ExtensionConfigType, ResourceNames: []string{FilterName}}
	if err := stream.Send(req); err != nil {
		t.Fatal(err)
	}
	first, nonce := recvRBAC(t, stream)
	if len(first.Rules.Policies) != 0 {
		t.Fatalf("initial policy not empty: %v", first.Rules.Policies)
	}
	if err := s.Update(ctx, Policy{BlockedSources: []netip.Prefix{netip.MustParsePrefix("203.0.113.7/32")}}); err != nil {
		t.Fatal(err)
	}
	// ACK the first response, then wait for the new version.
	req.VersionInfo, req.ResponseNonce = "1", nonce
	if err := stream.Send(req); err != nil {
		t.Fatal(err)
	}
	second, _ := recvRBAC(t, stream)
	if _, ok := second.Rules.Policies["blocked-sources"]; !ok {
		t.Fatalf("update not received: %v", second.Rules.Policies)
	}
}

func recvRBAC(t *testing.T, stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient) (*rbacv3.RBAC, string) {
	t.Helper()
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Resources) != 1 {
		t.Fatalf("%d resources", len(resp.Resources))
	}
	var ec corev3.TypedExtensionConfig
	if err := resp.Resources[0].UnmarshalTo(&ec); err != nil {
		t.Fatal(err)
	}
	var rbac rbacv3.RBAC
	if err := ec.TypedConfig.UnmarshalTo(&rbac); err != nil {
		t.Fatal(err)
	}
	return &rbac, resp.Nonce
}

// startServer serves s on a loopback port until the test ends.
func startServer(t *testing.T, s *Server) (*grpc.ClientConn, context.Context) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	done := make(chan error, 1)
	go func() { done <- s.ServeListener(ctx, ln) }()
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); cancel(); <-done })
	return conn, ctx
}

// TestDeltaADSServesSubscribedListener speaks incremental ADS: the node
// subscribes to its proxyless listener by name, gets it, then gets the new
// version when the policy changes.
func TestDeltaADSServesSubscribedListener(t *testing.T) {
	s, err := NewServer(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	conn, ctx := startServer(t, s)
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	name := "grpc/server?xds.resource.listening_address=127.0.0.1:50051"
	if err := stream.Send(&discoveryv3.DeltaDiscoveryRequest{
		Node: &corev3.Node{Id: "delta-1"}, TypeUrl: resource.ListenerType, ResourceNamesSubscribe: []string{name},
	}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Resources) != 1 || resp.Resources[0].Name != name {
		t.Fatalf("delta response %v", resp.Resources)
	}
	first := resp.Resources[0].Version
	if err := stream.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resource.ListenerType, ResponseNonce: resp.Nonce}); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, Policy{Denies: []Deny{{PathPrefix: "/x"}}}); err != nil {
		t.Fatal(err)
	}
	resp, err = stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Resources) != 1 || resp.Resources[0].Version == first {
		t.Fatalf("update not pushed: %v", resp.Resources)
	}
}

// TestNACKIsCounted sends a NACK like a proxy that rejected a response.
func TestNACKIsCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, err := New(slog.New(slog.NewTextHandler(io.Discard, nil)), Config{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	conn, ctx := startServer(t, s)
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	req := &discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: "envoy-nack"}, TypeUrl: resource.ExtensionConfigType, ResourceNames: []string{FilterName}}
	if err := stream.Send(req); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	req.ResponseNonce = resp.Nonce
	req.ErrorDetail = &rpcstatus.Status{Code: 3, Message: "rejected for the test"}
	if err := stream.Send(req); err != nil {
		t.Fatal(err)
	}
	for s.NACKs() == 0 {
		if ctx.Err() != nil {
			t.Fatal("NACK never counted")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := testutil.ToFloat64(s.nacks.WithLabelValues(resource.ExtensionConfigType)); got != 1 {
		t.Fatalf("nacks metric %v", got)
	}
	st := s.Status()
	if st.NACKs != 1 || st.Pushes == 0 || !strings.Contains(st.LastError, "rejected for the test") || st.LastErrorTime.IsZero() {
		t.Fatalf("status %+v", st)
	}
	if len(st.Nodes) != 1 || st.Nodes[0].ID != "envoy-nack" {
		t.Fatalf("status nodes %+v", st.Nodes)
	}
	// One series per resource type (started at 0) plus the pushes.
	if n, err := testutil.GatherAndCount(reg, "apiwarden_xds_nacks_total", "apiwarden_xds_pushes_total"); err != nil || n != 5 {
		t.Fatalf("metrics: %d series, %v", n, err)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint %s: %s", p.Metric, p.Text)
	}
}

// TestEnvoyListenersOverSotW asks for every listener like Envoy does
// (wildcard) and gets the configured one, with its route over RDS.
func TestEnvoyListenersOverSotW(t *testing.T) {
	s, err := New(slog.New(slog.NewTextHandler(io.Discard, nil)), Config{Envoy: sampleEnvoy})
	if err != nil {
		t.Fatal(err)
	}
	conn, ctx := startServer(t, s)
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{resource.ListenerType, resource.RouteType} {
		names := []string(nil)
		if typ == resource.RouteType {
			names = []string{sampleEnvoy[0].RouteName()}
		}
		if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: "envoy-2"}, TypeUrl: typ, ResourceNames: names}); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if resp.TypeUrl != typ || len(resp.Resources) != 1 {
			t.Fatalf("%s: %d resources", typ, len(resp.Resources))
		}
	}
}

// TestNodeForgottenAfterLastStream: a node's snapshot lives as long as one
// of its streams does.
func TestNodeForgottenAfterLastStream(t *testing.T) {
	s, err := NewServer(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	conn, ctx := startServer(t, s)
	sctx, cancel := context.WithCancel(ctx)
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(sctx)
	if err != nil {
		t.Fatal(err)
	}
	name := "grpc/server?xds.resource.listening_address=127.0.0.1:50052"
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: "pod-1"}, TypeUrl: resource.ListenerType, ResourceNames: []string{name}}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	if got := s.Nodes()["pod-1"]; len(got) != 1 || got[0] != name {
		t.Fatalf("nodes %v", s.Nodes())
	}
	cancel()
	for {
		if _, ok := s.Nodes()["pod-1"]; !ok {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("node kept after its stream closed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := s.Update(ctx, Policy{Denies: []Deny{{PathPrefix: "/x"}}}); err != nil {
		t.Fatal(err)
	}
}

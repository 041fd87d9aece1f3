package xds

import (
	"bytes"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// samplePolicy exercises every part of the builders.
var samplePolicy = Policy{
	BlockedSources: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8::7/128")},
	Denies:         []Deny{{Method: "DELETE", PathPrefix: "/admin"}, {PathPrefix: "/debug/"}},
	AllowOnly:      []Endpoint{{Method: "GET", PathTemplate: "/users/{id}"}, {Method: "POST", PathTemplate: "/orders"}},
	RateLimit:      &RateLimit{RequestsPerSecond: 100, Burst: 200},
}

var sampleEnvoy = []EnvoyListener{{
	Name:     "ingress-http",
	Address:  netip.MustParseAddrPort("0.0.0.0:10000"),
	Upstream: netip.MustParseAddrPort("127.0.0.1:8080"),
}}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./xds -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the builder output (go test ./xds -update rewrites it):\n%s", path, got)
	}
}

func TestGoldenSnapshotResources(t *testing.T) {
	in := Inputs{
		Policy:        samplePolicy,
		GRPCListeners: []string{"grpc/server?xds.resource.listening_address=10.0.0.5:50051"},
		Envoy:         sampleEnvoy,
	}
	snap, err := BuildSnapshot("7", in)
	if err != nil {
		t.Fatal(err)
	}
	if snap.GetVersion(resource.ListenerType) != "7" {
		t.Fatal("version not set on listeners")
	}
	res, err := Resources(in)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := PlainResources(res)
	if err != nil {
		t.Fatal(err)
	}
	b, err := MarshalIndent(plain)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "snapshot.json", b)
}

func TestGoldenStaticBootstrap(t *testing.T) {
	b, err := StaticBootstrap(sampleEnvoy, samplePolicy)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := Plain(b)
	if err != nil {
		t.Fatal(err)
	}
	out, err := MarshalIndent(plain)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "envoy-bootstrap.json", out)
}

func TestGRPCListenerShape(t *testing.T) {
	name := "grpc/server?xds.resource.listening_address=[::1]:8443"
	l, err := GRPCServerListener(name, Policy{Monitor: true, Denies: []Deny{{PathPrefix: "/x"}}})
	if err != nil {
		t.Fatal(err)
	}
	sa := l.GetAddress().GetSocketAddress()
	if sa.GetAddress() != "::1" || sa.GetPortValue() != 8443 {
		t.Fatalf("address %v", sa)
	}
	if err := Validate(l); err != nil {
		t.Fatal(err)
	}
	var hcm hcmv3.HttpConnectionManager
	if err := l.GetDefaultFilterChain().GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm); err != nil {
		t.Fatal(err)
	}
	fs := hcm.GetHttpFilters()
	if len(fs) != 2 || fs[0].GetName() != "envoy.filters.http.rbac" || fs[1].GetName() != "envoy.filters.http.router" {
		t.Fatalf("filters %v", fs)
	}
	var rbac rbacv3.RBAC
	if err := fs[0].GetTypedConfig().UnmarshalTo(&rbac); err != nil {
		t.Fatal(err)
	}
	if rbac.GetRules() != nil || len(rbac.GetShadowRules().GetPolicies()) != 1 {
		t.Fatalf("monitor mode must publish shadow rules only: %v", &rbac)
	}
}

func TestServerListenerAddress(t *testing.T) {
	for name, want := range map[string]string{
		"grpc/server?xds.resource.listening_address=127.0.0.1:50051":  "127.0.0.1:50051",
		"grpc/server?xds.resource.listening_address=[::]:443":         ":::443",
		"custom/prefix?xds.resource.listening_address=10.1.2.3:1&x=y": "10.1.2.3:1",
		"ingress-http": "",
		"grpc/server?xds.resource.listening_address=127.0.0.1":       "",
		"grpc/server?xds.resource.listening_address=127.0.0.1:99999": "",
	} {
		h, p, ok := ServerListenerAddress(name)
		got := ""
		if ok {
			got = fmt.Sprintf("%s:%d", h, p)
		}
		if got != want {
			t.Errorf("%s: got %q want %q", name, got, want)
		}
	}
}

func TestValidateRejectsBadResources(t *testing.T) {
	l, err := GRPCServerListener("grpc/server?xds.resource.listening_address=127.0.0.1:1", Policy{})
	if err != nil {
		t.Fatal(err)
	}
	// Drop the router: grpc-go and Envoy both refuse such a chain.
	var hcm hcmv3.HttpConnectionManager
	f := l.GetDefaultFilterChain().GetFilters()[0]
	if err := f.GetTypedConfig().UnmarshalTo(&hcm); err != nil {
		t.Fatal(err)
	}
	hcm.HttpFilters = hcm.HttpFilters[:1]
	bad, err := hcmChain("default", &hcm)
	if err != nil {
		t.Fatal(err)
	}
	l.DefaultFilterChain = bad
	if err := Validate(l); err == nil {
		t.Fatal("a chain without the router validated")
	}
	if err := Validate(&listenerv3.Listener{Name: "x"}); err == nil {
		t.Fatal("a listener without address validated")
	}
	for _, el := range []EnvoyListener{
		{Name: "", Address: netip.MustParseAddrPort("0.0.0.0:1"), Upstream: netip.MustParseAddrPort("127.0.0.1:2")},
		{Name: "a", Upstream: netip.MustParseAddrPort("127.0.0.1:2")},
		{Name: "grpc/server?xds.resource.listening_address=1.2.3.4:5", Address: netip.MustParseAddrPort("0.0.0.0:1"), Upstream: netip.MustParseAddrPort("127.0.0.1:2")},
	} {
		if err := el.Validate(); err == nil {
			t.Errorf("%+v validated", el)
		}
	}
	if _, err := BuildSnapshot("1", Inputs{Envoy: []EnvoyListener{sampleEnvoy[0], sampleEnvoy[0]}}); err == nil {
		t.Fatal("duplicate listener names built")
	}
	if _, err := BuildSnapshot("1", Inputs{Policy: Policy{RateLimit: &RateLimit{}}, Envoy: sampleEnvoy}); err == nil {
		t.Fatal("zero rate limit built")
	}
}

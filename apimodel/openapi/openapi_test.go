package openapi

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/apiwarden/apiwarden/apimodel/call"
	"github.com/apiwarden/apiwarden/apimodel/inventory"
)

const testJWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"

type req struct {
	method, path, query string
	exe                 string
	port                uint16
	headers             call.Headers
	body                string
	status              int
	respBody            string
	tls                 string
	noResp              bool
}

func observe(inv *inventory.Inventory, r req, ts time.Time) {
	c := &call.Call{
		Client:  netip.MustParseAddrPort("10.0.0.2:40000"),
		Server:  netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), r.port),
		Request: &call.Request{Method: r.method, Path: r.path, RawQuery: r.query, Headers: r.headers, Start: ts},
		TLS:     r.tls,
	}
	if r.exe != "" {
		c.ServerProcess = &call.Process{PID: 42, Comm: "svc", Exe: r.exe, ContainerID: "abc123"}
	}
	if r.body != "" {
		c.Request.Body = []byte(r.body)
		c.Request.Headers = append(c.Request.Headers, call.Header{Name: "Content-Type", Value: "application/json"})
	}
	if !r.noResp {
		c.Response = &call.Response{StatusCode: r.status}
		if r.respBody != "" {
			c.Response.Body = []byte(r.respBody)
			c.Response.Headers = call.Headers{{Name: "Content-Type", Value: "application/json"}}
		}
	}
	inv.Observe(c)
}

// richEndpoints covers every feature the exporter maps: path and query
// parameters of each type, JSON bodies, several status codes, each auth
// scheme, two services sharing a path, no-response endpoints and a method
// OpenAPI 3.0 cannot express.
func richEndpoints(t *testing.T) []inventory.Endpoint {
	t.Helper()
	orderReq, err := os.ReadFile("testdata/order_request.json")
	if err != nil {
		t.Fatal(err)
	}
	orderResp, err := os.ReadFile("testdata/order_response.json")
	if err != nil {
		t.Fatal(err)
	}
	inv := inventory.New(inventory.Config{}, nil)
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for i := range 12 {
		ts := t0.Add(time.Duration(i) * time.Minute)
		for _, r := range []req{
			{method: "POST", path: "/api/v1/orders", exe: "/usr/bin/shop", port: 8080, body: string(orderReq), status: 201,
				respBody: string(orderResp), headers: call.Headers{{Name: "Authorization", Value: "Bearer " + testJWT}}},
			{method: "GET", path: fmt.Sprintf("/api/v1/orders/%d", 1000+i), query: fmt.Sprintf("expand=items&page=%d&since=2024-01-0%d", i, 1+i%9),
				exe: "/usr/bin/shop", port: 8080, status: 200, respBody: string(orderResp),
				headers: call.Headers{{Name: "X-API-Key", Value: "k"}}},
			{method: "GET", path: fmt.Sprintf("/api/v1/orders/%d", 1000+i), exe: "/usr/bin/shop", port: 8080, status: 404,
				respBody: `{"error":"not found"}`},
			{method: "GET", path: fmt.Sprintf("/users/user%c/files/9e107d9d372bb6826bd81d3542a419d%d", 'a'+i, i%10),
				exe: "/usr/local/bin/users", port: 9000, status: 200, respBody: `[{"name":"a.txt","size":12}]`,
				headers: call.Headers{{Name: "Cookie", Value: "sid=1"}, {Name: "Authorization", Value: "Basic dXNlcjpwYXNz"}}},
			{method: "PUT", path: fmt.Sprintf("/users/user%c", 'a'+i), exe: "/usr/local/bin/users", port: 9000, status: 204,
				body: `{"email":"x@y.io","password":"p","tags":[],"meta":null}`, headers: call.Headers{{Name: "Authorization", Value: "Digest x"}}},
			// The same path and method on two services.
			{method: "GET", path: "/health", exe: "/usr/bin/shop", port: 8080, status: 200, tls: "openssl 3.0.15"},
			{method: "GET", path: "/health", exe: "/usr/local/bin/users", port: 9000, status: 200},
			{method: "GET", path: "/health", port: 7000, noResp: true},
			{method: "GET", path: "/search", query: "api_key=abc&q=x", exe: "/usr/bin/shop", port: 8080, status: 200},
			{method: "PROPFIND", path: "/dav", exe: "/usr/bin/shop", port: 8080, status: 207},
		} {
			observe(inv, r, ts)
		}
	}
	return inv.Snapshot()
}

func TestBuildRichInventoryValidates(t *testing.T) {
	doc, err := Build(richEndpoints(t), Info{})
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("validate: %v", err)
	}
	if doc.OpenAPI != "3.0.3" {
		t.Errorf("openapi = %q", doc.OpenAPI)
	}
	wantPaths := []string{
		"/api/v1/orders", "/api/v1/orders/{orderId}", "/search",
		"/shop-8080/health", "/unknown-7000/health", "/users-9000/health",
		"/users/{userId}", "/users/{userId}/files/{fileId}",
	}
	got := doc.Paths.Keys()
	slices.Sort(got)
	if !slices.Equal(got, wantPaths) {
		t.Fatalf("paths = %q, want %q", got, wantPaths)
	}

	get := doc.Paths.Value("/api/v1/orders/{orderId}").Get
	if p := get.Parameters.GetByInAndName("path", "orderId"); p == nil || !p.Required || !p.Schema.Value.Type.Is("integer") {
		t.Errorf("orderId param = %+v", p)
	}
	if p := get.Parameters.GetByInAndName("query", "since"); p == nil || p.Required || p.Schema.Value.Format != "date" {
		t.Errorf("since param = %+v", p)
	}
	if get.Responses.Status(200) == nil || get.Responses.Status(404) == nil {
		t.Errorf("responses = %v", get.Responses.Keys())
	}
	if get.Extensions["x-apiwarden-request-count"] != uint64(24) {
		t.Errorf("request count ext = %v", get.Extensions["x-apiwarden-request-count"])
	}
	for _, ext := range []string{"x-apiwarden-first-seen", "x-apiwarden-last-seen", "x-apiwarden-status-counts",
		"x-apiwarden-service", "x-apiwarden-processes", "x-apiwarden-sensitive"} {
		if _, ok := get.Extensions[ext]; !ok {
			t.Errorf("extension %s missing", ext)
		}
	}

	post := doc.Paths.Value("/api/v1/orders").Post
	rs := post.RequestBody.Value.Content["application/json"].Schema.Value
	if !rs.Type.Is("object") || rs.Properties["items"].Value.Items.Value.Properties["price"].Value.Type.Is("number") == false {
		t.Errorf("request schema = %+v", rs)
	}
	if !rs.Properties["note"].Value.Nullable {
		t.Error("null property not nullable")
	}
	if got := post.Extensions["x-apiwarden-sensitive"]; !slices.Equal(got.([]string), []string{"email", "credit-card", "private-ip"}) {
		t.Errorf("sensitive = %v", got)
	}
	if sec := *post.Security; len(sec) != 1 || sec[0]["bearerJWT"] == nil {
		t.Errorf("security = %v", sec)
	}

	schemes := doc.Components.SecuritySchemes
	for _, name := range []string{"bearerJWT", "basic", "apiKey-x-api-key", "cookie-sid", "queryKey-api_key", "http-digest"} {
		if schemes[name] == nil {
			t.Errorf("security scheme %s missing (have %v)", name, slices.Sorted(func(yield func(string) bool) {
				for k := range schemes {
					if !yield(k) {
						return
					}
				}
			}))
		}
	}
	if h := doc.Paths.Value("/shop-8080/health").Get; h.Extensions["x-apiwarden-path"] != "/health" ||
		h.Extensions["x-apiwarden-service"] != "shop:8080" {
		t.Errorf("prefixed op extensions = %v", h.Extensions)
	}
	if doc.Paths.Value("/unknown-7000/health").Get.Responses.Value("default") == nil {
		t.Error("no-response endpoint lacks a default response")
	}
	if doc.Extensions["x-apiwarden-skipped-operations"] != 1 {
		t.Errorf("skipped = %v", doc.Extensions["x-apiwarden-skipped-operations"])
	}
	var tags []string
	for _, tg := range doc.Tags {
		tags = append(tags, tg.Name)
	}
	if !slices.Equal(tags, []string{"shop:8080", "unknown:7000", "users:9000"}) {
		t.Errorf("tags = %q", tags)
	}
}

func TestJSONRoundTripValidates(t *testing.T) {
	doc, err := Build(richEndpoints(t), Info{Title: "t", Version: "2"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := JSON(doc)
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := openapi3.NewLoader().LoadFromData(b)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if err := loaded.Validate(context.Background()); err != nil {
		t.Fatalf("validate loaded: %v", err)
	}
	if loaded.Paths.Len() != doc.Paths.Len() {
		t.Errorf("paths %d != %d", loaded.Paths.Len(), doc.Paths.Len())
	}
}

func TestServiceFilterNeedsNoPrefix(t *testing.T) {
	doc, err := Build(richEndpoints(t), Info{Service: "shop:8080"})
	if err != nil {
		t.Fatal(err)
	}
	got := doc.Paths.Keys()
	slices.Sort(got)
	want := []string{"/api/v1/orders", "/api/v1/orders/{orderId}", "/health", "/search"}
	if !slices.Equal(got, want) {
		t.Errorf("paths = %q, want %q", got, want)
	}
	doc, err = Build(richEndpoints(t), Info{Service: "users"})
	if err != nil {
		t.Fatal(err)
	}
	if doc.Paths.Value("/health") == nil || doc.Paths.Len() != 3 {
		t.Errorf("users paths = %q", doc.Paths.Keys())
	}
}

func TestEmptyInventory(t *testing.T) {
	doc, err := Build(nil, Info{})
	if err != nil {
		t.Fatal(err)
	}
	if doc.Paths.Len() != 0 || doc.Components != nil {
		t.Errorf("doc = %+v", doc)
	}
}

var update = flag.Bool("update", false, "rewrite golden files")

// TestGolden pins the whole export; run with -update after an intended
// change and review the diff.
func TestGolden(t *testing.T) {
	doc, err := Build(richEndpoints(t), Info{Title: "golden", Version: "1"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := JSON(doc)
	if err != nil {
		t.Fatal(err)
	}
	const golden = "testdata/rich.golden.json"
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("export differs from %s; run go test -update and review the diff", golden)
	}
}

func TestProtocolExtension(t *testing.T) {
	inv := inventory.New(inventory.Config{}, nil)
	inv.Observe(&call.Call{
		Server:   netip.MustParseAddrPort("10.0.0.1:50051"),
		Protocol: call.ProtoGRPC,
		GRPC:     &call.GRPC{Service: "grpc.health.v1.Health", Method: "Check", Status: 5},
		Request:  &call.Request{Method: "POST", Path: "/grpc.health.v1.Health/Check", Proto: "HTTP/2.0", Start: time.Unix(1, 0)},
		Response: &call.Response{StatusCode: 200, Proto: "HTTP/2.0"},
	})
	doc, err := Build(inv.Snapshot(), Info{Title: "t", Version: "1"})
	if err != nil {
		t.Fatal(err)
	}
	op := doc.Paths.Find("/grpc.health.v1.Health/Check").Post
	if op.Extensions["x-protocol"] != "grpc" {
		t.Fatalf("extensions %v", op.Extensions)
	}
	if gs := op.Extensions["x-apiwarden-grpc-status-counts"].(map[string]uint64); gs["5"] != 1 {
		t.Fatalf("grpc status %v", gs)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatal(err)
	}
}

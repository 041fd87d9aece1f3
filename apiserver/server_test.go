package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	apiwardenv1 "github.com/apiwarden/apiwarden/api/apiwarden/v1"
	"github.com/apiwarden/apiwarden/apimodel/inventory"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

const testOpenAPI = `{"openapi":"3.0.3","info":{"title":"apiwarden inventory","version":"1"},"paths":{}}`

// fakeBackend is an in-memory Backend with a fixed inventory.
type fakeBackend struct {
	mu         sync.Mutex
	blocks     map[netip.Prefix]Block
	lastFilter EventFilter
	events     []Event
	modes      map[string]string // runtime overrides (control_test.go)
}

func newFakeBackend() *fakeBackend {
	return &fakeBackend{blocks: map[netip.Prefix]Block{}}
}

func (f *fakeBackend) Inventory() []inventory.Endpoint {
	return []inventory.Endpoint{
		{
			Service:              inventory.Service{Name: "users-api", Exe: "/usr/bin/users-api", Port: 8080},
			Method:               "GET",
			PathTemplate:         "/users/{id}",
			RequestCount:         7,
			StatusCodes:          map[int]uint64{200: 6, 404: 1},
			NoResponse:           2,
			Processes:            []inventory.Process{{PID: 42, Comm: "users-api", Exe: "/usr/bin/users-api", ContainerID: "abc123"}},
			PathParams:           []inventory.Param{{Name: "id", In: "path", Type: "integer", Count: 7, Required: true}},
			QueryParams:          []inventory.Param{{Name: "verbose", In: "query", Type: "boolean", Count: 2}},
			RequestContentTypes:  map[string]uint64{},
			ResponseContentTypes: map[string]uint64{"application/json": 7},
			ResponseSchemas: map[int]*inventory.Schema{200: {
				Type:     "object",
				Required: []string{"id"},
				Properties: map[string]*inventory.Schema{
					"id":    {Type: "integer"},
					"email": {Type: "string", Format: "email"},
					"tags":  {Type: "array", Items: &inventory.Schema{Type: "string"}},
				},
			}},
			AuthSchemes: map[string]uint64{"bearer-jwt": 7},
			Sensitive:   []string{"email"},
			TLS:         map[string]uint64{"": 5, "openssl": 2},
			FirstSeen:   t0,
			LastSeen:    t0.Add(time.Minute),
		},
		{
			Service:      inventory.Service{Name: "aaa", Exe: "/bin/aaa", Port: 9000},
			Method:       "POST",
			PathTemplate: "/login",
			RequestCount: 1,
			RequestSchema: &inventory.Schema{Type: "object", Properties: map[string]*inventory.Schema{
				"user": {Type: "string"},
			}},
		},
	}
}

func (f *fakeBackend) OpenAPI() ([]byte, error) { return []byte(testOpenAPI), nil }

func (f *fakeBackend) Processes() ([]ProcessStatus, error) {
	return []ProcessStatus{{PID: 42, Comm: "users-api", Exe: "/usr/bin/users-api", Ports: []uint16{8080}, Visibility: "plaintext"}}, nil
}

func (f *fakeBackend) Events(_ context.Context, flt EventFilter) ([]Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastFilter = flt
	return f.events, nil
}

func (f *fakeBackend) Blocks() ([]Block, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Block
	for _, b := range f.blocks {
		out = append(out, b)
	}
	return out, nil
}

func (f *fakeBackend) AddBlock(p netip.Prefix, ttl time.Duration, reason string) (Block, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := Block{Prefix: p, Reason: reason, Created: t0}
	if ttl > 0 {
		b.Expires = t0.Add(ttl)
	}
	f.blocks[p] = b
	return b, nil
}

func (f *fakeBackend) DeleteBlock(p netip.Prefix) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.blocks[p]; !ok {
		return ErrNotFound
	}
	delete(f.blocks, p)
	return nil
}

func (f *fakeBackend) Status() (Status, error) {
	return Status{Mode: "monitor", Interfaces: []string{"lo"}, Counters: map[string]uint64{"captured": 3}, Started: t0}, nil
}

// startServer runs a Server on a loopback port and returns its address.
func startServer(t *testing.T, b Backend) (addr string, reg *prometheus.Registry) {
	t.Helper()
	reg = prometheus.NewRegistry()
	s := New(Config{Version: "v0.0.0-test"}, b, reg, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.ServeListener(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("server did not stop")
		}
	})
	return ln.Addr().String(), reg
}

func httpDo(t *testing.T, method, url, body string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, data
}

func grpcClient(t *testing.T, addr string) apiwardenv1.ApiwardenClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return apiwardenv1.NewApiwardenClient(conn)
}

func TestRESTInventoryJSONShape(t *testing.T) {
	addr, _ := startServer(t, newFakeBackend())
	code, hdr, body := httpDo(t, "GET", "http://"+addr+"/v1/inventory", "")
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, body)
	}
	if ct := hdr.Get("Content-Type"); ct != "application/json" {
		t.Errorf("content type %q", ct)
	}
	var got struct {
		Endpoints []struct {
			Service struct {
				Name string `json:"name"`
				Port int    `json:"port"`
			} `json:"service"`
			Method          string            `json:"method"`
			PathTemplate    string            `json:"pathTemplate"`
			RequestCount    string            `json:"requestCount"` // uint64: JSON string
			StatusCodes     map[string]string `json:"statusCodes"`
			PathParams      []map[string]any  `json:"pathParams"`
			ResponseSchemas map[string]any    `json:"responseSchemas"`
			RequestSchema   any               `json:"requestSchema"`
			TLS             map[string]string `json:"tls"`
			NoResponse      string            `json:"noResponse"`
			FirstSeen       string            `json:"firstSeen"`
			Processes       []map[string]any  `json:"processes"`
		} `json:"endpoints"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("decode: %v\n%s", err, body)
	}
	if len(got.Endpoints) != 2 {
		t.Fatalf("got %d endpoints, want 2:\n%s", len(got.Endpoints), body)
	}
	// Sorted by service name: "aaa" first.
	if got.Endpoints[0].Service.Name != "aaa" || got.Endpoints[0].RequestSchema == nil {
		t.Errorf("first endpoint %+v", got.Endpoints[0])
	}
	e := got.Endpoints[1]
	if e.Service.Name != "users-api" || e.Service.Port != 8080 || e.Method != "GET" ||
		e.PathTemplate != "/users/{id}" || e.RequestCount != "7" {
		t.Errorf("endpoint %+v", e)
	}
	if e.StatusCodes["200"] != "6" || e.StatusCodes["404"] != "1" {
		t.Errorf("statusCodes %v", e.StatusCodes)
	}
	if e.NoResponse != "2" {
		t.Errorf("noResponse %q", e.NoResponse)
	}
	if e.TLS["plaintext"] != "5" || e.TLS["openssl"] != "2" {
		t.Errorf("tls %v", e.TLS)
	}
	if e.FirstSeen != "2026-11-25T12:00:00Z" {
		t.Errorf("firstSeen %q", e.FirstSeen)
	}
	if len(e.Processes) != 1 || e.Processes[0]["containerId"] != "abc123" {
		t.Errorf("processes %v", e.Processes)
	}
	if len(e.PathParams) != 1 || e.PathParams[0]["required"] != true {
		t.Errorf("pathParams %v", e.PathParams)
	}
	// The schema renders as a JSON Schema object, not an escaped string.
	s200, _ := e.ResponseSchemas["200"].(map[string]any)
	props, _ := s200["properties"].(map[string]any)
	email, _ := props["email"].(map[string]any)
	if s200["type"] != "object" || email["format"] != "email" {
		t.Errorf("responseSchemas %v", e.ResponseSchemas)
	}
	// EmitUnpopulated: empty maps are present.
	if !strings.Contains(string(body), `"requestContentTypes":{}`) {
		t.Errorf("requestContentTypes not emitted:\n%s", body)
	}

	// Filter by service.
	_, _, body = httpDo(t, "GET", "http://"+addr+"/v1/inventory?service=aaa", "")
	if strings.Contains(string(body), "users-api") || !strings.Contains(string(body), "/login") {
		t.Errorf("service filter: %s", body)
	}
}

func TestRESTOpenAPIIsRawDocument(t *testing.T) {
	addr, _ := startServer(t, newFakeBackend())
	code, hdr, body := httpDo(t, "GET", "http://"+addr+"/v1/inventory/openapi", "")
	if code != http.StatusOK || string(body) != testOpenAPI {
		t.Fatalf("status %d body %s", code, body)
	}
	if ct := hdr.Get("Content-Type"); ct != "application/json" {
		t.Errorf("content type %q", ct)
	}
}

func TestMetricsAndHealthz(t *testing.T) {
	addr, _ := startServer(t, newFakeBackend())
	code, _, body := httpDo(t, "GET", "http://"+addr+"/healthz", "")
	if code != http.StatusOK || string(body) != "ok" {
		t.Fatalf("healthz %d %q", code, body)
	}
	httpDo(t, "GET", "http://"+addr+"/v1/status", "")
	if _, err := grpcClient(t, addr).GetStatus(context.Background(), &apiwardenv1.GetStatusRequest{}); err != nil {
		t.Fatal(err)
	}
	code, _, body = httpDo(t, "GET", "http://"+addr+"/metrics", "")
	if code != http.StatusOK {
		t.Fatalf("metrics %d", code)
	}
	for _, want := range []string{
		`apiwarden_api_requests_total{code="200",route="GET /v1/status",transport="rest"} 1`,
		`apiwarden_api_requests_total{code="OK",route="/apiwarden.v1.Apiwarden/GetStatus",transport="grpc"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s:\n%s", want, body)
		}
	}
}

func TestGRPCOnSamePort(t *testing.T) {
	b := newFakeBackend()
	addr, _ := startServer(t, b)
	c := grpcClient(t, addr)
	ctx := context.Background()

	inv, err := c.ListInventory(ctx, &apiwardenv1.ListInventoryRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.GetEndpoints()) != 2 || inv.GetEndpoints()[1].GetStatusCodes()["200"] != 6 {
		t.Errorf("inventory %v", inv)
	}
	doc, err := c.GetOpenAPI(ctx, &apiwardenv1.GetOpenAPIRequest{})
	if err != nil || string(doc.GetData()) != testOpenAPI {
		t.Errorf("openapi %v %v", doc, err)
	}
	st, err := c.GetStatus(ctx, &apiwardenv1.GetStatusRequest{})
	if err != nil || st.GetVersion() != "v0.0.0-test" || st.GetCounters()["captured"] != 3 {
		t.Errorf("status %v %v", st, err)
	}

	blk, err := c.AddBlock(ctx, &apiwardenv1.AddBlockRequest{Prefix: "10.1.2.3/8", Ttl: durationpb.New(10 * time.Minute), Reason: "scan"})
	if err != nil || blk.GetPrefix() != "10.0.0.0/8" || !blk.GetExpires().AsTime().Equal(t0.Add(10*time.Minute)) {
		t.Fatalf("add block %v %v", blk, err)
	}
	if _, err := c.AddBlock(ctx, &apiwardenv1.AddBlockRequest{Prefix: "nonsense"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("bad prefix: %v", err)
	}
	if _, err := c.DeleteBlock(ctx, &apiwardenv1.DeleteBlockRequest{Prefix: "192.0.2.1"}); status.Code(err) != codes.NotFound {
		t.Errorf("delete unknown: %v", err)
	}
	if _, err := c.DeleteBlock(ctx, &apiwardenv1.DeleteBlockRequest{Prefix: "10.0.0.0/8"}); err != nil {
		t.Errorf("delete: %v", err)
	}
}

func TestRESTBlocklist(t *testing.T) {
	b := newFakeBackend()
	addr, _ := startServer(t, b)
	base := "http://" + addr + "/v1/blocklist"

	code, _, body := httpDo(t, "POST", base, `{"prefix":"203.0.113.7","ttl":"600s","reason":"sqli"}`)
	if code != http.StatusOK || !strings.Contains(string(body), `"prefix":"203.0.113.7/32"`) {
		t.Fatalf("add: %d %s", code, body)
	}
	httpDo(t, "POST", base, `{"prefix":"2001:db8::/48"}`)
	_, _, body = httpDo(t, "GET", base, "")
	if !strings.Contains(string(body), "203.0.113.7/32") || !strings.Contains(string(body), "2001:db8::/48") {
		t.Fatalf("list: %s", body)
	}
	// Path form, the prefix's '/' included.
	if code, _, body := httpDo(t, "DELETE", base+"/203.0.113.7/32", ""); code != http.StatusOK {
		t.Errorf("delete path form: %d %s", code, body)
	}
	// Query form.
	if code, _, body := httpDo(t, "DELETE", base+"?prefix=2001:db8::/48", ""); code != http.StatusOK {
		t.Errorf("delete query form: %d %s", code, body)
	}
	if code, _, _ := httpDo(t, "DELETE", base+"?prefix=2001:db8::/48", ""); code != http.StatusNotFound {
		t.Errorf("delete again: %d, want 404", code)
	}
	if code, _, _ := httpDo(t, "POST", base, `{"prefix":"x"}`); code != http.StatusBadRequest {
		t.Errorf("bad prefix: %d, want 400", code)
	}
	if left, _ := b.Blocks(); len(left) != 0 {
		t.Errorf("blocks left: %v", left)
	}
}

func TestRESTEventsFilterAndLimitBound(t *testing.T) {
	b := newFakeBackend()
	for i := range MaxEventLimit + 5 {
		b.events = append(b.events, Event{ID: string(rune('a' + i%26)), Time: t0})
	}
	addr, reg := startServer(t, b)

	_, _, body := httpDo(t, "GET", "http://"+addr+"/v1/events?since=2026-11-25T11:00:00Z&service=users-api&class=sqli&action=block&limit=3", "")
	var got struct {
		Events []map[string]any `json:"events"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	// The fake ignores the limit; the server enforces it.
	if len(got.Events) != 3 {
		t.Errorf("got %d events, want 3", len(got.Events))
	}
	want := EventFilter{Since: t0.Add(-time.Hour), Service: "users-api", Class: "sqli", Action: "block", Limit: 3}
	if !b.lastFilter.Since.Equal(want.Since) || b.lastFilter.Service != want.Service || b.lastFilter.Class != want.Class ||
		b.lastFilter.Action != want.Action || b.lastFilter.Limit != want.Limit {
		t.Errorf("filter %+v, want %+v", b.lastFilter, want)
	}

	httpDo(t, "GET", "http://"+addr+"/v1/events", "")
	if b.lastFilter.Limit != DefaultEventLimit {
		t.Errorf("default limit %d", b.lastFilter.Limit)
	}

	_, _, body = httpDo(t, "GET", "http://"+addr+"/v1/events?limit=1000000", "")
	got.Events = nil
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if b.lastFilter.Limit != MaxEventLimit || len(got.Events) != MaxEventLimit {
		t.Errorf("limit %d, events %d, want %d", b.lastFilter.Limit, len(got.Events), MaxEventLimit)
	}
	if n := counterValue(t, reg, "apiwarden_api_event_limit_clamped_total"); n != 1 {
		t.Errorf("clamped counter %v, want 1", n)
	}
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func TestUnimplementedBackend(t *testing.T) {
	addr, _ := startServer(t, UnimplementedBackend{})
	code, _, body := httpDo(t, "GET", "http://"+addr+"/v1/events", "")
	if code != http.StatusNotImplemented || !strings.Contains(string(body), "not supported") {
		t.Errorf("rest events: %d %s", code, body)
	}
	code, _, body = httpDo(t, "GET", "http://"+addr+"/v1/inventory", "")
	if code != http.StatusOK || !strings.Contains(string(body), `"endpoints":[]`) {
		t.Errorf("rest inventory: %d %s", code, body)
	}
	_, err := grpcClient(t, addr).GetOpenAPI(context.Background(), &apiwardenv1.GetOpenAPIRequest{})
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("grpc openapi: %v", err)
	}
}

func TestServeBindErrorIsOneLine(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	err = New(Config{}, UnimplementedBackend{}, nil, nil).Serve(context.Background(), addr)
	want := "api listen " + addr + ": address already in use"
	if err == nil || err.Error() != want {
		t.Fatalf("err %v, want %q", err, want)
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("errno lost: %v", err)
	}
}

func TestServeStopsOnCancelWithIdleGRPCConn(t *testing.T) {
	s := New(Config{ShutdownTimeout: 2 * time.Second}, newFakeBackend(), nil, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.ServeListener(ctx, ln) }()
	c := grpcClient(t, ln.Addr().String())
	if _, err := c.GetStatus(context.Background(), &apiwardenv1.GetStatusRequest{}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no shutdown")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("shutdown took %v with only an idle connection", d)
	}
}

func TestParsePrefix(t *testing.T) {
	for in, want := range map[string]string{
		"10.1.2.3":             "10.1.2.3/32",
		"10.1.2.3/8":           "10.0.0.0/8",
		" 2001:db8::1 ":        "2001:db8::1/128",
		"2001:db8::1/32":       "2001:db8::/32",
		"::ffff:192.0.2.1":     "192.0.2.1/32",
		"::ffff:192.0.2.0/120": "192.0.2.0/24",
	} {
		p, err := ParsePrefix(in)
		if err != nil || p.String() != want {
			t.Errorf("ParsePrefix(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
	for _, in := range []string{"", "x", "10.0.0.0/33", "::ffff:0:0/64"} {
		if _, err := ParsePrefix(in); err == nil {
			t.Errorf("ParsePrefix(%q) accepted", in)
		}
	}
}

func TestSchemaDepthBound(t *testing.T) {
	root := &inventory.Schema{Type: "object"}
	cur := root
	for range MaxSchemaDepth + 10 {
		next := &inventory.Schema{Type: "array"}
		cur.Items = next
		cur = next
	}
	cuts := 0
	st := schemaToStruct(root, func() { cuts++ })
	depth := 0
	for f := st.GetFields(); f["items"] != nil; f = f["items"].GetStructValue().GetFields() {
		depth++
	}
	if cuts != 1 || depth != MaxSchemaDepth-1 {
		t.Errorf("cuts %d depth %d, want 1 and %d", cuts, depth, MaxSchemaDepth-1)
	}
}

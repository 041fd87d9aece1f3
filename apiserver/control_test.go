package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"gopkg.in/yaml.v3"

	apiwardenv1 "github.com/apiwarden/apiwarden/api/apiwarden/v1"
)

// The fake backend's modes, rules and xDS state.

var fakeServices = []string{"aaa", "users-api"}

func (f *fakeBackend) Modes() (Modes, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := Modes{Default: "monitor"}
	for _, svc := range fakeServices {
		m := ServiceMode{Service: svc, Mode: "monitor", Source: "default", ConfiguredMode: "monitor"}
		if mode, ok := f.modes[svc]; ok {
			m.Mode, m.Source, m.Updated = mode, "runtime", t0
		}
		out.Services = append(out.Services, m)
	}
	return out, nil
}

func (f *fakeBackend) SetMode(service, mode string) (ServiceMode, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !slices.Contains(fakeServices, service) {
		return ServiceMode{}, fmt.Errorf("%w: service %q", ErrNotFound, service)
	}
	if f.modes == nil {
		f.modes = map[string]string{}
	}
	if mode == ModeDefault {
		delete(f.modes, service)
		return ServiceMode{Service: service, Mode: "monitor", Source: "default", ConfiguredMode: "monitor"}, nil
	}
	f.modes[service] = mode
	return ServiceMode{Service: service, Mode: mode, Source: "runtime", ConfiguredMode: "monitor", Updated: t0}, nil
}

func (f *fakeBackend) Rules() (Rules, error) {
	return Rules{
		Deny: []DenyRule{{Method: "DELETE", PathPrefix: "/admin", Action: "count", InKernel: true}},
		Families: []RuleFamily{
			{Class: "xss", Rules: 2, Enabled: 2, Severities: map[string]int{"high": 2}},
			{Class: "sqli", Rules: 3, Enabled: 2, KernelLiterals: 4, Severities: map[string]int{"high": 2, "medium": 1}},
		},
		Rules: []DetectionRule{
			{ID: "xss-script", Class: "xss", Severity: "high", Confidence: 90, Paranoia: 1, Enabled: true},
			{ID: "sqli-union", Class: "sqli", Severity: "high", Confidence: 95, Paranoia: 1, Enabled: true, KernelLiterals: 2},
		},
		KernelRules: 5,
		AutoBlock:   AutoBlock{Threshold: 10, Window: time.Minute, TTL: 10 * time.Minute},
	}, nil
}

func (f *fakeBackend) XDSStatus() (XDSStatus, error) {
	return XDSStatus{Enabled: true, Addr: "127.0.0.1:18000", Version: 7, Pushes: 12, NACKs: 1,
		LastError: "NACK from envoy-1: bad route", LastErrorTime: t0, LastUpdate: t0.Add(time.Second),
		Nodes: []XDSNode{{ID: "grpc-1", GRPCListeners: []string{"grpc/server?xds.resource.listening_address=127.0.0.1:50051"},
			Acked: map[string]string{"type.googleapis.com/envoy.config.listener.v3.Listener": "7"}}, {ID: "envoy-1"}}}, nil
}

// startServerCfg runs a Server with cfg on a loopback port.
func startServerCfg(t *testing.T, cfg Config, b Backend) (string, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	s := New(cfg, b, reg, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.ServeListener(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String(), reg
}

func TestModesOverGRPCAndREST(t *testing.T) {
	addr, _ := startServer(t, newFakeBackend())
	c := grpcClient(t, addr)
	ctx := context.Background()

	m, err := c.SetMode(ctx, &apiwardenv1.SetModeRequest{Service: "users-api", Mode: "Protect"})
	if err != nil || m.GetMode() != "protect" || m.GetSource() != "runtime" || m.GetUpdated() == nil {
		t.Fatalf("set mode %v %v", m, err)
	}
	list, err := c.ListModes(ctx, &apiwardenv1.ListModesRequest{})
	if err != nil || list.GetDefaultMode() != "monitor" || len(list.GetServices()) != 2 {
		t.Fatalf("list %v %v", list, err)
	}
	if s := list.GetServices()[1]; s.GetService() != "users-api" || s.GetMode() != "protect" {
		t.Errorf("users-api %v", s)
	}

	// REST: PUT /v1/modes/{service}, then GET /v1/modes.
	code, _, body := httpDo(t, "PUT", "http://"+addr+"/v1/modes/aaa", `{"mode":"protect"}`)
	if code != http.StatusOK || !strings.Contains(string(body), `"source":"runtime"`) {
		t.Fatalf("PUT %d %s", code, body)
	}
	code, _, body = httpDo(t, "GET", "http://"+addr+"/v1/modes", "")
	var got struct {
		DefaultMode string `json:"defaultMode"`
		Services    []struct {
			Service, Mode, Source string
		} `json:"services"`
	}
	if err := json.Unmarshal(body, &got); err != nil || code != http.StatusOK {
		t.Fatalf("GET %d %s %v", code, body, err)
	}
	if got.DefaultMode != "monitor" || got.Services[0].Service != "aaa" || got.Services[0].Mode != "protect" {
		t.Errorf("modes %+v", got)
	}
	// "default" removes the override.
	if m, err := c.SetMode(ctx, &apiwardenv1.SetModeRequest{Service: "aaa", Mode: "default"}); err != nil || m.GetSource() != "default" {
		t.Errorf("reset %v %v", m, err)
	}
}

// TestErrorCodes checks each refusal: a gRPC status code and, over REST,
// the HTTP status with a JSON google.rpc.Status body.
func TestErrorCodes(t *testing.T) {
	addr, _ := startServer(t, newFakeBackend())
	c := grpcClient(t, addr)
	ctx := context.Background()
	cases := []struct {
		name           string
		call           func() error
		method, path   string
		body           string
		code           codes.Code
		httpCode       int
		messageContain string
	}{
		{"bad mode", func() error {
			_, err := c.SetMode(ctx, &apiwardenv1.SetModeRequest{Service: "aaa", Mode: "block"})
			return err
		}, "PUT", "/v1/modes/aaa", `{"mode":"block"}`, codes.InvalidArgument, 400, `invalid mode "block"`},
		{"empty mode", func() error {
			_, err := c.SetMode(ctx, &apiwardenv1.SetModeRequest{Service: "aaa"})
			return err
		}, "PUT", "/v1/modes/aaa", `{}`, codes.InvalidArgument, 400, "must be monitor, protect or default"},
		{"unknown service", func() error {
			_, err := c.SetMode(ctx, &apiwardenv1.SetModeRequest{Service: "nope", Mode: "protect"})
			return err
		}, "PUT", "/v1/modes/nope", `{"mode":"protect"}`, codes.NotFound, 404, `service "nope"`},
		{"bad prefix", func() error {
			_, err := c.AddBlock(ctx, &apiwardenv1.AddBlockRequest{Prefix: "10.0.0.300"})
			return err
		}, "POST", "/v1/blocklist", `{"prefix":"10.0.0.300"}`, codes.InvalidArgument, 400, "invalid prefix"},
		{"unknown block", func() error {
			_, err := c.DeleteBlock(ctx, &apiwardenv1.DeleteBlockRequest{Prefix: "192.0.2.1"})
			return err
		}, "DELETE", "/v1/blocklist?prefix=192.0.2.1", "", codes.NotFound, 404, "not found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if st, _ := status.FromError(err); st.Code() != tc.code || !strings.Contains(st.Message(), tc.messageContain) {
				t.Errorf("grpc: %v, want %v containing %q", err, tc.code, tc.messageContain)
			}
			code, hdr, body := httpDo(t, tc.method, "http://"+addr+tc.path, tc.body)
			var js struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			}
			if err := json.Unmarshal(body, &js); err != nil {
				t.Fatalf("REST body not JSON: %v\n%s", err, body)
			}
			if code != tc.httpCode || codes.Code(js.Code) != tc.code || !strings.Contains(js.Message, tc.messageContain) ||
				!strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
				t.Errorf("REST %d %s (%s)", code, body, hdr.Get("Content-Type"))
			}
		})
	}
	// A backend without the capability: Unimplemented / 501.
	addr2, _ := startServer(t, UnimplementedBackend{})
	if _, err := grpcClient(t, addr2).ListRules(ctx, &apiwardenv1.ListRulesRequest{}); status.Code(err) != codes.Unimplemented {
		t.Errorf("unimplemented rules: %v", err)
	}
	if code, _, body := httpDo(t, "GET", "http://"+addr2+"/v1/xds", ""); code != http.StatusNotImplemented || !json.Valid(body) {
		t.Errorf("unimplemented xds: %d %s", code, body)
	}
}

func TestRulesAndXDSStatus(t *testing.T) {
	addr, _ := startServer(t, newFakeBackend())
	c := grpcClient(t, addr)
	ctx := context.Background()
	r, err := c.ListRules(ctx, &apiwardenv1.ListRulesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.GetFamilies()) != 2 || r.GetFamilies()[0].GetClass() != "sqli" || r.GetFamilies()[0].GetSeverities()["medium"] != 1 {
		t.Errorf("families %v", r.GetFamilies())
	}
	if len(r.GetRules()) != 0 || len(r.GetDenyRules()) != 1 || r.GetKernelRules() != 5 || r.GetAutoBlockTtl().AsDuration() != 10*time.Minute {
		t.Errorf("rules %v", r)
	}
	r, _ = c.ListRules(ctx, &apiwardenv1.ListRulesRequest{Detail: true})
	if len(r.GetRules()) != 2 || r.GetRules()[0].GetId() != "sqli-union" {
		t.Errorf("detail %v", r.GetRules())
	}
	code, _, body := httpDo(t, "GET", "http://"+addr+"/v1/rules?detail=true", "")
	if code != 200 || !strings.Contains(string(body), `"pathPrefix":"/admin"`) || !strings.Contains(string(body), `"id":"xss-script"`) {
		t.Errorf("REST rules %d %s", code, body)
	}

	x, err := c.GetXDSStatus(ctx, &apiwardenv1.GetXDSStatusRequest{})
	if err != nil || !x.GetEnabled() || x.GetVersion() != 7 || x.GetNacks() != 1 || len(x.GetNodes()) != 2 {
		t.Fatalf("xds %v %v", x, err)
	}
	if x.GetNodes()[0].GetId() != "envoy-1" || x.GetNodes()[1].GetAcked()["type.googleapis.com/envoy.config.listener.v3.Listener"] != "7" {
		t.Errorf("nodes %v", x.GetNodes())
	}
	code, _, body = httpDo(t, "GET", "http://"+addr+"/v1/xds", "")
	if code != 200 || !strings.Contains(string(body), `"lastError":"NACK from envoy-1: bad route"`) || !strings.Contains(string(body), `"pushes":"12"`) {
		t.Errorf("REST xds %d %s", code, body)
	}
}

// TestOpenAPIDocumentListsEveryRoute parses /v1/openapi.json and requires
// every HTTP rule of apiwarden_http.yaml in it.
func TestOpenAPIDocumentListsEveryRoute(t *testing.T) {
	addr, _ := startServer(t, newFakeBackend())
	code, hdr, body := httpDo(t, "GET", "http://"+addr+OpenAPIPath, "")
	if code != 200 || hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %s", code, hdr.Get("Content-Type"))
	}
	var doc struct {
		Swagger             string                               `json:"swagger"`
		Paths               map[string]map[string]map[string]any `json:"paths"`
		Definitions         map[string]any                       `json:"definitions"`
		SecurityDefinitions map[string]any                       `json:"securityDefinitions"`
		Security            []any                                `json:"security"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Swagger != "2.0" || doc.SecurityDefinitions["bearer"] == nil || doc.Security != nil {
		t.Errorf("swagger %q security %v %v", doc.Swagger, doc.SecurityDefinitions, doc.Security)
	}

	routes := httpRules(t)
	if len(routes) < 13 {
		t.Fatalf("only %d rules read from the HTTP config", len(routes))
	}
	for _, r := range routes {
		// The document writes {prefix=**} as {prefix}.
		path := r.path
		if i := strings.Index(path, "="); i >= 0 {
			path = path[:i] + "}"
		}
		op, ok := doc.Paths[path][r.method]
		if !ok {
			t.Errorf("%s %s (%s) missing from the OpenAPI document", strings.ToUpper(r.method), path, r.selector)
			continue
		}
		// operationId is Service_Method (a digit added for extra bindings).
		if want := strings.ReplaceAll(strings.TrimPrefix(r.selector, "apiwarden.v1."), ".", "_"); !strings.HasPrefix(fmt.Sprint(op["operationId"]), want) {
			t.Errorf("%s %s: operationId %v, want %s", r.method, path, op["operationId"], want)
		}
	}
	for _, def := range []string{"v1ServiceMode", "v1ListRulesResponse", "v1XDSStatus", "googleRpcStatus"} {
		if doc.Definitions[def] == nil {
			t.Errorf("definition %s missing", def)
		}
	}

	// With a token the document requires it.
	addr2, _ := startServerCfg(t, Config{Token: "s3cret"}, newFakeBackend())
	req, _ := http.NewRequest("GET", "http://"+addr2+OpenAPIPath, nil)
	req.Header.Set("Authorization", "Bearer s3cret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || len(doc.Security) != 1 {
		t.Errorf("security with token: %v %v", doc.Security, err)
	}
}

type httpRoute struct{ selector, method, path string }

// httpRules reads the gateway's HTTP rules (the source of both the
// gateway and the document).
func httpRules(t *testing.T) []httpRoute {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "api", "apiwarden", "v1", "apiwarden_http.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	type binding map[string]any
	var cfg struct {
		HTTP struct {
			Rules []map[string]any `yaml:"rules"`
		} `yaml:"http"`
	}
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	var out []httpRoute
	var add func(sel string, b map[string]any)
	add = func(sel string, b map[string]any) {
		for _, m := range []string{"get", "put", "post", "delete", "patch"} {
			if p, ok := b[m].(string); ok {
				out = append(out, httpRoute{sel, m, p})
			}
		}
		if more, ok := b["additional_bindings"].([]any); ok {
			for _, x := range more {
				add(sel, x.(map[string]any))
			}
		}
	}
	for _, r := range cfg.HTTP.Rules {
		add(r["selector"].(string), r)
	}
	return out
}

func TestAuthRequiredWithToken(t *testing.T) {
	const tok = "s3cret-token"
	addr, reg := startServerCfg(t, Config{Token: tok, PublicMetrics: true}, newFakeBackend())
	ctx := context.Background()

	// REST: no token, a wrong one, the wrong scheme are 401 with a JSON body.
	for _, h := range []string{"", "Bearer wrong", "Basic " + tok, tok, "Bearer " + tok + "x"} {
		req, _ := http.NewRequest("GET", "http://"+addr+"/v1/status", nil)
		if h != "" {
			req.Header.Set("Authorization", h)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var js struct {
			Code int `json:"code"`
		}
		err = json.NewDecoder(resp.Body).Decode(&js)
		resp.Body.Close()
		if resp.StatusCode != 401 || err != nil || codes.Code(js.Code) != codes.Unauthenticated ||
			!strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("Authorization %q: %d code %d %v", h, resp.StatusCode, js.Code, err)
		}
	}
	req, _ := http.NewRequest("GET", "http://"+addr+"/v1/status", nil)
	req.Header.Set("Authorization", "bearer "+tok)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("with token: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	// /healthz and (PublicMetrics) /metrics need none; pprof-less paths do.
	for path, want := range map[string]int{"/healthz": 200, "/metrics": 200, OpenAPIPath: 401, "/v1/modes": 401, "/nope": 401} {
		if code, _, _ := httpDo(t, "GET", "http://"+addr+path, ""); code != want {
			t.Errorf("%s: %d, want %d", path, code, want)
		}
	}

	// gRPC: Unauthenticated without the metadata, fine with it.
	c := grpcClient(t, addr)
	if _, err := c.GetStatus(ctx, &apiwardenv1.GetStatusRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("grpc without token: %v", err)
	}
	bad := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer nope")
	if _, err := c.ListModes(bad, &apiwardenv1.ListModesRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("grpc wrong token: %v", err)
	}
	good := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
	if _, err := c.ListModes(good, &apiwardenv1.ListModesRequest{}); err != nil {
		t.Errorf("grpc with token: %v", err)
	}
	// Reflection (a stream) is guarded too.
	conn, _ := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	defer conn.Close()
	st, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true},
		"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo")
	if err == nil {
		_ = st.CloseSend()
		var m any
		err = st.RecvMsg(&m)
	}
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("reflection without token: %v", err)
	}

	if got := testutil.ToFloat64(mustCounter(t, reg, "rest")); got != 8 {
		t.Errorf("rest rejections %v, want 8", got)
	}
	if got := testutil.ToFloat64(mustCounter(t, reg, "grpc")); got != 3 {
		t.Errorf("grpc rejections %v, want 3", got)
	}
}

func mustCounter(t *testing.T, reg *prometheus.Registry, transport string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "apiwarden_api_unauthenticated_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == transport {
				c := prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})
				c.Add(m.GetCounter().GetValue())
				return c
			}
		}
	}
	t.Fatalf("no apiwarden_api_unauthenticated_total{transport=%q}", transport)
	return nil
}

func TestMetricsPrivateByDefaultWithToken(t *testing.T) {
	addr, _ := startServerCfg(t, Config{Token: "t"}, newFakeBackend())
	if code, _, _ := httpDo(t, "GET", "http://"+addr+"/metrics", ""); code != 401 {
		t.Errorf("/metrics without token: %d", code)
	}
	if code, _, _ := httpDo(t, "GET", "http://"+addr+"/healthz", ""); code != 200 {
		t.Errorf("/healthz: %d", code)
	}
}

func TestExposureAndTokenFile(t *testing.T) {
	for addr, loop := range map[string]bool{
		"127.0.0.1:9464": true, "127.3.4.5:1": true, "[::1]:9464": true, "localhost:9464": true,
		":9464": false, "0.0.0.0:9464": false, "[::]:9464": false, "10.0.0.5:9464": false, "node.example:9464": false,
		"[::ffff:127.0.0.1]:1": true, "bogus": false,
	} {
		if IsLoopback(addr) != loop {
			t.Errorf("IsLoopback(%q) = %v", addr, !loop)
		}
	}
	err := CheckExposure("0.0.0.0:9464", "")
	if err == nil || !strings.Contains(err.Error(), "--api-token-file") || !strings.Contains(err.Error(), "0.0.0.0:9464") {
		t.Errorf("exposure error %v", err)
	}
	if CheckExposure("0.0.0.0:9464", "tok") != nil || CheckExposure("127.0.0.1:1", "") != nil {
		t.Error("allowed cases refused")
	}

	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if tok, err := ReadTokenFile(write("ok", "  abc123\n")); err != nil || tok != "abc123" {
		t.Errorf("token %q %v", tok, err)
	}
	for name, content := range map[string]string{"empty": "\n \n", "two": "a b", "big": strings.Repeat("x", maxTokenBytes+1)} {
		if _, err := ReadTokenFile(write(name, content)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := ReadTokenFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file accepted")
	}
}

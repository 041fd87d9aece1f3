package inventory

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/apiwarden/apiwarden/apimodel/call"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

type callOpt func(*call.Call)

func withQuery(q string) callOpt { return func(c *call.Call) { c.Request.RawQuery = q } }
func withHeader(n, v string) callOpt {
	return func(c *call.Call) { c.Request.Headers = append(c.Request.Headers, call.Header{Name: n, Value: v}) }
}
func withReqJSON(b string) callOpt {
	return func(c *call.Call) {
		c.Request.Body = []byte(b)
		c.Request.Headers = append(c.Request.Headers, call.Header{Name: "Content-Type", Value: "application/json; charset=utf-8"})
	}
}
func withRespJSON(code int, b string) callOpt {
	return func(c *call.Call) {
		c.Response.StatusCode = code
		c.Response.Body = []byte(b)
		c.Response.Headers = call.Headers{{Name: "Content-Type", Value: "application/json"}}
	}
}
func withProcess(pid uint32, exe string) callOpt {
	return func(c *call.Call) { c.ServerProcess = &call.Process{PID: pid, Comm: filepath.Base(exe), Exe: exe} }
}
func withPort(p uint16) callOpt {
	return func(c *call.Call) { c.Server = netip.AddrPortFrom(c.Server.Addr(), p) }
}
func at(ts time.Time) callOpt { return func(c *call.Call) { c.Request.Start = ts } }
func noResponse() callOpt     { return func(c *call.Call) { c.Response = nil } }

func newCall(method, path string, opts ...callOpt) *call.Call {
	c := &call.Call{
		Client:        netip.MustParseAddrPort("10.0.0.2:40000"),
		Server:        netip.MustParseAddrPort("10.0.0.1:8080"),
		Request:       &call.Request{Method: method, Path: path, Proto: "HTTP/1.1", Start: t0},
		Response:      &call.Response{StatusCode: 200, Proto: "HTTP/1.1"},
		ServerProcess: &call.Process{PID: 100, Comm: "shop", Exe: "/usr/bin/shop"},
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

func templates(eps []Endpoint) []string {
	var out []string
	for _, e := range eps {
		out = append(out, e.Method+" "+e.PathTemplate)
	}
	return out
}

func TestPathTemplating(t *testing.T) {
	tests := []struct {
		name  string
		paths []string
		want  []string
	}{
		{"integer id", []string{"/users/42", "/users/7"}, []string{"GET /users/{userId}"}},
		{"uuid", []string{"/orders/a3bb189e-8bf9-3888-9912-ace4e6543002"}, []string{"GET /orders/{orderId}"}},
		{"md5 hash", []string{"/files/9e107d9d372bb6826bd81d3542a419d6"}, []string{"GET /files/{fileId}"}},
		{"sha256 hash", []string{"/blobs/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}, []string{"GET /blobs/{blobId}"}},
		{"date", []string{"/reports/2024-01-31"}, []string{"GET /reports/{reportId}"}},
		{"email", []string{"/accounts/alice@example.com"}, []string{"GET /accounts/{accountId}"}},
		{"token", []string{"/reset/aB3dE5fG7hJ9kL1mN3pQ5rS"}, []string{"GET /reset/{resetId}"}},
		{"nested ids", []string{"/users/1/posts/2"}, []string{"GET /users/{userId}/posts/{postId}"}},
		{"adjacent params", []string{"/42/7"}, []string{"GET /{id}/{id2}"}},
		{"static words kept", []string{"/api/v1/users", "/api/v2/users/me"}, []string{"GET /api/v1/users", "GET /api/v2/users/me"}},
		{"slug kept", []string{"/blog/release-notes-2024"}, []string{"GET /blog/release-notes-2024"}},
		{"hex word kept", []string{"/deadbeef"}, []string{"GET /deadbeef"}},
		{"trailing slash and doubles", []string{"/a//b/", "/a/b"}, []string{"GET /a/b"}},
		{"root", []string{"/"}, []string{"GET /"}},
		{"plural forms", []string{"/categories/3", "/boxes/4", "/user-groups/5"},
			[]string{"GET /boxes/{boxId}", "GET /categories/{categoryId}", "GET /user-groups/{userGroupId}"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := New(Config{}, nil)
			for _, p := range tt.paths {
				inv.Observe(newCall("GET", p))
			}
			if got := templates(inv.Snapshot()); !slices.Equal(got, tt.want) {
				t.Errorf("templates = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSegmentClassifiers(t *testing.T) {
	tests := []struct {
		seg  string
		want bool
	}{
		{"42", true}, {"v1", false}, {"users", false}, {"me", false},
		{"550e8400-e29b-41d4-a716-446655440000", true},
		{"da39a3ee5e6b4b0d3255bfef95601890afd80709", true}, // sha1
		{"0123456789abcdef", true},                         // 16 hex
		{"facade", false},
		{"2024-01-31", true}, {"2024-13-01", false},
		{"bob@example.org", true},
		{"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc", true},
		{"QmFzZTY0VG9rZW4xMjM0NTY3OA==", true},
		{"getting-started-guide", false},
		{"{weird}", true},
	}
	for _, tt := range tests {
		if got := isVariable(tt.seg); got != tt.want {
			t.Errorf("isVariable(%q) = %v, want %v", tt.seg, got, tt.want)
		}
	}
}

func TestCardinalityLearningMergesUsernames(t *testing.T) {
	inv := New(Config{MaxSegmentValues: 10}, nil)
	names := []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "niaj"}
	for i, n := range names {
		inv.Observe(newCall("GET", "/users/"+n, at(t0.Add(time.Duration(i)*time.Second))))
		inv.Observe(newCall("GET", "/users/"+n+"/posts", at(t0.Add(time.Duration(i)*time.Second))))
	}
	eps := inv.Snapshot()
	got := templates(eps)
	want := []string{"GET /users/{userId}", "GET /users/{userId}/posts"}
	if !slices.Equal(got, want) {
		t.Fatalf("templates = %q, want %q", got, want)
	}
	for _, e := range eps {
		if e.RequestCount != uint64(len(names)) {
			t.Errorf("%s count = %d, want %d", e.PathTemplate, e.RequestCount, len(names))
		}
		if !e.FirstSeen.Equal(t0) || !e.LastSeen.Equal(t0.Add(11*time.Second)) {
			t.Errorf("%s first/last = %v/%v", e.PathTemplate, e.FirstSeen, e.LastSeen)
		}
		if len(e.PathParams) != 1 || e.PathParams[0].Name != "userId" || e.PathParams[0].Type != "string" ||
			e.PathParams[0].Count != uint64(len(names)) {
			t.Errorf("%s path params = %+v", e.PathTemplate, e.PathParams)
		}
		if e.StatusCodes[200] != uint64(len(names)) {
			t.Errorf("%s status = %v", e.PathTemplate, e.StatusCodes)
		}
	}
	st := inv.Stats()
	if st.LearnedPositions != 1 || st.MergedEndpoints == 0 {
		t.Errorf("stats = %+v", st)
	}
	// Ten distinct values stay literal: the bound is "more than".
	inv2 := New(Config{MaxSegmentValues: 10}, nil)
	for _, n := range names[:10] {
		inv2.Observe(newCall("GET", "/users/"+n))
	}
	if n := len(inv2.Snapshot()); n != 10 {
		t.Errorf("10 values gave %d endpoints, want 10 literals", n)
	}
}

func TestCollectionsUnderVersionStayLiteral(t *testing.T) {
	inv := New(Config{}, nil)
	for i := range 15 {
		inv.Observe(newCall("GET", fmt.Sprintf("/api/v1/collection%c", 'a'+i)))
	}
	eps := inv.Snapshot()
	if len(eps) != 15 || eps[0].PathTemplate != "/api/v1/collectiona" {
		t.Errorf("got %q", templates(eps))
	}
}

func TestMaxEndpointsBound(t *testing.T) {
	inv := New(Config{MaxEndpoints: 3}, nil)
	for _, p := range []string{"/a", "/b", "/c", "/d", "/e"} {
		inv.Observe(newCall("GET", p))
	}
	inv.Observe(newCall("GET", "/a")) // existing endpoints still count
	eps := inv.Snapshot()
	if len(eps) != 3 {
		t.Fatalf("endpoints = %d, want 3", len(eps))
	}
	if eps[0].RequestCount != 2 {
		t.Errorf("/a count = %d", eps[0].RequestCount)
	}
	if st := inv.Stats(); st.DroppedEndpoints != 2 {
		t.Errorf("DroppedEndpoints = %d, want 2", st.DroppedEndpoints)
	}
}

func TestMaxTotalEndpointsBound(t *testing.T) {
	inv := New(Config{MaxTotalEndpoints: 2}, nil)
	inv.Observe(newCall("GET", "/a"))
	inv.Observe(newCall("GET", "/a", withPort(1)))
	inv.Observe(newCall("GET", "/b", withPort(2)))
	if n := len(inv.Snapshot()); n != 2 {
		t.Errorf("endpoints = %d, want 2", n)
	}
	if st := inv.Stats(); st.DroppedEndpoints != 1 {
		t.Errorf("DroppedEndpoints = %d", st.DroppedEndpoints)
	}
}

func TestBoundsCounted(t *testing.T) {
	inv := New(Config{MaxServices: 1, MaxPathSegments: 3, MaxProcesses: 2, MaxQueryParams: 2}, nil)
	inv.Observe(newCall("GET", "/a/b/c/d"))
	inv.Observe(newCall("GET", "/x"))
	inv.Observe(newCall("GET", "/x", withPort(9090)))
	for pid := uint32(1); pid <= 3; pid++ {
		inv.Observe(newCall("GET", "/x", withProcess(pid, "/usr/bin/shop"), withQuery(fmt.Sprintf("p%d=1", pid))))
	}
	st := inv.Stats()
	if st.DroppedDeepPaths != 1 || st.DroppedServices != 1 || st.ProcessesOverflow != 2 || st.QueryParamsOverflow != 1 {
		t.Errorf("stats = %+v", st)
	}
	eps := inv.Snapshot()
	if len(eps) != 1 || len(eps[0].Processes) != 2 || eps[0].RequestCount != 4 || len(eps[0].QueryParams) != 2 {
		t.Errorf("endpoint = %+v", eps)
	}
}

func TestServiceKey(t *testing.T) {
	inv := New(Config{}, nil)
	inv.Observe(newCall("GET", "/x"))
	inv.Observe(newCall("GET", "/x", withPort(9090)))
	inv.Observe(newCall("GET", "/x", func(c *call.Call) { c.ServerProcess = nil }))
	var got []string
	for _, e := range inv.Snapshot() {
		got = append(got, fmt.Sprintf("%s:%d", e.Service.Name, e.Service.Port))
	}
	want := []string{"shop:8080", "shop:9090", "unknown:8080"}
	if !slices.Equal(got, want) {
		t.Errorf("services = %q, want %q", got, want)
	}
}

func TestQueryParamTypes(t *testing.T) {
	inv := New(Config{}, nil)
	queries := []string{
		"page=1&limit=10&q=shoes&active=true&id=550e8400-e29b-41d4-a716-446655440000&from=2024-01-01&at=2024-01-01T10:00:00Z&mail=a%40b.io&price=3",
		"page=2&limit=20&q=hats&active=false&id=6ba7b810-9dad-11d1-80b4-00c04fd430c8&from=2024-02-01&price=3.5&mixed=1",
		"page=3&limit=5&q=x&active=true&id=6ba7b811-9dad-11d1-80b4-00c04fd430c8&from=2024-03-01&mixed=abc",
	}
	for _, q := range queries {
		inv.Observe(newCall("GET", "/search", withQuery(q)))
	}
	want := map[string]Param{
		"active": {Type: "boolean", Required: true, Count: 3},
		"at":     {Type: "string", Format: "date-time", Count: 1},
		"from":   {Type: "string", Format: "date", Required: true, Count: 3},
		"id":     {Type: "string", Format: "uuid", Required: true, Count: 3},
		"limit":  {Type: "integer", Required: true, Count: 3},
		"mail":   {Type: "string", Format: "email", Count: 1},
		"mixed":  {Type: "string", Count: 2},
		"page":   {Type: "integer", Required: true, Count: 3},
		"price":  {Type: "number", Count: 2},
		"q":      {Type: "string", Required: true, Count: 3},
	}
	eps := inv.Snapshot()
	if len(eps[0].QueryParams) != len(want) {
		t.Fatalf("params = %+v", eps[0].QueryParams)
	}
	for _, p := range eps[0].QueryParams {
		w := want[p.Name]
		w.Name, w.In = p.Name, "query"
		if p != w {
			t.Errorf("param %s = %+v, want %+v", p.Name, p, w)
		}
	}
}

func TestSchemaInferenceAndMerge(t *testing.T) {
	inv := New(Config{}, nil)
	inv.Observe(newCall("POST", "/things", withReqJSON(`{"a":1,"b":"x","c":null,"d":[1,2],"e":{"f":true},"u":"550e8400-e29b-41d4-a716-446655440000"}`),
		withRespJSON(201, `{"id":1}`)))
	inv.Observe(newCall("POST", "/things", withReqJSON(`{"a":1.5,"b":"y","c":"now","d":[3.5],"e":{"f":false,"g":"2024-01-31"},"w":"http://x.io"}`),
		withRespJSON(201, `{"id":2,"extra":null}`)))
	inv.Observe(newCall("POST", "/things", withReqJSON(`{"a":2,"b":{"x":1},"c":"z","d":[],"e":{"f":true}}`),
		withRespJSON(400, `{"error":"bad","ip":"203.0.113.9"}`)))
	e := inv.Snapshot()[0]
	rs := e.RequestSchema
	check := func(name string, got *Schema, typ, format string, nullable bool) {
		t.Helper()
		if got == nil {
			t.Errorf("%s missing", name)
			return
		}
		if got.Type != typ || got.Format != format || got.Nullable != nullable {
			t.Errorf("%s = %+v, want type %q format %q nullable %v", name, got, typ, format, nullable)
		}
	}
	check("root", rs, "object", "", false)
	check("a", rs.Properties["a"], "number", "", false) // integer widened
	check("b", rs.Properties["b"], "", "", false)       // string vs object conflict
	check("c", rs.Properties["c"], "string", "", true)  // null then string
	check("d", rs.Properties["d"], "array", "", false)  //
	check("d[]", rs.Properties["d"].Items, "number", "", false)
	check("e.f", rs.Properties["e"].Properties["f"], "boolean", "", false)
	check("e.g", rs.Properties["e"].Properties["g"], "string", "date", false)
	check("u", rs.Properties["u"], "string", "uuid", false)
	check("w", rs.Properties["w"], "string", "uri", false)
	if want := []string{"a", "b", "c", "d", "e"}; !slices.Equal(rs.Required, want) {
		t.Errorf("required = %q, want %q", rs.Required, want)
	}
	if want := []string{"f"}; !slices.Equal(rs.Properties["e"].Required, want) {
		t.Errorf("e.required = %q, want %q", rs.Properties["e"].Required, want)
	}
	r201 := e.ResponseSchemas[201]
	check("201.extra", r201.Properties["extra"], "null", "", false)
	if !slices.Equal(r201.Required, []string{"id"}) {
		t.Errorf("201 required = %q", r201.Required)
	}
	check("400.ip", e.ResponseSchemas[400].Properties["ip"], "string", "ipv4", false)
	if e.RequestContentTypes["application/json"] != 3 || e.ResponseContentTypes["application/json"] != 3 {
		t.Errorf("content types = %v / %v", e.RequestContentTypes, e.ResponseContentTypes)
	}
}

func TestSchemaBounds(t *testing.T) {
	inv := New(Config{MaxSchemaDepth: 2, MaxSchemaProperties: 3}, nil)
	inv.Observe(newCall("POST", "/x", withReqJSON(`{"a":{"b":{"c":{"d":1}}},"k1":1,"k2":2,"k3":3}`)))
	s := inv.Snapshot()[0].RequestSchema
	if len(s.Properties) != 3 {
		t.Errorf("properties = %d, want 3", len(s.Properties))
	}
	if b := s.Properties["a"].Properties["b"]; b == nil || b.Type != "object" || b.Properties != nil {
		t.Errorf("depth bound not applied: %+v", b)
	}
	// k3 beyond MaxSchemaProperties, b's content beyond MaxSchemaDepth.
	if st := inv.Stats(); st.SchemaPropsOverflow != 2 {
		t.Errorf("SchemaPropsOverflow = %d", st.SchemaPropsOverflow)
	}
}

func TestSchemaNodesBound(t *testing.T) {
	inv := New(Config{MaxSchemaNodes: 6}, nil)
	// One sample of 1+8 nodes is cut at 6.
	inv.Observe(newCall("POST", "/x", withReqJSON(`{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8}`)))
	s := inv.Snapshot()[0].RequestSchema
	if n := schemaSize(s); n != 6 {
		t.Errorf("schema nodes = %d, want 6", n)
	}
	// Later samples with new keys cannot grow it either.
	inv.Observe(newCall("POST", "/x", withReqJSON(`{"x":1,"y":{"z":[1]}}`)))
	if n := schemaSize(inv.Snapshot()[0].RequestSchema); n != 6 {
		t.Errorf("schema nodes after merge = %d, want 6", n)
	}
	if st := inv.Stats(); st.SchemaPropsOverflow < 4 {
		t.Errorf("SchemaPropsOverflow = %d", st.SchemaPropsOverflow)
	}
}

func TestTruncatedBodySkipped(t *testing.T) {
	inv := New(Config{}, nil)
	inv.Observe(newCall("POST", "/x", withReqJSON(`{"a":`), func(c *call.Call) { c.Request.BodyTruncated = true }))
	if e := inv.Snapshot()[0]; e.RequestSchema != nil {
		t.Errorf("schema from truncated body: %+v", e.RequestSchema)
	}
	if st := inv.Stats(); st.BodiesSkipped != 1 {
		t.Errorf("BodiesSkipped = %d", st.BodiesSkipped)
	}
}

const testJWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"

func TestAuthDetection(t *testing.T) {
	tests := []struct {
		name string
		opts []callOpt
		want []string
	}{
		{"none", nil, []string{"none"}},
		{"bearer jwt", []callOpt{withHeader("Authorization", "Bearer "+testJWT)}, []string{"bearer-jwt"}},
		{"bearer opaque", []callOpt{withHeader("authorization", "bearer abcdef123456")}, []string{"bearer"}},
		{"basic", []callOpt{withHeader("Authorization", "Basic dXNlcjpwYXNz")}, []string{"basic"}},
		{"digest", []callOpt{withHeader("Authorization", "Digest username=x")}, []string{"digest"}},
		{"x-api-key", []callOpt{withHeader("X-API-Key", "k")}, []string{"api-key:x-api-key"}},
		{"api-key", []callOpt{withHeader("Api-Key", "k")}, []string{"api-key:api-key"}},
		{"websocket key ignored", []callOpt{withHeader("Sec-WebSocket-Key", "k")}, []string{"none"}},
		{"session cookie", []callOpt{withHeader("Cookie", "theme=dark; sessionid=abc; JSESSIONID=x")},
			[]string{"cookie:JSESSIONID", "cookie:sessionid"}},
		{"plain cookie", []callOpt{withHeader("Cookie", "theme=dark")}, []string{"none"}},
		{"query key", []callOpt{withQuery("api_key=abc&x=1")}, []string{"query-key:api_key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := New(Config{}, nil)
			inv.Observe(newCall("GET", "/x", tt.opts...))
			var got []string
			for k := range inv.Snapshot()[0].AuthSchemes {
				got = append(got, k)
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("auth = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSensitiveDetection(t *testing.T) {
	tests := []struct {
		name string
		opts []callOpt
		want []string
	}{
		{"nothing", []callOpt{withReqJSON(`{"name":"bob","qty":3}`)}, nil},
		{"email in json", []callOpt{withReqJSON(`{"contact":"bob@example.com"}`)}, []string{"email"}},
		{"card string", []callOpt{withReqJSON(`{"pan":"4111-1111-1111-1111"}`)}, []string{"credit-card"}},
		{"card number", []callOpt{withReqJSON(`{"pan":5555555555554444}`)}, []string{"credit-card"}},
		{"order number fails luhn", []callOpt{withReqJSON(`{"order":4111111111111112,"ref":"4111111111111112"}`)}, nil},
		{"ssn", []callOpt{withReqJSON(`{"ssn":"123-45-6789"}`)}, []string{"us-ssn"}},
		{"invalid ssn", []callOpt{withReqJSON(`{"code":"000-12-3456"}`)}, nil},
		{"jwt in body", []callOpt{withReqJSON(`{"t":"` + testJWT + `"}`)}, []string{"jwt"}},
		{"password field", []callOpt{withReqJSON(`{"user":{"Password":"x"}}`)}, []string{"password"}},
		{"secret field", []callOpt{withReqJSON(`{"client_secret":"x","apiKey":"y"}`)}, []string{"secret"}},
		{"private ip", []callOpt{withRespJSON(200, `{"backend":"192.168.1.20"}`)}, []string{"private-ip"}},
		{"public ip", []callOpt{withRespJSON(200, `{"backend":"8.8.8.8"}`)}, nil},
		{"email in query", []callOpt{withQuery("to=alice%40example.com")}, []string{"email"}},
		{"password in query", []callOpt{withQuery("password=x")}, []string{"password"}},
		{"email in path", []callOpt{func(c *call.Call) { c.Request.Path = "/users/a@b.io" }}, []string{"email"}},
		{"password in form", []callOpt{func(c *call.Call) {
			c.Request.Body = []byte("user=bob&password=hunter2")
			c.Request.Headers = call.Headers{{Name: "Content-Type", Value: "application/x-www-form-urlencoded"}}
		}}, []string{"password"}},
		{"response card", []callOpt{withRespJSON(200, `[{"card":"378282246310005"}]`)}, []string{"credit-card"}},
		{"phone e164", []callOpt{withRespJSON(200, `{"phone":"+44 20 7946 0958"}`)}, []string{"phone"}},
		{"phone e164 compact", []callOpt{withRespJSON(200, `{"m":"+14155552671"}`)}, []string{"phone"}},
		{"phone nanp", []callOpt{withRespJSON(200, `{"a":"(415) 555-2671","b":"415.555.2671"}`)}, []string{"phone"}},
		{"too short for e164", []callOpt{withRespJSON(200, `{"a":"+1234567"}`)}, nil},
		{"date is not a phone", []callOpt{withRespJSON(200, `{"d":"2024-01-15","v":"1.555.2671","id":"4155552671"}`)}, nil},
		{"nanp mixed separators", []callOpt{withRespJSON(200, `{"a":"415-555.2671"}`)}, nil},
		{"iban", []callOpt{withRespJSON(200, `{"acct":"GB82 WEST 1234 5698 7654 32","de":"DE89370400440532013000"}`)}, []string{"iban"}},
		{"iban bad checksum", []callOpt{withRespJSON(200, `{"acct":"GB82WEST12345698765433"}`)}, nil},
		{"uk nino", []callOpt{withRespJSON(200, `{"ni":"AB 12 34 56 C"}`)}, []string{"uk-nino"}},
		{"uk nino bad prefix", []callOpt{withRespJSON(200, `{"ni":"GB123456A","x":"QQ123456C","y":"AB123456E"}`)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := New(Config{}, nil)
			inv.Observe(newCall("POST", "/x", tt.opts...))
			if got := inv.Snapshot()[0].Sensitive; !slices.Equal(got, tt.want) {
				t.Errorf("sensitive = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTLSProcessesAndNoResponse(t *testing.T) {
	inv := New(Config{}, nil)
	inv.Observe(newCall("GET", "/x", func(c *call.Call) { c.TLS = "openssl 3.0.15" }, withProcess(7, "/usr/bin/shop")))
	inv.Observe(newCall("GET", "/x", withProcess(3, "/usr/bin/shop")))
	inv.Observe(newCall("GET", "/x", noResponse()))
	e := inv.Snapshot()[0]
	if e.TLS["openssl 3.0.15"] != 1 || e.TLS[""] != 2 {
		t.Errorf("tls = %v", e.TLS)
	}
	if e.NoResponse != 1 || e.StatusCodes[200] != 2 {
		t.Errorf("no response = %d status = %v", e.NoResponse, e.StatusCodes)
	}
	var pids []uint32
	for _, p := range e.Processes {
		pids = append(pids, p.PID)
	}
	if !slices.Equal(pids, []uint32{3, 7, 100}) {
		t.Errorf("pids = %v", pids)
	}
}

func TestSnapshotIsDeepCopy(t *testing.T) {
	inv := New(Config{}, nil)
	inv.Observe(newCall("POST", "/x", withReqJSON(`{"a":{"b":1}}`)))
	s1 := inv.Snapshot()
	s1[0].RequestSchema.Properties["a"].Type = "mutated"
	s1[0].StatusCodes[200] = 99
	s2 := inv.Snapshot()
	if s2[0].RequestSchema.Properties["a"].Type != "object" || s2[0].StatusCodes[200] != 1 {
		t.Error("snapshot aliases live state")
	}
}

func richInventory(t testing.TB) *Inventory {
	t.Helper()
	orderReq, err := os.ReadFile("testdata/order_request.json")
	if err != nil {
		t.Fatal(err)
	}
	orderResp, err := os.ReadFile("testdata/order_response.json")
	if err != nil {
		t.Fatal(err)
	}
	inv := New(Config{}, nil)
	for i := range 12 {
		ts := t0.Add(time.Duration(i) * time.Minute)
		inv.Observe(newCall("POST", "/api/v1/orders", at(ts), withReqJSON(string(orderReq)), withRespJSON(201, string(orderResp)),
			withHeader("Authorization", "Bearer "+testJWT)))
		inv.Observe(newCall("GET", fmt.Sprintf("/api/v1/orders/%d", 1000+i), at(ts), withQuery("expand=items&page="+fmt.Sprint(i)),
			withRespJSON(200, string(orderResp)), withHeader("X-API-Key", "k")))
		inv.Observe(newCall("GET", fmt.Sprintf("/users/user%c/profile", 'a'+i), at(ts), withProcess(200, "/usr/bin/users"), withPort(9000),
			withHeader("Cookie", "sid=1"), withRespJSON(200, `{"email":"x@y.io","age":3}`)))
	}
	inv.Observe(newCall("DELETE", "/api/v1/orders/5", withRespJSON(404, `{"error":"not found"}`), func(c *call.Call) { c.TLS = "go crypto/tls" }))
	inv.Observe(newCall("GET", "/health", noResponse(), func(c *call.Call) { c.ServerProcess = nil }))
	return inv
}

func TestRestoreYieldsIdenticalSnapshot(t *testing.T) {
	inv := richInventory(t)
	state, err := inv.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	inv2 := New(Config{}, nil)
	if err := inv2.RestoreState(state); err != nil {
		t.Fatal(err)
	}
	a, b := inv.Snapshot(), inv2.Snapshot()
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("restored snapshot differs:\n%+v\n%+v", a, b)
	}
	// Learned templates survive: a new username folds into the template.
	inv2.Observe(newCall("GET", "/users/zed/profile", withProcess(200, "/usr/bin/users"), withPort(9000)))
	if n := len(inv2.Snapshot()); n != len(a) {
		t.Errorf("endpoints after restore+observe = %d, want %d", n, len(a))
	}
	if err := inv2.RestoreState([]byte(`{"version":99}`)); err == nil {
		t.Error("bad version accepted")
	}
}

func TestConcurrentObserve(t *testing.T) {
	inv := New(Config{}, nil)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				inv.Observe(newCall("POST", fmt.Sprintf("/users/name%d_%d", g, i%30), withReqJSON(`{"a":1}`)))
				if i%50 == 0 {
					_ = inv.Snapshot()
				}
			}
		}()
	}
	wg.Wait()
	eps := inv.Snapshot()
	var total uint64
	for _, e := range eps {
		total += e.RequestCount
	}
	if total != 800 || len(eps) > 11 {
		t.Errorf("total = %d endpoints = %q", total, templates(eps))
	}
}

func BenchmarkObserve(b *testing.B) {
	orderReq, _ := os.ReadFile("testdata/order_request.json")
	orderResp, _ := os.ReadFile("testdata/order_response.json")
	inv := New(Config{}, nil)
	calls := make([]*call.Call, 64)
	for i := range calls {
		calls[i] = newCall("POST", fmt.Sprintf("/api/v1/users/%d/orders", i), withQuery("dry_run=false&page=2"),
			withReqJSON(string(orderReq)), withRespJSON(201, string(orderResp)),
			withHeader("Authorization", "Bearer "+testJWT), withHeader("Accept", "*/*"), withHeader("User-Agent", "bench"))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		inv.Observe(calls[i%len(calls)])
	}
}

// BenchmarkObserveSampled measures the cost of a call whose bodies are
// parsed (the first calls of an endpoint and one in SchemaSampleEvery).
func BenchmarkObserveSampled(b *testing.B) {
	orderReq, _ := os.ReadFile("testdata/order_request.json")
	orderResp, _ := os.ReadFile("testdata/order_response.json")
	inv := New(Config{SchemaSampleEvery: 1, SchemaSampleMaxEvery: 1}, nil) // no backoff: every call parsed
	c := newCall("POST", "/api/v1/users/1/orders", withQuery("dry_run=false&page=2"),
		withReqJSON(string(orderReq)), withRespJSON(201, string(orderResp)),
		withHeader("Authorization", "Bearer "+testJWT))
	b.ReportAllocs()
	for b.Loop() {
		inv.Observe(c)
	}
}

// BenchmarkObserveUnsampled measures the fixed cost of a call whose bodies
// are not parsed, the common case once an endpoint's schema has settled.
func BenchmarkObserveUnsampled(b *testing.B) {
	orderReq, _ := os.ReadFile("testdata/order_request.json")
	inv := New(Config{SchemaSampleAll: 1, SchemaSampleEvery: 1 << 62}, nil)
	c := newCall("POST", "/api/v1/users/42/orders", withQuery("dry_run=false&page=2"), withReqJSON(string(orderReq)),
		withHeader("Authorization", "Bearer "+testJWT), withHeader("Accept", "*/*"), withHeader("User-Agent", "bench"))
	b.ReportAllocs()
	for b.Loop() {
		inv.Observe(c)
	}
}

func TestLearningCascades(t *testing.T) {
	// Each user has its own repositories: once users are learned, their
	// repositories meet under one position and exceed the bound there too.
	inv := New(Config{MaxSegmentValues: 5}, nil)
	for u := range 6 {
		for r := range 3 {
			inv.Observe(newCall("GET", fmt.Sprintf("/users/u%c/repos/r%c%c", 'a'+u, 'a'+u, 'a'+r)))
		}
	}
	eps := inv.Snapshot()
	if got := templates(eps); !slices.Equal(got, []string{"GET /users/{userId}/repos/{repoId}"}) {
		t.Fatalf("templates = %q", got)
	}
	if eps[0].RequestCount != 18 || inv.Stats().LearnedPositions != 2 {
		t.Errorf("count = %d stats = %+v", eps[0].RequestCount, inv.Stats())
	}
	for _, p := range eps[0].PathParams {
		if p.Count != 18 {
			t.Errorf("param %s count = %d", p.Name, p.Count)
		}
	}
}

func TestTypedAndLearnedValuesShareOneTemplate(t *testing.T) {
	inv := New(Config{MaxSegmentValues: 3}, nil)
	for _, p := range []string{"/users/1", "/users/2", "/users/me", "/users/alice", "/users/bob", "/users/carol"} {
		inv.Observe(newCall("GET", p))
	}
	eps := inv.Snapshot()
	if got := templates(eps); !slices.Equal(got, []string{"GET /users/{userId}"}) {
		t.Fatalf("templates = %q", got)
	}
	if p := eps[0].PathParams[0]; p.Type != "string" || p.Count != 6 {
		t.Errorf("param = %+v", p)
	}
}

func TestMaxTrieNodesBound(t *testing.T) {
	inv := New(Config{MaxTrieNodes: 4, MaxEndpoints: 100}, nil)
	inv.Observe(newCall("GET", "/a/b/c")) // root + 3 nodes
	inv.Observe(newCall("GET", "/a/b/d"))
	if n := len(inv.Snapshot()); n != 1 {
		t.Errorf("endpoints = %d, want 1", n)
	}
	if st := inv.Stats(); st.DroppedTrieFull != 1 {
		t.Errorf("DroppedTrieFull = %d", st.DroppedTrieFull)
	}
}

func TestFormBodySchema(t *testing.T) {
	inv := New(Config{}, nil)
	form := func(b string) callOpt {
		return func(c *call.Call) {
			c.Request.Body = []byte(b)
			c.Request.Headers = call.Headers{{Name: "Content-Type", Value: "application/x-www-form-urlencoded"}}
		}
	}
	inv.Observe(newCall("POST", "/login", form("user=bob&remember=true&age=3")))
	inv.Observe(newCall("POST", "/login", form("user=al%40x.io&age=4.5")))
	s := inv.Snapshot()[0].RequestSchema
	if s == nil || s.Type != "object" || !slices.Equal(s.Required, []string{"age", "user"}) {
		t.Fatalf("schema = %+v", s)
	}
	if s.Properties["age"].Type != "number" || s.Properties["remember"].Type != "boolean" || s.Properties["user"].Format != "" {
		t.Errorf("properties = %+v %+v %+v", s.Properties["age"], s.Properties["remember"], s.Properties["user"])
	}
}

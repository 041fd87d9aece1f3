package behavior

import (
	"encoding/base64"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/apiwarden/apiwarden/apimodel/call"
	"github.com/apiwarden/apiwarden/apimodel/inventory"
)

var t0 = time.Date(2026, 12, 6, 4, 0, 0, 0, time.UTC)

func mkCall(src string, method, path string, status int, at time.Time) *call.Call {
	return &call.Call{
		Client:   netip.MustParseAddrPort(src + ":40000"),
		Server:   netip.MustParseAddrPort("10.0.0.1:8080"),
		Request:  &call.Request{Method: method, Path: path, Start: at},
		Response: &call.Response{StatusCode: status, BodySize: 100},
	}
}

func rules(as []Anomaly) map[string]int {
	out := map[string]int{}
	for _, a := range as {
		out[a.RuleID]++
	}
	return out
}

func newModel(cfg Config) *Model {
	cfg.Key = []byte("test-key")
	return New(cfg, nil)
}

// The scenario: one client reading /api/v1/orders/1 ... /600.
func TestEnumerationOneClient600Orders(t *testing.T) {
	m := newModel(Config{})
	first := 0
	var got []Anomaly
	for i := 1; i <= 600; i++ {
		as := m.Observe(mkCall("192.0.2.7", "GET", fmt.Sprintf("/api/v1/orders/%d", i), 200, t0.Add(time.Duration(i)*10*time.Millisecond)),
			"shop", "/api/v1/orders/{orderId}")
		if len(as) > 0 && first == 0 {
			first = i
		}
		got = append(got, as...)
	}
	if n := rules(got)[RuleEnumeration]; n != 1 {
		t.Fatalf("enumeration findings = %d, want 1 (once per window); all %v", n, rules(got))
	}
	if first == 0 || first > 100 {
		t.Fatalf("detected at call %d, want within the first 100", first)
	}
	a := got[0]
	if !a.Block || a.Class != Class || a.Client.Source != netip.MustParseAddr("192.0.2.7") || !strings.Contains(a.Excerpt, "distinct object ids") {
		t.Fatalf("finding = %+v", a)
	}
	t.Logf("enumeration detected at call %d: %s", first, a.Excerpt)
}

func TestEnumerationBenignFiveOrders(t *testing.T) {
	m := newModel(Config{})
	for i := 1; i <= 5; i++ {
		if as := m.Observe(mkCall("192.0.2.8", "GET", fmt.Sprintf("/api/v1/orders/%d", i), 200, t0.Add(time.Duration(i)*time.Second)),
			"shop", "/api/v1/orders/{orderId}"); len(as) > 0 {
			t.Fatalf("benign client: %v", as)
		}
	}
}

// Exactly at the threshold: 99 distinct ids pass, the 100th fires; the
// same ids re-read do not count.
func TestEnumerationThreshold(t *testing.T) {
	m := newModel(Config{EnumDistinct: 100})
	for r := 0; r < 3; r++ {
		for i := 1; i <= 99; i++ {
			if as := m.Observe(mkCall("192.0.2.9", "GET", fmt.Sprintf("/o/%d", i), 200, t0), "s", "/o/{id}"); len(as) > 0 {
				t.Fatalf("round %d id %d: %v", r, i, as)
			}
		}
	}
	if as := m.Observe(mkCall("192.0.2.9", "GET", "/o/100", 200, t0), "s", "/o/{id}"); rules(as)[RuleEnumeration] != 1 {
		t.Fatalf("100th distinct id: %v", as)
	}
	// A new window starts the count over.
	if as := m.Observe(mkCall("192.0.2.9", "GET", "/o/101", 200, t0.Add(2*time.Minute)), "s", "/o/{id}"); len(as) > 0 {
		t.Fatalf("new window: %v", as)
	}
}

func loginCall(src, user string, status int, at time.Time) *call.Call {
	c := mkCall(src, "POST", "/api/v1/login", status, at)
	c.Request.Body = []byte(fmt.Sprintf(`{"username":%q,"password":"guess"}`, user))
	c.Request.BodySize = int64(len(c.Request.Body))
	c.Request.Headers = call.Headers{{Name: "Content-Type", Value: "application/json"}}
	return c
}

// The scenario: 200 failed logins for one account from five
// addresses.
func TestCredentialStuffingAcrossClients(t *testing.T) {
	m := newModel(Config{AuthFailures: 1000}) // per-client brute force out of the way
	var got []Anomaly
	first := 0
	for i := 0; i < 200; i++ {
		src := fmt.Sprintf("198.51.100.%d", 1+i%5)
		as := m.Observe(loginCall(src, "alice@example.com", 401, t0.Add(time.Duration(i)*100*time.Millisecond)), "shop", "/api/v1/login")
		if len(as) > 0 && first == 0 {
			first = i + 1
		}
		got = append(got, as...)
	}
	clients := map[netip.Addr]bool{}
	for _, a := range got {
		if a.RuleID != RuleCredentialStuffing {
			t.Fatalf("unexpected %v", a)
		}
		clients[a.Client.Source] = true
		if strings.Contains(a.Excerpt, "alice") {
			t.Fatalf("raw account name in evidence: %s", a.Excerpt)
		}
	}
	if len(clients) != 5 {
		t.Fatalf("credential stuffing flagged %d clients, want all 5: %v", len(clients), got)
	}
	if first > 100 {
		t.Fatalf("first at %d", first)
	}
	t.Logf("first finding at call %d: %s", first, got[0].Excerpt)
}

func TestBruteForceOneClientAndBenignLogins(t *testing.T) {
	m := newModel(Config{})
	// Benign: a user mistypes twice, then logs in; others log in fine.
	for i := 0; i < 50; i++ {
		st := 200
		if i%10 < 2 {
			st = 401
		}
		if as := m.Observe(loginCall(fmt.Sprintf("203.0.113.%d", i%10), fmt.Sprintf("user%d", i%10), st, t0.Add(time.Duration(i)*time.Second)), "shop", "/api/v1/login"); len(as) > 0 {
			t.Fatalf("benign logins: %v", as)
		}
	}
	var got []Anomaly
	for i := 0; i < 20; i++ {
		got = append(got, m.Observe(loginCall("203.0.113.99", fmt.Sprintf("victim%d", i), 401, t0.Add(time.Duration(i)*time.Second)), "shop", "/api/v1/login")...)
	}
	if r := rules(got); r[RuleBruteForce] != 1 || len(r) != 1 {
		t.Fatalf("20 failures from one client: %v", r)
	}
}

// learn feeds n calls from rotating clients so the endpoint is learned.
func learn(m *Model, n int, mk func(i int) *call.Call) {
	for i := 0; i < n; i++ {
		m.Observe(mk(i), "shop", "/api/v1/users/{userId}")
	}
}

func jsonCall(src, method, path, body string, at time.Time) *call.Call {
	c := mkCall(src, method, path, 200, at)
	c.Request.Body = []byte(body)
	c.Request.BodySize = int64(len(body))
	return c
}

func TestMassAssignmentTypeDriftUnknownField(t *testing.T) {
	m := newModel(Config{LearningCalls: 50})
	learn(m, 50, func(i int) *call.Call {
		return jsonCall(fmt.Sprintf("10.1.0.%d", i%20), "PUT", fmt.Sprintf("/api/v1/users/%d", i), `{"name":"a","age":30}`, t0.Add(time.Duration(i)*time.Second))
	})
	at := t0.Add(time.Hour)
	if as := m.Observe(jsonCall("10.1.0.1", "PUT", "/api/v1/users/1", `{"name":"b","age":31}`, at), "shop", "/api/v1/users/{userId}"); len(as) > 0 {
		t.Fatalf("benign after learning: %v", as)
	}
	as := m.Observe(jsonCall("10.1.0.66", "PUT", "/api/v1/users/66", `{"name":"x","isAdmin":true}`, at), "shop", "/api/v1/users/{userId}")
	if rules(as)[RuleMassAssignment] != 1 || as[0].Part != "json:isAdmin" || !as[0].Block {
		t.Fatalf("mass assignment: %+v", as)
	}
	as = m.Observe(jsonCall("10.1.0.67", "PUT", "/api/v1/users/67", `{"name":"x","age":"31 or 1=1"}`, at), "shop", "/api/v1/users/{userId}")
	if rules(as)[RuleTypeDrift] != 1 {
		t.Fatalf("type drift: %+v", as)
	}
	as = m.Observe(jsonCall("10.1.0.68", "PUT", "/api/v1/users/68", `{"name":"x","nickname":"y"}`, at), "shop", "/api/v1/users/{userId}")
	if rules(as)[RuleUnknownField] != 1 {
		t.Fatalf("unknown field: %+v", as)
	}
}

func TestSensitiveExposureAndResponseSize(t *testing.T) {
	m := newModel(Config{LearningCalls: 50})
	resp := func(c *call.Call, body string) *call.Call {
		c.Response.Body = []byte(body)
		c.Response.BodySize = int64(len(body))
		return c
	}
	learn(m, 50, func(i int) *call.Call {
		return resp(mkCall("10.2.0.1", "GET", fmt.Sprintf("/api/v1/users/%d", i), 200, t0), `{"id":1,"email":"a@example.com"}`)
	})
	// email was learned: nothing.
	if as := m.Observe(resp(mkCall("10.2.0.2", "GET", "/api/v1/users/2", 200, t0), `{"id":2,"email":"b@example.com"}`), "shop", "/api/v1/users/{userId}"); len(as) > 0 {
		t.Fatalf("learned kind: %v", as)
	}
	as := m.Observe(resp(mkCall("10.2.0.3", "GET", "/api/v1/users/3", 200, t0), `{"id":3,"card":"4111 1111 1111 1111"}`), "shop", "/api/v1/users/{userId}")
	if rules(as)[RuleSensitiveExposure] != 1 || !strings.Contains(as[0].Excerpt, "credit-card") || as[0].Block {
		t.Fatalf("card exposure: %+v", as)
	}
	// Once per window per kind.
	if as := m.Observe(resp(mkCall("10.2.0.3", "GET", "/api/v1/users/3", 200, t0), `{"card":"4111 1111 1111 1111"}`), "shop", "/api/v1/users/{userId}"); len(as) > 0 {
		t.Fatalf("repeat: %v", as)
	}
	big := `{"users":[` + strings.Repeat(`{"id":1,"name":"xxxxxxxx"},`, 400) + `{}]}`
	as = m.Observe(resp(mkCall("10.2.0.4", "GET", "/api/v1/users/4", 200, t0), big), "shop", "/api/v1/users/{userId}")
	if rules(as)[RuleResponseSize] != 1 {
		t.Fatalf("size jump: %+v", as)
	}
	as = m.Observe(resp(mkCall("10.2.0.5", "GET", "/api/v1/users/5", 200, t0), `{"key":"-----BEGIN RSA PRIVATE KEY-----\nabc"}`), "shop", "/api/v1/users/{userId}")
	if rules(as)[RuleSensitiveExposure] != 1 || !strings.Contains(as[0].Excerpt, "private-key") {
		t.Fatalf("private key: %+v", as)
	}
}

func TestClientRateConfiguredAndLearned(t *testing.T) {
	m := newModel(Config{ClientRateLimit: 50})
	var got []Anomaly
	for i := 0; i < 60; i++ {
		got = append(got, m.Observe(mkCall("10.3.0.1", "GET", "/api/v1/reports", 200, t0), "shop", "/api/v1/reports")...)
	}
	if r := rules(got); r[RuleClientRate] != 1 {
		t.Fatalf("configured limit: %v", r)
	}

	// Learned: 10 clients x 5 calls per window for 10 windows, then one
	// client makes 400 calls in a window (10x the norm is 50, RateMin 300).
	m = newModel(Config{LearningCalls: 100, RateMin: 300})
	for w := 0; w < 10; w++ {
		for c := 0; c < 10; c++ {
			for k := 0; k < 5; k++ {
				if as := m.Observe(mkCall(fmt.Sprintf("10.4.0.%d", c), "GET", "/api/v1/reports", 200, t0.Add(time.Duration(w)*time.Minute)), "shop", "/api/v1/reports"); len(as) > 0 {
					t.Fatalf("benign: %v", as)
				}
			}
		}
	}
	got = nil
	for i := 0; i < 400; i++ {
		got = append(got, m.Observe(mkCall("10.4.0.200", "GET", "/api/v1/reports", 200, t0.Add(11*time.Minute)), "shop", "/api/v1/reports")...)
	}
	if r := rules(got); r[RuleClientRate] != 1 {
		t.Fatalf("learned rate: %v", r)
	}
}

func TestLRUBoundsAtLimit(t *testing.T) {
	m := newModel(Config{MaxClients: 100, MaxEndpoints: 10})
	for i := 0; i < 1000; i++ {
		m.Observe(mkCall(fmt.Sprintf("10.%d.%d.1", i/256, i%256), "GET", fmt.Sprintf("/e%d", i%20), 200, t0), "s", fmt.Sprintf("/e%d", i%20))
	}
	s := m.Stats()
	if s.Clients != 100 || s.Endpoints != 10 || s.EvictedClients != 900 || s.EvictedEndpoints == 0 {
		t.Fatalf("stats at the bound: %+v", s)
	}
}

func TestIdentityXFFAndCredentials(t *testing.T) {
	m := newModel(Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}})
	c := mkCall("10.9.0.1", "GET", "/", 200, t0)
	c.Request.Headers = call.Headers{{Name: "X-Forwarded-For", Value: "1.2.3.4, 5.6.7.8, 10.9.0.2"}}
	if id := m.identify(c); id.Addr != netip.MustParseAddr("5.6.7.8") || id.Source != netip.MustParseAddr("10.9.0.1") {
		t.Fatalf("trusted proxy: %+v", id)
	}
	c = mkCall("192.0.2.1", "GET", "/", 200, t0)
	c.Request.Headers = call.Headers{{Name: "X-Forwarded-For", Value: "5.6.7.8"}}
	if id := m.identify(c); id.Addr != netip.MustParseAddr("192.0.2.1") {
		t.Fatalf("untrusted proxy honoured: %+v", id)
	}
	payload := base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"user-42"}`))
	c.Request.Headers = call.Headers{{Name: "Authorization", Value: "Bearer eyJhbGciOiJIUzI1NiJ9." + payload + ".sig"}}
	id1 := m.identify(c)
	c.Request.Headers = call.Headers{{Name: "Authorization", Value: "Bearer eyJhbGciOiJIUzI1NiJ9." + payload + ".othersig"}}
	id2 := m.identify(c)
	if id1.Credential == "" || id1.Credential != id2.Credential || !strings.HasPrefix(id1.Credential, "sub:") || strings.Contains(id1.Credential, "user-42") {
		t.Fatalf("jwt subject identity: %q %q", id1.Credential, id2.Credential)
	}
	c.Request.Headers = call.Headers{{Name: "X-API-Key", Value: "k-secret"}}
	if id := m.identify(c); !strings.HasPrefix(id.Credential, "key:") || strings.Contains(id.Credential, "secret") {
		t.Fatalf("api key: %q", id.Credential)
	}
	c.Request.Headers = call.Headers{{Name: "Cookie", Value: "theme=dark; sessionid=abc123"}}
	if id := m.identify(c); !strings.HasPrefix(id.Credential, "cookie:") {
		t.Fatalf("cookie: %q", id.Credential)
	}
}

func TestSpecDiffAndPositiveMode(t *testing.T) {
	data, err := os.ReadFile("testdata/shop.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sp, err := ParseSpec(data)
	if err != nil {
		t.Fatal(err)
	}
	obs := []inventory.Endpoint{
		{Service: inventory.Service{Name: "shop"}, Method: "GET", PathTemplate: "/api/v1/orders/{orderId}"},
		{Service: inventory.Service{Name: "shop"}, Method: "GET", PathTemplate: "/api/v1/legacy"},
		{Service: inventory.Service{Name: "shop"}, Method: "GET", PathTemplate: "/api/v1/internal/debug"},
		{Service: inventory.Service{Name: "other"}, Method: "GET", PathTemplate: "/x"},
	}
	d := Diff(sp, "shop", obs)
	if fmt.Sprint(d.Undocumented) != "[GET /api/v1/internal/debug]" || fmt.Sprint(d.DeprecatedCalled) != "[GET /api/v1/legacy]" ||
		fmt.Sprint(d.Unobserved) != "[GET /api/v1/reports POST /api/v1/login]" {
		t.Fatalf("diff: %+v", d)
	}
	m := newModel(Config{Positive: true})
	m.SetSpec("shop", sp)
	if as := m.Observe(mkCall("10.5.0.1", "GET", "/api/v1/orders/1", 200, t0), "shop", "/api/v1/orders/{orderId}"); len(as) > 0 {
		t.Fatalf("documented: %v", as)
	}
	if as := m.Observe(mkCall("10.5.0.1", "GET", "/api/v1/internal/debug", 200, t0), "shop", "/api/v1/internal/debug"); rules(as)[RuleShadowEndpoint] != 1 {
		t.Fatalf("shadow: %v", as)
	}
}

func TestStateRoundTripAndReset(t *testing.T) {
	m := newModel(Config{LearningCalls: 10})
	learn(m, 20, func(i int) *call.Call {
		return jsonCall("10.6.0.1", "PUT", fmt.Sprintf("/api/v1/users/%d", i), `{"name":"a"}`, t0)
	})
	b, err := m.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	m2 := newModel(Config{LearningCalls: 10})
	if err := m2.RestoreState(b); err != nil {
		t.Fatal(err)
	}
	bl := m2.Baselines()
	if len(bl) != 1 || bl[0].Calls != 20 || !bl[0].Learned || bl[0].Fields["json:name"] == 0 {
		t.Fatalf("restored: %+v", bl)
	}
	// The restored baseline is used at once: a new privileged field fires.
	if as := m2.Observe(jsonCall("10.6.0.2", "PUT", "/api/v1/users/1", `{"name":"a","role":"admin"}`, t0), "shop", "/api/v1/users/{userId}"); rules(as)[RuleMassAssignment] != 1 {
		t.Fatalf("after restore: %v", as)
	}
	m2.Reset()
	if len(m2.Baselines()) != 0 {
		t.Fatal("reset kept baselines")
	}
}

func TestHLLAccuracy(t *testing.T) {
	for _, n := range []int{10, 100, 1000, 90000} {
		var h hll
		for i := 0; i < n; i++ {
			h.add(hashID(fmt.Sprint(i)))
		}
		got := float64(h.count())
		if got < 0.8*float64(n) || got > 1.2*float64(n) {
			t.Fatalf("n=%d estimate %v", n, got)
		}
	}
}

// Replay: the same recorded calls give the same findings.
func TestReplayDeterministic(t *testing.T) {
	runOnce := func() string {
		m := newModel(Config{})
		var sb strings.Builder
		for i := 0; i < 300; i++ {
			for _, a := range m.Observe(mkCall("192.0.2.50", "GET", fmt.Sprintf("/api/v1/orders/%d", i), 200, t0), "shop", "/api/v1/orders/{orderId}") {
				fmt.Fprintln(&sb, a.RuleID, a.Excerpt)
			}
			for _, a := range m.Observe(loginCall(fmt.Sprintf("192.0.2.%d", i%4), "bob", 401, t0), "shop", "/api/v1/login") {
				fmt.Fprintln(&sb, a.RuleID, a.Client.Source, a.Excerpt)
			}
		}
		return sb.String()
	}
	a, b := runOnce(), runOnce()
	if a != b || a == "" {
		t.Fatalf("replay differs or empty:\n%s\n---\n%s", a, b)
	}
}

package behavior

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/apiwarden/apiwarden/apimodel/call"
)

// Each detector at its threshold: one call short of it raises nothing,
// the call that reaches it raises exactly that detector's finding (and
// only once per window).

// wantOnly fails unless as holds exactly one finding, of rule.
func wantOnly(t *testing.T, as []Anomaly, rule string) Anomaly {
	t.Helper()
	if len(as) != 1 || as[0].RuleID != rule {
		t.Fatalf("want exactly one %s, got %d: %+v", rule, len(as), as)
	}
	return as[0]
}

func wantNone(t *testing.T, as []Anomaly, what string) {
	t.Helper()
	if len(as) != 0 {
		t.Fatalf("%s: want no finding, got %+v", what, as)
	}
}

func TestThresholdEnumeration(t *testing.T) {
	for _, limit := range []int{2, 10, 100, 128} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			m := newModel(Config{EnumDistinct: limit})
			for i := 1; i < limit; i++ {
				wantNone(t, m.Observe(mkCall("192.0.2.1", "GET", fmt.Sprintf("/o/%d", i), 200, t0), "s", "/o/{id}"),
					fmt.Sprintf("%d distinct ids of %d", i, limit))
			}
			a := wantOnly(t, m.Observe(mkCall("192.0.2.1", "GET", fmt.Sprintf("/o/%d", limit), 200, t0), "s", "/o/{id}"), RuleEnumeration)
			if !a.Block || a.Endpoint != "GET /o/{id}" || a.Part != "path" {
				t.Fatalf("finding %+v", a)
			}
			// Another client below the limit is unaffected.
			wantNone(t, m.Observe(mkCall("192.0.2.2", "GET", "/o/1", 200, t0), "s", "/o/{id}"), "other client")
			// An endpoint without a template parameter never counts ids.
			for i := 0; i < limit+1; i++ {
				wantNone(t, m.Observe(mkCall("192.0.2.3", "GET", fmt.Sprintf("/static/%d", i), 200, t0), "s", "/static/x"), "untemplated")
			}
		})
	}
}

func TestThresholdBruteForce(t *testing.T) {
	const limit = 5
	m := newModel(Config{AuthFailures: limit})
	for i := 1; i < limit; i++ {
		wantNone(t, m.Observe(loginCall("192.0.2.10", fmt.Sprintf("u%d", i), 401, t0), "s", "/api/v1/login"), fmt.Sprintf("failure %d", i))
	}
	// Successes do not count.
	wantNone(t, m.Observe(loginCall("192.0.2.10", "u0", 200, t0), "s", "/api/v1/login"), "success")
	a := wantOnly(t, m.Observe(loginCall("192.0.2.10", "u9", 403, t0), "s", "/api/v1/login"), RuleBruteForce)
	if !a.Block || a.Part != "status" {
		t.Fatalf("finding %+v", a)
	}
	wantNone(t, m.Observe(loginCall("192.0.2.10", "u10", 401, t0), "s", "/api/v1/login"), "repeat in the window")
	// 401s from a non-auth endpoint are not authentication failures.
	m = newModel(Config{AuthFailures: limit})
	for i := 0; i < 2*limit; i++ {
		wantNone(t, m.Observe(mkCall("192.0.2.11", "GET", "/api/v1/reports", 401, t0), "s", "/api/v1/reports"), "401 off auth")
	}
}

func TestThresholdCredentialStuffing(t *testing.T) {
	const fails, clients = 10, 3
	cfg := Config{AuthFailures: 1000, AccountFailures: fails, AccountClients: clients}
	src := func(i int) string { return fmt.Sprintf("198.51.100.%d", 1+i%clients) }

	// Failures: 9 from 3 clients pass, the 10th fires.
	m := newModel(cfg)
	for i := 0; i < fails-1; i++ {
		wantNone(t, m.Observe(loginCall(src(i), "alice", 401, t0), "s", "/api/v1/login"), fmt.Sprintf("failure %d", i+1))
	}
	a := wantOnly(t, m.Observe(loginCall(src(fails-1), "alice", 401, t0), "s", "/api/v1/login"), RuleCredentialStuffing)
	if !a.Block || strings.Contains(a.Excerpt, "alice") {
		t.Fatalf("finding %+v", a)
	}
	// Another account is not tripped.
	wantNone(t, m.Observe(loginCall(src(0), "bob", 401, t0), "s", "/api/v1/login"), "other account")

	// Clients: 2 clients x 20 failures pass, the 3rd client's first fires.
	m = newModel(cfg)
	for i := 0; i < 2*fails; i++ {
		wantNone(t, m.Observe(loginCall(src(i%2), "alice", 401, t0), "s", "/api/v1/login"), fmt.Sprintf("2 clients, failure %d", i+1))
	}
	wantOnly(t, m.Observe(loginCall(src(2), "alice", 401, t0), "s", "/api/v1/login"), RuleCredentialStuffing)
	// Once tripped, each further client failing on the account is named
	// once (protect mode blocks them all), a repeat is not.
	wantOnly(t, m.Observe(loginCall(src(0), "Alice", 401, t0), "s", "/api/v1/login"), RuleCredentialStuffing)
	wantNone(t, m.Observe(loginCall(src(0), "alice", 401, t0), "s", "/api/v1/login"), "repeat")
	// A new window starts over.
	wantNone(t, m.Observe(loginCall(src(1), "alice", 401, t0.Add(2*time.Minute)), "s", "/api/v1/login"), "next window")
}

func TestThresholdClientRateConfigured(t *testing.T) {
	const limit = 10
	m := newModel(Config{ClientRateLimit: limit})
	for i := 1; i <= limit; i++ {
		wantNone(t, m.Observe(mkCall("192.0.2.20", "GET", "/r", 200, t0), "s", "/r"), fmt.Sprintf("call %d of %d allowed", i, limit))
	}
	a := wantOnly(t, m.Observe(mkCall("192.0.2.20", "GET", "/r", 200, t0), "s", "/r"), RuleClientRate)
	if !a.Block || a.Part != "rate" {
		t.Fatalf("finding %+v", a)
	}
	wantNone(t, m.Observe(mkCall("192.0.2.21", "GET", "/r", 200, t0), "s", "/r"), "other client")
	wantNone(t, m.Observe(mkCall("192.0.2.20", "GET", "/r", 200, t0.Add(time.Minute)), "s", "/r"), "next window")
}

// learnRate: 5 clients x 2 calls per window for 3 windows on GET /r: the
// endpoint learns 10 calls per window and 2 per client.
func learnRate(cfg Config) *Model {
	m := newModel(cfg)
	for w := 0; w < 3; w++ {
		for c := 0; c < 5; c++ {
			for k := 0; k < 2; k++ {
				m.Observe(mkCall(fmt.Sprintf("10.4.0.%d", c), "GET", "/r", 200, t0.Add(time.Duration(w)*time.Minute)), "s", "/r")
			}
		}
	}
	return m
}

func TestThresholdClientRateLearned(t *testing.T) {
	cfg := Config{LearningCalls: 20, RateFactor: 4, RateMin: 1}
	m := learnRate(cfg)
	if b := m.Baselines(); len(b) != 1 || !b[0].Learned {
		t.Fatalf("baseline %+v", b)
	}
	at := t0.Add(3 * time.Minute)
	// 4 x 2 = 8 calls pass, the 9th fires.
	for i := 1; i <= 8; i++ {
		wantNone(t, m.Observe(mkCall("10.4.1.1", "GET", "/r", 200, at), "s", "/r"), fmt.Sprintf("call %d", i))
	}
	wantOnly(t, m.Observe(mkCall("10.4.1.1", "GET", "/r", 200, at), "s", "/r"), RuleClientRate)

	// RateMin floors the learned limit.
	m = learnRate(Config{LearningCalls: 20, RateFactor: 4, RateMin: 12})
	for i := 1; i <= 12; i++ {
		wantNone(t, m.Observe(mkCall("10.4.1.2", "GET", "/r", 200, at), "s", "/r"), fmt.Sprintf("floored call %d", i))
	}
	wantOnly(t, m.Observe(mkCall("10.4.1.2", "GET", "/r", 200, at), "s", "/r"), RuleClientRate)

	// Before learning completes there is no learned limit.
	m = learnRate(Config{LearningCalls: 1000, RateFactor: 4, RateMin: 1})
	for i := 1; i <= 20; i++ {
		wantNone(t, m.Observe(mkCall("10.4.1.3", "GET", "/r", 200, at), "s", "/r"), fmt.Sprintf("learning call %d", i))
	}
}

func TestThresholdEndpointRate(t *testing.T) {
	m := learnRate(Config{LearningCalls: 20, RateFactor: 4, RateMin: 1})
	at := t0.Add(3 * time.Minute)
	// Learned 10 per window, factor 4: 40 calls (each from a new client,
	// so no client rate) pass, the 41st fires, endpoint-wide (no block).
	for i := 1; i <= 40; i++ {
		wantNone(t, m.Observe(mkCall(fmt.Sprintf("10.5.%d.%d", i/200, i%200+1), "GET", "/r", 200, at), "s", "/r"), fmt.Sprintf("call %d", i))
	}
	a := wantOnly(t, m.Observe(mkCall("10.5.9.9", "GET", "/r", 200, at), "s", "/r"), RuleEndpointRate)
	if a.Block {
		t.Fatalf("endpoint-wide finding blocks: %+v", a)
	}
	wantNone(t, m.Observe(mkCall("10.5.9.10", "GET", "/r", 200, at), "s", "/r"), "repeat in the window")
}

// learnedThen: the endpoint sees n benign calls, then probe; returns the
// probe's findings. LearningCalls is 10, so n = 9 leaves the probe inside
// the learning period (learned, not reported) and n = 10 after it.
func learnedThen(n int, benign func(i int) *call.Call, probe *call.Call) []Anomaly {
	m := newModel(Config{LearningCalls: 10})
	for i := 0; i < n; i++ {
		m.Observe(benign(i), "s", "/u/{id}")
	}
	return m.Observe(probe, "s", "/u/{id}")
}

func TestThresholdLearningDetectors(t *testing.T) {
	body := func(i int) *call.Call {
		return jsonCall(fmt.Sprintf("10.6.0.%d", i+1), "PUT", fmt.Sprintf("/u/%d", i), `{"name":"a","age":30}`, t0)
	}
	nested := func(i int) *call.Call {
		return jsonCall(fmt.Sprintf("10.6.0.%d", i+1), "PUT", fmt.Sprintf("/u/%d", i), `{"name":"a","profile":{"bio":"x"}}`, t0)
	}
	withResp := func(c *call.Call, resp string) *call.Call {
		c.Response.Body = []byte(resp)
		c.Response.BodySize = int64(len(resp))
		return c
	}
	get := func(i int) *call.Call {
		return withResp(mkCall(fmt.Sprintf("10.7.0.%d", i+1), "GET", fmt.Sprintf("/u/%d", i), 200, t0), `{"id":1,"name":"a"}`)
	}
	for _, tc := range []struct {
		rule   string
		benign func(int) *call.Call
		probe  func() *call.Call
		part   string
		block  bool
	}{
		{RuleMassAssignment, body, func() *call.Call {
			return jsonCall("10.6.1.1", "PUT", "/u/1", `{"name":"a","role":"admin"}`, t0)
		}, "json:role", true},
		{RuleMassAssignment, body, func() *call.Call {
			return jsonCall("10.6.1.1", "PUT", "/u/1", `{"name":"a","isAdmin":true}`, t0)
		}, "json:isAdmin", true},
		{RuleMassAssignment, nested, func() *call.Call {
			return jsonCall("10.6.1.1", "PUT", "/u/1", `{"name":"a","profile":{"is_admin":true}}`, t0)
		}, "json:profile.is_admin", true},
		{RuleUnknownField, body, func() *call.Call {
			return jsonCall("10.6.1.1", "PUT", "/u/1", `{"name":"a","nickname":"b"}`, t0)
		}, "json:nickname", true},
		{RuleUnknownField, body, func() *call.Call {
			c := jsonCall("10.6.1.1", "PUT", "/u/1", `{"name":"a"}`, t0)
			c.Request.RawQuery = "debug=1"
			return c
		}, "query:debug", true},
		{RuleTypeDrift, body, func() *call.Call {
			return jsonCall("10.6.1.1", "PUT", "/u/1", `{"name":"a","age":"30 or 1=1"}`, t0)
		}, "json:age", true},
		{RuleSensitiveExposure, get, func() *call.Call {
			return withResp(mkCall("10.7.1.1", "GET", "/u/1", 200, t0), `{"id":1,"card":"4111 1111 1111 1111"}`)
		}, "response", false},
		{RuleSensitiveExposure, get, func() *call.Call {
			return withResp(mkCall("10.7.1.1", "GET", "/u/1", 200, t0), `{"id":1,"note":"-----BEGIN EC PRIVATE KEY-----\nMHc"}`)
		}, "response", false},
		{RuleSensitiveExposure, get, func() *call.Call {
			return withResp(mkCall("10.7.1.1", "GET", "/u/1", 200, t0), `{"id":1,"k":"AKIAIOSFODNN7EXAMPLE"}`)
		}, "response", false},
	} {
		t.Run(tc.rule+"/"+tc.part, func(t *testing.T) {
			wantNone(t, learnedThen(9, tc.benign, tc.probe()), "probe while learning")
			a := wantOnly(t, learnedThen(10, tc.benign, tc.probe()), tc.rule)
			if a.Part != tc.part || a.Block != tc.block {
				t.Fatalf("finding %+v, want part %s block %v", a, tc.part, tc.block)
			}
			t.Logf("%s: %s", a.RuleID, a.Excerpt)
		})
	}
	// A 16-digit number failing the Luhn check is not a card number.
	wantNone(t, learnedThen(10, get, withResp(mkCall("10.7.1.1", "GET", "/u/1", 200, t0), `{"id":1,"card":"4111 1111 1111 1112"}`)), "non-Luhn number")
	// A learned field sent again, with a learned type, is not drift.
	wantNone(t, learnedThen(10, body, jsonCall("10.6.1.1", "PUT", "/u/1", `{"age":31,"name":"b"}`, t0)), "learned fields")
	// A privileged field sent while learning is learned, not reported later.
	m := newModel(Config{LearningCalls: 10})
	m.Observe(jsonCall("10.6.2.1", "PUT", "/u/1", `{"name":"a","role":"user"}`, t0), "s", "/u/{id}")
	for i := 0; i < 10; i++ {
		m.Observe(body(i), "s", "/u/{id}")
	}
	wantNone(t, m.Observe(jsonCall("10.6.2.2", "PUT", "/u/2", `{"name":"a","role":"admin"}`, t0), "s", "/u/{id}"), "role learned")
}

func TestThresholdResponseSize(t *testing.T) {
	// 10 responses of 1000 bytes learn mean 1000 and max 1000; factor 10:
	// 10000 bytes is not a jump, 10001 is.
	sized := func(n int64) func(int) *call.Call {
		return func(i int) *call.Call {
			c := mkCall(fmt.Sprintf("10.8.0.%d", i+1), "GET", fmt.Sprintf("/u/%d", i), 200, t0)
			c.Response.BodySize = n
			return c
		}
	}
	wantNone(t, learnedThen(10, sized(1000), sized(10000)(99)), "10x the mean")
	wantNone(t, learnedThen(9, sized(1000), sized(10001)(99)), "while learning")
	a := wantOnly(t, learnedThen(10, sized(1000), sized(10001)(99)), RuleResponseSize)
	if !a.Block || a.Part != "response" {
		t.Fatalf("finding %+v", a)
	}
	// Small responses never jump (floor 4 KiB): mean 100, 4096 bytes.
	wantNone(t, learnedThen(10, sized(100), sized(4096)(99)), "under 4 KiB")
	wantOnly(t, learnedThen(10, sized(100), sized(4097)(99)), RuleResponseSize)
}

func TestThresholdShadowEndpoint(t *testing.T) {
	data, err := os.ReadFile("testdata/shop.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sp, err := ParseSpec(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, positive := range []bool{false, true} {
		m := newModel(Config{Positive: positive})
		m.SetSpec("shop", sp)
		wantNone(t, m.Observe(mkCall("10.9.0.1", "GET", "/api/v1/orders/7", 200, t0), "shop", "/api/v1/orders/{orderId}"), "documented (param renamed)")
		// A documented path with an undocumented method is undocumented.
		shadow := []*call.Call{mkCall("10.9.0.1", "GET", "/api/v1/internal/debug", 200, t0), mkCall("10.9.0.1", "DELETE", "/api/v1/reports", 200, t0)}
		for _, c := range shadow {
			as := m.Observe(c, "shop", c.Request.Path)
			if !positive {
				wantNone(t, as, "shadow without positive mode")
				continue
			}
			a := wantOnly(t, as, RuleShadowEndpoint)
			if a.Endpoint != c.Request.Method+" "+c.Request.Path {
				t.Fatalf("finding %+v", a)
			}
		}
		// A deprecated operation still called: an endpoint finding, once
		// per window, in positive mode only.
		as := m.Observe(mkCall("10.9.0.2", "GET", "/api/v1/legacy", 200, t0), "shop", "/api/v1/legacy")
		if !positive {
			wantNone(t, as, "zombie without positive mode")
		} else if a := wantOnly(t, as, RuleZombieEndpoint); a.Block {
			t.Fatalf("zombie finding blocks: %+v", a)
		}
		wantNone(t, m.Observe(mkCall("10.9.0.3", "GET", "/api/v1/legacy", 200, t0), "shop", "/api/v1/legacy"), "zombie repeat in the window")
		// A service without an imported spec has no shadow endpoints.
		wantNone(t, m.Observe(mkCall("10.9.0.1", "GET", "/anything", 200, t0), "other", "/anything"), "service without spec")
	}
}

func TestDetectorNames(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range Rules() {
		d := Detector(r)
		if d == "" || strings.ContainsAny(d, "-:") || seen[d] || description[r] == "" {
			t.Fatalf("rule %s: detector %q (dup %v), description %q", r, d, seen[d], description[r])
		}
		seen[d] = true
	}
	if Detector("abuse-sensitive-exposure:credit-card") != "" || Detector("sqli") != "" {
		t.Fatal("detector name for a rule outside the set")
	}
	if len(seen) != len(description) {
		t.Fatalf("Rules has %d, descriptions %d", len(seen), len(description))
	}
}

package behavior

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/apiwarden/apiwarden/apimodel/call"
)

var t0 = time.Unix(1_700_000_000, 0)

func get(client string, path string, status int, at time.Time) *call.Call {
	return &call.Call{Client: netip.MustParseAddrPort(client), Server: netip.MustParseAddrPort("10.0.0.2:8080"),
		Request:  &call.Request{Method: "GET", Path: path, Start: at},
		Response: &call.Response{StatusCode: status}}
}

func login(client, user string, status int, at time.Time) *call.Call {
	c := get(client, "/api/v1/login", status, at)
	c.Request.Method = "POST"
	c.Request.Body = []byte(fmt.Sprintf(`{"username":%q,"password":"x"}`, user))
	return c
}

func kinds(fs []Finding) map[string]int {
	out := map[string]int{}
	for _, f := range fs {
		out[f.Kind]++
	}
	return out
}

// The scenario: one client reading /api/v1/orders/1 ... /600 is one
// enumeration finding, not 550.
func TestEnumerationOnceForAWalk(t *testing.T) {
	m := New(Config{})
	var all []Finding
	for i := 1; i <= 600; i++ {
		all = append(all, m.Observe(get("192.0.2.7:40000", fmt.Sprintf("/api/v1/orders/%d", i), 200, t0.Add(time.Duration(i)*50*time.Millisecond)), "shop", "/api/v1/orders/{id}")...)
	}
	if k := kinds(all); k[KindEnumeration] != 1 || len(all) != 1 {
		t.Fatalf("findings %v, want one enumeration", all)
	}
	if f := all[0]; f.Client != netip.MustParseAddr("192.0.2.7") || f.Endpoint != "GET /api/v1/orders/{id}" || f.Severity != "high" {
		t.Errorf("finding %+v", f)
	}
}

// Exactly at the threshold nothing is reported; one more id is.
func TestEnumerationThresholdBound(t *testing.T) {
	m := New(Config{EnumThreshold: 10})
	for i := range 10 {
		if fs := m.Observe(get("192.0.2.7:1", fmt.Sprintf("/o/%d", i), 200, t0), "s", "/o/{id}"); len(fs) != 0 {
			t.Fatalf("finding at %d ids", i+1)
		}
	}
	// The same ids again are not new.
	if fs := m.Observe(get("192.0.2.7:1", "/o/3", 200, t0), "s", "/o/{id}"); len(fs) != 0 {
		t.Fatal("a repeated id counted")
	}
	if fs := m.Observe(get("192.0.2.7:1", "/o/10", 200, t0), "s", "/o/{id}"); len(fs) != 1 {
		t.Fatal("no finding at threshold+1 ids")
	}
	// A new window starts over.
	if fs := m.Observe(get("192.0.2.7:1", "/o/99", 200, t0.Add(2*time.Minute)), "s", "/o/{id}"); len(fs) != 0 {
		t.Fatal("finding in a fresh window")
	}
}

// 200 failed logins for one account from five addresses: credential
// stuffing across clients (and brute force per client, each sending 40).
func TestCredentialStuffingAcrossClients(t *testing.T) {
	m := New(Config{})
	var all []Finding
	for i := range 200 {
		cl := fmt.Sprintf("198.51.100.%d:5000", 1+i%5)
		all = append(all, m.Observe(login(cl, "alice@example.com", 401, t0.Add(time.Duration(i)*100*time.Millisecond)), "auth", "/api/v1/login")...)
	}
	k := kinds(all)
	if k[KindCredentialStuffing] != 1 {
		t.Fatalf("credential-stuffing findings %d, want 1 (%v)", k[KindCredentialStuffing], all)
	}
	if k[KindBruteForce] != 5 {
		t.Errorf("brute-force findings %d, want one per client (5)", k[KindBruteForce])
	}
	for _, f := range all {
		if f.Kind == KindCredentialStuffing && (contains(f.Evidence, "alice")) {
			t.Errorf("account name in evidence: %s", f.Evidence)
		}
	}
}

func contains(s, sub string) bool { return len(sub) > 0 && len(s) >= len(sub) && indexOf(s, sub) >= 0 }

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

// A normal client reading five orders and mistyping its password once
// raises nothing.
func TestNormalClientRaisesNothing(t *testing.T) {
	m := New(Config{})
	var all []Finding
	all = append(all, m.Observe(login("192.0.2.9:1", "bob", 401, t0), "auth", "/api/v1/login")...)
	all = append(all, m.Observe(login("192.0.2.9:1", "bob", 200, t0.Add(time.Second)), "auth", "/api/v1/login")...)
	for i := range 5 {
		all = append(all, m.Observe(get("192.0.2.9:1", fmt.Sprintf("/api/v1/orders/%d", i), 200, t0.Add(2*time.Second)), "shop", "/api/v1/orders/{id}")...)
	}
	if len(all) != 0 {
		t.Fatalf("findings %v", all)
	}
}

// Two users behind one address are two clients when their credentials
// differ; X-Forwarded-For is believed only from a trusted proxy.
func TestClientIdentity(t *testing.T) {
	m := New(Config{EnumThreshold: 5, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}})
	walk := func(client, auth, xff string) []Finding {
		var out []Finding
		for i := range 4 {
			c := get(client, fmt.Sprintf("/o/%d", i), 200, t0)
			if auth != "" {
				c.Request.Headers = append(c.Request.Headers, call.Header{Name: "Authorization", Value: auth})
			}
			if xff != "" {
				c.Request.Headers = append(c.Request.Headers, call.Header{Name: "X-Forwarded-For", Value: xff})
			}
			out = append(out, m.Observe(c, "s", "/o/{id}")...)
		}
		return out
	}
	// 4 ids each for two credentials on one address: neither passes 5.
	if fs := append(walk("192.0.2.1:1", "Bearer aaa", ""), walk("192.0.2.1:1", "Bearer bbb", "")...); len(fs) != 0 {
		t.Fatalf("credentials merged: %v", fs)
	}
	// Behind a trusted proxy, the forwarded address is the client.
	m2 := New(Config{EnumThreshold: 3, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}})
	c := get("10.1.2.3:1", "/o/1", 200, t0)
	c.Request.Headers = call.Headers{{Name: "X-Forwarded-For", Value: "203.0.113.5, 10.1.0.9"}}
	if got := m2.clientAddr(c); got != netip.MustParseAddr("10.1.0.9") {
		t.Errorf("trusted proxy: client %v", got)
	}
	c.Client = netip.MustParseAddrPort("192.0.2.50:1") // untrusted: header ignored
	if got := m2.clientAddr(c); got != netip.MustParseAddr("192.0.2.50") {
		t.Errorf("untrusted proxy: client %v", got)
	}
}

// Tables stop at MaxKeys: new keys beyond are counted, not tracked, until
// windows expire.
func TestTablesBounded(t *testing.T) {
	m := New(Config{MaxKeys: 100, EnumThreshold: 2})
	for i := range 150 {
		m.Observe(get(fmt.Sprintf("192.0.2.%d:1", i%250), "/o/1", 200, t0), fmt.Sprintf("s%d", i), "/o/{id}")
	}
	if len(m.enum) != 100 || m.Stats().Overflow != 50 {
		t.Fatalf("enum keys %d overflow %d", len(m.enum), m.Stats().Overflow)
	}
	m.Observe(get("192.0.2.1:1", "/o/1", 200, t0.Add(2*time.Minute)), "new", "/o/{id}")
	if len(m.enum) != 1 {
		t.Errorf("expired windows not pruned: %d keys", len(m.enum))
	}
}

func TestJWTSubject(t *testing.T) {
	// {"alg":"none"}.{"sub":"user-42"}.
	if s := jwtSubject("Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1c2VyLTQyIn0.x"); s != "user-42" {
		t.Errorf("sub %q", s)
	}
	if s := jwtSubject("Bearer not-a-jwt"); s != "" {
		t.Errorf("sub %q", s)
	}
}

package e2e

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiwarden/apiwarden/e2e/harness"
)

// TestBehaviorEnumerationE2E: one client in the client namespace reads
// /api/v1/orders/1 ... /150 from goapi in the server namespace over one
// keep-alive connection. The behavioural model raises an abuse-enumeration
// event (GET /v1/events?class=abuse) and, in protect mode, blocks the
// client at the guard; another client is not blocked. A benign control
// (5 orders) raises nothing first.
func TestBehaviorEnumerationE2E(t *testing.T) {
	bin := needAgent(t)
	w := newWorld(t)
	cfg := filepath.Join(w.dir, "behavior.yaml")
	if err := os.WriteFile(cfg, []byte("autoBlock: {threshold: 0}\nbehavior: {enumDistinct: 100, blockTTL: 1m}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a := w.startAgentMode(t, bin, "protect", cfg)
	isEnum := func(e apiEvent) bool { return e.RuleID == "abuse-enumeration" }

	p := w.newProbe(t)
	if r := p.dial(2 * time.Second); r.Kind != "" {
		t.Fatalf("dial: %+v", r)
	}
	for i := 1; i <= 5; i++ {
		if r := p.send("GET", rawRequest("GET", fmt.Sprintf("/api/v1/orders/%d", i), nil, ""), 2*time.Second); r.Status != 200 {
			t.Fatalf("benign order %d: %+v", i, r)
		}
	}
	// The control's calls are in the inventory once the last is; then no
	// abuse event may exist.
	waitInventory(t, a, 5)
	if evs, err := events(a, url.Values{"class": {"abuse"}}); err != nil || len(evs) > 0 {
		t.Fatalf("benign control raised abuse events (%v):\n%s", err, fmtEvents(evs))
	}

	sent, lastOK := 0, 0
	for i := 6; i <= 150; i++ {
		r := p.send("GET", rawRequest("GET", fmt.Sprintf("/api/v1/orders/%d", i), nil, ""), 2*time.Second)
		sent = i
		if r.Status != 200 {
			break // blocked: the guard drops the client's packets
		}
		lastOK = i
	}
	ev, evs, err := waitEvent(a, url.Values{"class": {"abuse"}}, 5*time.Second, isEnum)
	if err != nil {
		t.Fatalf("no enumeration event after %d orders: %v\n%s", sent, err, fmtEvents(evs))
	}
	t.Logf("enumeration event: client %s action %s %q; last order answered %d of %d sent", ev.Client, ev.Action, ev.Excerpt, lastOK, sent)
	if ev.Client != w.topo.CliIP || ev.Action != "blocked" || ev.Endpoint != "GET /api/v1/orders/{orderId}" {
		t.Errorf("event %+v, want client %s blocked on GET /api/v1/orders/{orderId}", ev, w.topo.CliIP)
	}
	if lastOK >= 150 {
		t.Errorf("the client was never cut off")
	}
	src := w.topo.CliIP + "/32"
	bl, err := blocklist(a)
	if err != nil || !slices.ContainsFunc(bl, func(b apiBlock) bool { return b.Prefix == src }) {
		t.Errorf("blocklist does not list %s: %+v %v", src, bl, err)
	}
	if ok, r := w.reachable(t, time.Second); ok {
		t.Errorf("blocked client still reaches goapi: %+v", r)
	}
	if code, err := rootGet(w.goapi.Addr); code != 200 {
		t.Errorf("other client blocked too: %d %v", code, err)
	}
	var inv struct {
		Endpoints []struct {
			Method       string             `json:"method"`
			PathTemplate string             `json:"pathTemplate"`
			Baseline     map[string]float64 `json:"baseline"`
		} `json:"endpoints"`
	}
	if err := a.GetJSON("/v1/inventory", &inv); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range inv.Endpoints {
		if e.Method == "GET" && e.PathTemplate == "/api/v1/orders/{orderId}" {
			found = e.Baseline["calls"] >= 100
			t.Logf("baseline of GET %s: %v", e.PathTemplate, e.Baseline)
		}
	}
	if !found {
		t.Errorf("no baseline with >= 100 calls for GET /api/v1/orders/{orderId} in /v1/inventory")
	}
}

// addClientAddrs gives the client namespace n more addresses (10.233.N.10
// and up, N the topology's subnet), routed back through its veth, so
// several clients with distinct source addresses share one namespace. The
// addresses go with the namespace; the host route is removed by Cleanup.
func (w *world) addClientAddrs(t *testing.T, n int) []string {
	t.Helper()
	parts := strings.Split(w.topo.CliIP, ".")
	if len(parts) != 4 {
		t.Fatalf("client ip %q", w.topo.CliIP)
	}
	subnet := "10.233." + parts[2] + ".0/24"
	if out, err := exec.Command("ip", "route", "replace", subnet, "via", w.topo.CliIP, "dev", w.topo.HostCli).CombinedOutput(); err != nil {
		t.Fatalf("route %s: %v: %s", subnet, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "route", "del", subnet).Run() })
	var out []string
	for i := 0; i < n; i++ {
		addr := fmt.Sprintf("10.233.%s.%d", parts[2], 10+i)
		if b, err := exec.Command("ip", "-n", w.topo.CliNS, "addr", "add", addr+"/32", "dev", "eth0").CombinedOutput(); err != nil {
			t.Fatalf("addr %s: %v: %s", addr, err, b)
		}
		out = append(out, addr)
	}
	return out
}

// behaviorAgent starts the agent in protect mode with the behaviour
// config yaml (autoBlock off, so only the behavioural model blocks).
func (w *world) behaviorAgent(t *testing.T, bin, behaviorYAML string) *harness.Agent {
	t.Helper()
	cfg := filepath.Join(w.dir, fmt.Sprintf("behavior-%d.yaml", time.Now().UnixNano()))
	if err := os.WriteFile(cfg, []byte("autoBlock: {threshold: 0}\nbehavior: "+behaviorYAML+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return w.startAgentMode(t, bin, "protect", cfg)
}

// client is one keep-alive connection from one source address.
type client struct {
	*probe
	addr    string
	blocked bool // a send timed out or failed: the guard drops its packets
}

func (w *world) dialFrom(t *testing.T, from string) *client {
	t.Helper()
	p := w.newProbe(t)
	if r := p.do(probeCmd{Op: "dial", Addr: w.goapi.Addr, From: from, TimeoutMs: 2000}); r.Kind != "" {
		t.Fatalf("dial from %q: %+v", from, r)
	}
	if from == "" {
		from = w.topo.CliIP
	}
	return &client{probe: p, addr: from}
}

// call sends one request and returns its status (0 once blocked).
func (c *client) call(method, target, body string) int {
	if c.blocked {
		return 0
	}
	var hdr []string
	if body != "" {
		hdr = []string{"Content-Type: application/json"}
	}
	r := c.send(method, rawRequest(method, target, hdr, body), time.Second)
	if r.Kind != "" {
		c.blocked = true
	}
	return r.Status
}

// noAbuse fails if any abuse event exists once the inventory counts want
// calls (the agent has processed the control run).
func noAbuse(t *testing.T, a *harness.Agent, want uint64, what string) {
	t.Helper()
	waitInventory(t, a, want)
	if evs, err := events(a, url.Values{"class": {"abuse"}}); err != nil || len(evs) > 0 {
		t.Fatalf("benign control (%s) raised abuse events (%v):\n%s", what, err, fmtEvents(evs))
	}
}

// abuseEvents waits until every address in clients has an event of rule
// and returns the events of that rule by client.
func abuseEvents(t *testing.T, a *harness.Agent, rule string, clients ...string) map[string]apiEvent {
	t.Helper()
	got := map[string]apiEvent{}
	_, evs, err := waitEvent(a, url.Values{"class": {"abuse"}}, 5*time.Second, func(e apiEvent) bool {
		if e.RuleID == rule {
			got[e.Client] = e
		}
		for _, c := range clients {
			if _, ok := got[c]; !ok {
				return false
			}
		}
		return len(got) > 0
	})
	if err != nil {
		t.Fatalf("no %s event for all of %v (got %v): %v\n%s", rule, clients, got, err, fmtEvents(evs))
	}
	return got
}

// wantBlocked checks the blocklist holds each address and that a fresh
// connection from it gets no answer.
func (w *world) wantBlocked(t *testing.T, a *harness.Agent, addrs ...string) {
	t.Helper()
	bl, err := blocklist(a)
	if err != nil {
		t.Fatal(err)
	}
	for _, addr := range addrs {
		if !slices.ContainsFunc(bl, func(b apiBlock) bool { return b.Prefix == addr+"/32" }) {
			t.Errorf("blocklist does not list %s: %+v", addr, bl)
		}
		p := w.newProbe(t)
		r := p.do(probeCmd{Op: "dial", Addr: w.goapi.Addr, From: addr, TimeoutMs: 500})
		if r.Kind == "" {
			r = p.send("GET", ping(), 500*time.Millisecond)
		}
		if r.Status == 200 {
			t.Errorf("blocked client %s still reaches goapi", addr)
		}
	}
}

// wantWorking checks a client not named by any finding still gets answers.
func (w *world) wantWorking(t *testing.T, from string) {
	t.Helper()
	c := w.dialFrom(t, from)
	if st := c.call("GET", "/api/v1/ping", ""); st != 200 {
		t.Errorf("other client %s blocked too: status %d", c.addr, st)
	}
	if code, err := rootGet(w.goapi.Addr); code != 200 {
		t.Errorf("root-namespace client blocked too: %d %v", code, err)
	}
}

func login(user, pw string) string {
	return fmt.Sprintf(`{"username":%q,"password":%q}`, user, pw)
}

// TestBehaviorCredentialStuffingE2E: five addresses each try passwords for
// one account; the model sees the failures across clients and, in protect
// mode, blocks the addresses that took part. A sixth address logs in fine
// throughout. Control: each address logs in to its own account, one typo
// each.
func TestBehaviorCredentialStuffingE2E(t *testing.T) {
	bin := needAgent(t)
	w := newWorld(t)
	a := w.behaviorAgent(t, bin, "{authFailures: 1000, accountFailures: 20, accountClients: 3, blockTTL: 1m}")
	addrs := w.addClientAddrs(t, 6)
	attackers, bystander := addrs[:5], addrs[5]
	cls := make([]*client, len(attackers))
	for i, addr := range attackers {
		cls[i] = w.dialFrom(t, addr)
		user := fmt.Sprintf("user%d", i)
		if st := cls[i].call("POST", "/api/v1/login", login(user, "typo")); st != 401 {
			t.Fatalf("control typo: %d", st)
		}
		if st := cls[i].call("POST", "/api/v1/login", login(user, "correct")); st != 200 {
			t.Fatalf("control login: %d", st)
		}
	}
	noAbuse(t, a, 10, "own logins with a typo each")

	sent := 0
	for sent < 100 {
		c := cls[sent%len(cls)]
		sent++
		c.call("POST", "/api/v1/login", login("alice@example.com", fmt.Sprintf("guess%d", sent)))
		if !slices.ContainsFunc(cls, func(c *client) bool { return !c.blocked }) {
			break
		}
	}
	got := abuseEvents(t, a, "abuse-credential-stuffing", attackers...)
	for _, addr := range attackers {
		ev := got[addr]
		t.Logf("%s: %s %q", addr, ev.Action, ev.Excerpt)
		if ev.Action != "blocked" || strings.Contains(ev.Excerpt, "alice") {
			t.Errorf("event %+v, want blocked without the raw account", ev)
		}
	}
	t.Logf("%d stuffing calls sent before all five addresses were cut off", sent)
	_, metrics, err := a.Do("GET", "/metrics", nil)
	if want := `apiwarden_behavior_anomalies_total{action="blocked",detector="credential_stuffing"} 5`; err != nil || !strings.Contains(string(metrics), want) {
		t.Errorf("/metrics lacks %s (%v)", want, err)
	}
	out, err := exec.Command(ctlBinary(t), "--addr", a.Cfg.APIAddr, "anomalies", "--detector", "credential-stuffing").CombinedOutput()
	if rows := strings.Count(string(out), "credential-stuffing"); err != nil || rows != 5 {
		t.Errorf("apiwardenctl anomalies: %d rows, %v:\n%s", rows, err, out)
	}
	t.Logf("apiwardenctl anomalies --detector credential-stuffing:\n%s", out)
	w.wantBlocked(t, a, attackers...)
	by := w.dialFrom(t, bystander)
	if st := by.call("POST", "/api/v1/login", login("carol", "correct")); st != 200 {
		t.Errorf("bystander login: %d", st)
	}
	w.wantWorking(t, "")
}

// TestBehaviorBruteForceE2E: one address tries many passwords for one
// account and is blocked; another address keeps logging in.
func TestBehaviorBruteForceE2E(t *testing.T) {
	bin := needAgent(t)
	w := newWorld(t)
	a := w.behaviorAgent(t, bin, "{authFailures: 20, blockTTL: 1m}")
	addrs := w.addClientAddrs(t, 2)
	att := w.dialFrom(t, addrs[0])
	for i := 0; i < 3; i++ {
		att.call("POST", "/api/v1/login", login("bob", "typo"))
	}
	att.call("POST", "/api/v1/login", login("bob", "correct"))
	noAbuse(t, a, 4, "three typos and a login")

	sent := 0
	for ; sent < 100 && !att.blocked; sent++ {
		att.call("POST", "/api/v1/login", login("bob", fmt.Sprintf("pw%d", sent)))
	}
	ev := abuseEvents(t, a, "abuse-brute-force", addrs[0])[addrs[0]]
	t.Logf("brute force: %s %q after %d attempts", ev.Action, ev.Excerpt, sent)
	if ev.Action != "blocked" || sent >= 100 {
		t.Errorf("event %+v, %d attempts sent: want blocked within 100", ev, sent)
	}
	w.wantBlocked(t, a, addrs[0])
	if st := w.dialFrom(t, addrs[1]).call("POST", "/api/v1/login", login("bob", "correct")); st != 200 {
		t.Errorf("other client's login: %d", st)
	}
	w.wantWorking(t, "")
}

// TestBehaviorRateBurstE2E: a client far over the configured per-client
// rate is blocked; a client at the normal rate is not.
func TestBehaviorRateBurstE2E(t *testing.T) {
	bin := needAgent(t)
	w := newWorld(t)
	a := w.behaviorAgent(t, bin, "{clientRateLimit: 40, blockTTL: 1m}")
	addrs := w.addClientAddrs(t, 2)
	burst, calm := w.dialFrom(t, addrs[0]), w.dialFrom(t, addrs[1])
	for i := 0; i < 10; i++ {
		burst.call("GET", "/api/v1/ping", "")
		calm.call("GET", "/api/v1/ping", "")
	}
	noAbuse(t, a, 20, "ten calls per client")

	sent := 10
	for ; sent < 200 && !burst.blocked; sent++ {
		burst.call("GET", "/api/v1/ping", "")
	}
	ev := abuseEvents(t, a, "abuse-client-rate", addrs[0])[addrs[0]]
	t.Logf("rate: %s %q, %d calls sent", ev.Action, ev.Excerpt, sent)
	if ev.Action != "blocked" || sent >= 200 {
		t.Errorf("event %+v, %d calls: want blocked", ev, sent)
	}
	w.wantBlocked(t, a, addrs[0])
	if st := calm.call("GET", "/api/v1/ping", ""); st != 200 {
		t.Errorf("calm client: %d", st)
	}
	w.wantWorking(t, "")
}

// TestBehaviorMassAssignmentE2E: after learning the user update body, a
// client adding role/isAdmin is blocked; the usual body raises nothing.
func TestBehaviorMassAssignmentE2E(t *testing.T) {
	bin := needAgent(t)
	w := newWorld(t)
	a := w.behaviorAgent(t, bin, "{learningCalls: 30, blockTTL: 1m}")
	addrs := w.addClientAddrs(t, 3)
	usual, att := w.dialFrom(t, addrs[0]), w.dialFrom(t, addrs[1])
	for i := 0; i < 30; i++ {
		if st := usual.call("PUT", fmt.Sprintf("/api/v1/users/%d", 1+i%10), `{"name":"ada","email":"ada@example.com"}`); st != 200 {
			t.Fatalf("learning call %d: %d", i, st)
		}
	}
	if st := usual.call("PUT", "/api/v1/users/3", `{"email":"a@example.com","name":"bea"}`); st != 200 {
		t.Fatal(st)
	}
	noAbuse(t, a, 31, "learned body after learning")

	att.call("PUT", "/api/v1/users/7", `{"name":"eve","role":"admin","isAdmin":true}`)
	ev := abuseEvents(t, a, "abuse-mass-assignment", addrs[1])[addrs[1]]
	t.Logf("mass assignment: %s %s %q", ev.Action, ev.Part, ev.Excerpt)
	if ev.Action != "blocked" || ev.Endpoint != "PUT /api/v1/users/{userId}" {
		t.Errorf("event %+v", ev)
	}
	w.wantBlocked(t, a, addrs[1])
	if st := usual.call("PUT", "/api/v1/users/2", `{"name":"ada","email":"ada@example.com"}`); st != 200 {
		t.Errorf("usual client: %d", st)
	}
	// Type drift (name as a number) is recorded, not blocked (medium).
	drift := w.dialFrom(t, addrs[2])
	if st := drift.call("PUT", "/api/v1/users/4", `{"name":12345,"email":"x@example.com"}`); st != 200 {
		t.Errorf("drifting client: %d", st)
	}
	dev := abuseEvents(t, a, "abuse-type-drift", addrs[2])[addrs[2]]
	t.Logf("type drift: %s %s %q", dev.Action, dev.Part, dev.Excerpt)
	if dev.Action != "monitor" || dev.Part != "json:name" {
		t.Errorf("event %+v, want json:name, monitored", dev)
	}
	w.wantWorking(t, addrs[2])
}

// TestBehaviorResponseSizeE2E: search answers learn a size of tens of
// bytes; one answer of over 5 KB (the query is echoed) is a response
// size jump (excessive data exposure), recorded, not blocked.
func TestBehaviorResponseSizeE2E(t *testing.T) {
	bin := needAgent(t)
	w := newWorld(t)
	a := w.behaviorAgent(t, bin, "{learningCalls: 30, blockTTL: 1m}")
	c := w.dialFrom(t, "")
	for i := 0; i < 31; i++ {
		if st := c.call("GET", fmt.Sprintf("/api/v1/search?q=item%d&page=1", i), ""); st != 200 {
			t.Fatalf("learning call %d: %d", i, st)
		}
	}
	noAbuse(t, a, 31, "small search answers")
	if st := c.call("GET", "/api/v1/search?q="+strings.Repeat("a", 5000)+"&page=1", ""); st != 200 {
		t.Fatalf("big answer: %d", st)
	}
	e := abuseEvents(t, a, "abuse-response-size", w.topo.CliIP)[w.topo.CliIP]
	t.Logf("response size: %s %s %q", e.Action, e.Endpoint, e.Excerpt)
	if e.Action != "monitor" || e.Endpoint != "GET /api/v1/search" {
		t.Errorf("event %+v, want GET /api/v1/search, monitored", e)
	}
	w.wantWorking(t, "")
}

// TestBehaviorCardLeakE2E: the payments endpoint learns responses without
// card numbers, then starts returning one: an endpoint finding (nobody is
// blocked for it), and the inventory tags the endpoint credit-card.
func TestBehaviorCardLeakE2E(t *testing.T) {
	bin := needAgent(t)
	w := newWorld(t)
	a := w.behaviorAgent(t, bin, "{learningCalls: 30, blockTTL: 1m}")
	c := w.dialFrom(t, "")
	for i := 1; i <= 30; i++ {
		if st := c.call("GET", fmt.Sprintf("/api/v1/payments/%d", i), ""); st != 200 {
			t.Fatalf("learning call %d: %d", i, st)
		}
	}
	c.call("GET", "/api/v1/payments/31", "")
	noAbuse(t, a, 31, "payments without card numbers")

	for i := 1000; i < 1005; i++ {
		c.call("GET", fmt.Sprintf("/api/v1/payments/%d", i), "")
	}
	ev := abuseEvents(t, a, "abuse-sensitive-exposure")
	var e apiEvent
	for _, v := range ev {
		e = v
	}
	t.Logf("leak: %s %s %q", e.Action, e.Endpoint, e.Excerpt)
	if !strings.Contains(e.Excerpt, "credit-card") || e.Action != "monitor" || e.Endpoint != "GET /api/v1/payments/{paymentId}" {
		t.Errorf("event %+v, want credit-card on GET /api/v1/payments/{paymentId}, not blocked", e)
	}
	if c.blocked {
		t.Errorf("the client reading the leaking endpoint was cut off")
	}
	var inv struct {
		Endpoints []struct {
			Method       string   `json:"method"`
			PathTemplate string   `json:"pathTemplate"`
			Sensitive    []string `json:"sensitive"`
		} `json:"endpoints"`
	}
	if err := a.GetJSON("/v1/inventory", &inv); err != nil {
		t.Fatal(err)
	}
	for _, ep := range inv.Endpoints {
		if ep.Method == "GET" && strings.HasPrefix(ep.PathTemplate, "/api/v1/payments/") {
			t.Logf("inventory: GET %s sensitive %v", ep.PathTemplate, ep.Sensitive)
			if !slices.Contains(ep.Sensitive, "credit-card") {
				t.Errorf("inventory does not tag GET %s credit-card: %v", ep.PathTemplate, ep.Sensitive)
			}
		}
	}
	w.wantWorking(t, "")
}

// TestBehaviorShadowEndpointE2E: with goapi's OpenAPI spec imported by
// `apiwardenctl spec import` and positive mode on, a call to an endpoint
// the spec does not have is a finding; documented calls raise nothing.
func TestBehaviorShadowEndpointE2E(t *testing.T) {
	bin := needAgent(t)
	w := newWorld(t)
	ctl := ctlBinary(t)
	spec := filepath.Join(w.dir, "goapi-openapi.yaml")
	if err := os.WriteFile(spec, []byte(goapiSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(ctl, "spec", "import", "--data-dir", filepath.Join(w.dir, "data-protect"), "goapi", spec).CombinedOutput()
	if err != nil {
		t.Fatalf("spec import: %v: %s", err, out)
	}
	t.Logf("%s", strings.TrimSpace(string(out)))
	a := w.behaviorAgent(t, bin, "{positive: true, blockTTL: 1m}")
	c := w.dialFrom(t, "")
	c.call("GET", "/api/v1/ping", "")
	c.call("GET", "/api/v1/users/1", "")
	c.call("GET", "/api/v1/users/2", "")
	noAbuse(t, a, 3, "documented endpoints")

	c.call("GET", "/api/v1/internal/debug", "")
	e := abuseEvents(t, a, "abuse-shadow-endpoint", w.topo.CliIP)[w.topo.CliIP]
	t.Logf("shadow: %s %s %q", e.Action, e.Endpoint, e.Excerpt)
	if e.Endpoint != "GET /api/v1/internal/debug" || e.Action != "monitor" {
		t.Errorf("event %+v, want GET /api/v1/internal/debug, monitored (medium severity)", e)
	}
	// A zombie: GET /api/v1/users is deprecated in the spec, still called.
	c.call("GET", "/api/v1/users", "")
	for _, z := range abuseEvents(t, a, "abuse-zombie-endpoint") {
		t.Logf("zombie: %s %s %q", z.Action, z.Endpoint, z.Excerpt)
		if z.Endpoint != "GET /api/v1/users" || z.Action != "monitor" {
			t.Errorf("event %+v, want GET /api/v1/users, monitored", z)
		}
	}
}

// ctlBinary builds apiwardenctl once per test binary run.
func ctlBinary(t *testing.T) string {
	t.Helper()
	bin, err := buildCtl()
	if err != nil {
		t.Fatalf("build apiwardenctl: %v", err)
	}
	return bin
}

var buildCtl = sync.OnceValues(func() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	return harness.GoBuild(ctx, "./cmd/apiwardenctl", buildDir, "apiwardenctl")
})

// goapiSpec documents part of goapi; /api/v1/internal/debug is not in it
// and GET /api/v1/users is deprecated.
const goapiSpec = `openapi: 3.0.3
info: {title: goapi, version: "1"}
paths:
  /api/v1/ping:
    get: {responses: {"200": {description: pong}}}
  /api/v1/users:
    get: {deprecated: true, responses: {"200": {description: all users}}}
  /api/v1/users/{id}:
    parameters: [{name: id, in: path, required: true, schema: {type: integer}}]
    get: {responses: {"200": {description: a user}}}
    put: {responses: {"200": {description: updated}}}
  /api/v1/login:
    post: {responses: {"200": {description: token}, "401": {description: bad credentials}}}
`

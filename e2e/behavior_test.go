package e2e

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
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

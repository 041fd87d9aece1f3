package inventory

import (
	"testing"
)

// onlyEndpoint is the single endpoint an inventory holds.
func onlyEndpoint(t *testing.T, inv *Inventory) *endpoint {
	t.Helper()
	inv.mu.Lock()
	defer inv.mu.Unlock()
	var out *endpoint
	for _, svc := range inv.services {
		for _, ep := range svc.endpoints {
			if out != nil {
				t.Fatal("more than one endpoint")
			}
			out = ep
		}
	}
	if out == nil {
		t.Fatal("no endpoint")
	}
	return out
}

// fixedSamples is how many of n calls the fixed interval parses.
func fixedSamples(cfg Config, n uint64) uint64 {
	var k uint64
	for c := uint64(1); c <= n; c++ {
		if c <= cfg.SchemaSampleAll || c%cfg.SchemaSampleEvery == 0 {
			k++
		}
	}
	return k
}

// A stable endpoint is sampled less and less, never less often than one
// call in SchemaSampleMaxEvery, and its counts stay exact.
func TestSchemaSamplingBacksOffWhenStable(t *testing.T) {
	cfg := Config{SchemaSampleAll: 4, SchemaSampleEvery: 2, SchemaStableSamples: 2, SchemaSampleMaxEvery: 16}
	inv := New(cfg, nil)
	const n = 2000
	var lastParsed, maxRun, run uint64
	for i := 0; i < n; i++ {
		inv.Observe(newCall("GET", "/api/items", withRespJSON(200, `{"id":1,"name":"a"}`)))
		ep := onlyEndpoint(t, inv)
		if ep.sampleGap > cfg.SchemaSampleMaxEvery || ep.sampleGap != 0 && ep.sampleGap%cfg.SchemaSampleEvery != 0 {
			t.Fatalf("call %d: gap %d", i+1, ep.sampleGap)
		}
		if p := inv.Stats().BodiesParsed; p == lastParsed {
			run++
			maxRun = max(maxRun, run)
		} else {
			lastParsed, run = p, 0
		}
	}
	ep := onlyEndpoint(t, inv)
	if ep.Count != n || ep.Status[200] != n {
		t.Errorf("count %d status %v, want %d", ep.Count, ep.Status, n)
	}
	if ep.sampleGap != cfg.SchemaSampleMaxEvery {
		t.Errorf("gap %d, want the maximum %d", ep.sampleGap, cfg.SchemaSampleMaxEvery)
	}
	parsed := inv.Stats().BodiesParsed
	if fixed := fixedSamples(inv.cfg, n); parsed >= fixed/4 || parsed < n/cfg.SchemaSampleMaxEvery {
		t.Errorf("parsed %d bodies: fixed interval %d, floor %d", parsed, fixed, n/cfg.SchemaSampleMaxEvery)
	}
	if maxRun >= cfg.SchemaSampleMaxEvery {
		t.Errorf("%d calls in a row unsampled, bound %d", maxRun, cfg.SchemaSampleMaxEvery)
	}
}

// A sample that changes the schema brings the interval back, and a new
// field of a stable endpoint shows within SchemaSampleMaxEvery calls.
func TestSchemaSamplingResetsOnChange(t *testing.T) {
	cfg := Config{SchemaSampleAll: 4, SchemaSampleEvery: 2, SchemaStableSamples: 2, SchemaSampleMaxEvery: 16}
	inv := New(cfg, nil)
	for range 1000 {
		inv.Observe(newCall("GET", "/api/items", withRespJSON(200, `{"id":1}`)))
	}
	if g := onlyEndpoint(t, inv).sampleGap; g != cfg.SchemaSampleMaxEvery {
		t.Fatalf("gap %d before the change", g)
	}
	seen := -1
	for i := range 16 {
		inv.Observe(newCall("GET", "/api/items", withRespJSON(200, `{"id":1,"email":"a@example.com"}`)))
		ep := onlyEndpoint(t, inv)
		if _, ok := ep.RespSchemas[200].Properties["email"]; ok {
			seen = i
			if ep.sampleGap != 0 {
				t.Errorf("gap %d after the changing sample, want the base interval", ep.sampleGap)
			}
			if ep.Sensitive&sensEmail == 0 {
				t.Error("email kind not recorded")
			}
			break
		}
	}
	if seen < 0 {
		t.Fatalf("new field not sampled within %d calls", cfg.SchemaSampleMaxEvery)
	}
}

// SchemaSampleMaxEvery <= SchemaSampleEvery keeps the fixed interval, and
// a huge interval does not overflow.
func TestSchemaSamplingBounds(t *testing.T) {
	for _, cfg := range []Config{
		{SchemaSampleAll: 4, SchemaSampleEvery: 3, SchemaSampleMaxEvery: 3},
		{SchemaSampleAll: 1, SchemaSampleEvery: 1 << 62},
		{SchemaSampleAll: 1, SchemaSampleEvery: 1 << 62, SchemaSampleMaxEvery: 1 << 63},
	} {
		inv := New(cfg, nil)
		const n = 500
		for range n {
			inv.Observe(newCall("GET", "/api/items", withRespJSON(200, `{"id":1}`)))
		}
		ep := onlyEndpoint(t, inv)
		if ep.sampleGap != 0 {
			t.Errorf("%+v: gap %d, want the fixed interval", cfg, ep.sampleGap)
		}
		if got, want := inv.Stats().BodiesParsed, fixedSamples(inv.cfg, n); got != want {
			t.Errorf("%+v: parsed %d, fixed interval %d", cfg, got, want)
		}
	}
}

package agent

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/apiwarden/apiwarden/apimodel/call"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestFlattenStats(t *testing.T) {
	type inner struct{ Gaps uint64 }
	type stats struct {
		TLSChunks   uint64
		FlowsActive int
		Stream      inner
		hidden      uint64
	}
	got := map[string]uint64{}
	flattenStats("asm", stats{TLSChunks: 3, FlowsActive: 2, Stream: inner{Gaps: 1}}, got)
	want := map[string]uint64{"asm_tls_chunks": 3, "asm_flows_active": 2, "asm_stream_gaps": 1}
	if len(got) != len(want) {
		t.Fatalf("got %v want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %d, want %d (all: %v)", k, got[k], v, got)
		}
	}
}

func TestSnake(t *testing.T) {
	for in, want := range map[string]string{"TLSChunks": "tls_chunks", "FlowsEvictedIdle": "flows_evicted_idle", "HTTP": "http", "ProcFSErrors": "proc_fs_errors"} {
		if got := snake(in); got != want {
			t.Errorf("snake(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRequestLine(t *testing.T) {
	for in, want := range map[string]string{
		"GET /api/v1/users?q=${jndi:x} HTTP/1.1\r\nHost: a\r\n": "GET /api/v1/users",
		"DELETE /admin HTTP/1.1\r\n":                            "DELETE /admin",
		"garbage":                                               "",
		"POST /x\x00y HTTP/1.1":                                 "POST /x.y",
	} {
		if got := requestLine([]byte(in)); got != want {
			t.Errorf("requestLine(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRequestMetricsSeriesBound(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newRequestMetrics(reg, 3)
	for i := 0; i < 10; i++ {
		m.observe("svc", fmt.Sprintf("/e%d", i), "GET", 200, 0.001)
	}
	if got := testutil.CollectAndCount(m.requests); got != 4 { // 3 series + _other
		t.Fatalf("%d series, want 4 (limit 3 + overflow)", got)
	}
	if got := testutil.ToFloat64(m.dropped); got != 7 {
		t.Fatalf("overflow counted %v, want 7", got)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues(overflowLabel, overflowLabel, overflowLabel, "2xx")); got != 7 {
		t.Fatalf("_other series = %v, want 7", got)
	}
}

func TestResolveCacheRotates(t *testing.T) {
	c := newResolveCache(time.Second)
	cli, srv := netip.MustParseAddrPort("10.0.0.1:4000"), netip.MustParseAddrPort("10.0.0.2:80")
	t0 := time.Unix(1000, 0)
	if _, ok := c.get(cli, srv, t0); ok {
		t.Fatal("hit on empty cache")
	}
	c.put(cli, srv, owners{server: &call.Process{PID: 7}})
	if o, ok := c.get(cli, srv, t0.Add(1500*time.Millisecond)); !ok || o.server.PID != 7 {
		t.Fatal("entry lost after one rotation")
	}
	// Not touched for two whole periods: gone.
	if _, ok := c.get(cli, srv, t0.Add(5*time.Second)); ok {
		t.Fatal("entry outlived two periods")
	}
	if _, ok := c.get(cli, srv, t0.Add(7*time.Second)); ok {
		t.Fatal("entry outlived two periods")
	}
}

package agent

import "testing"

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

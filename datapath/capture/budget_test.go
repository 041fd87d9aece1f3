package capture

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	apicap "github.com/apiwarden/apiwarden/apimodel/capture"
)

// budgetChunk is what one segment produced under a copy budget.
type budgetChunk struct {
	copied, payload int
	skipped         bool
}

func runBudget(t *testing.T, s *Sensor, segs ...tcpSeg) []budgetChunk {
	t.Helper()
	for _, sg := range segs {
		run(t, s.objs.CaptureIngress, sg.bytes())
	}
	var out []budgetChunk
	for _, c := range drain(t, s) {
		out = append(out, budgetChunk{len(c.Data), int(c.PayloadLen), c.Flags&apicap.FlagSkipped != 0})
	}
	return out
}

// request returns a request head of exactly n bytes whose body follows.
func request(n int) []byte {
	h := "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 999999\r\nX-Pad: "
	return []byte(h + strings.Repeat("a", n-len(h)-4) + "\r\n\r\n")
}

func TestBudgetCutsMessageAtItsBound(t *testing.T) {
	const budget = 1500
	s := newTestSensor(t, Config{Budgets: true, RequestBudget: budget, ResponseBudget: 1200})
	head := request(1000)
	seg := func(seq uint32, n int, b []byte) tcpSeg {
		if b == nil {
			b = bytes.Repeat([]byte("b"), n)
		}
		return tcpSeg{src: cli4, dst: srv4, seq: seq, flags: apicap.FlagACK, payload: b}
	}
	got := runBudget(t, s,
		seg(1000, 0, head),         // message start: 1000 of 1500 used
		seg(2000, 400, nil),        // 1400: copied whole
		seg(2400, 100, nil),        // ends exactly at the budget: copied whole, not flagged
		seg(2500, 300, nil),        // past the budget: counted only
		seg(2800, 300, nil),        // still past
		seg(3100, 0, request(200)), // next message starts: copied again
	)
	want := []budgetChunk{
		{1000, 1000, false}, {400, 400, false}, {100, 100, false},
		{0, 300, true}, {0, 300, true}, {200, 200, false},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("chunks %v\nwant   %v", got, want)
	}
	// A segment straddling the bound is copied up to it.
	got = runBudget(t, s, seg(3300, 2000, nil))
	if want := []budgetChunk{{1300, 2000, true}}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("straddling: %v, want %v", got, want)
	}
	c := counters(t, s)
	if c["segments_skipped"] != 3 || c["bytes_skipped"] != 300+300+700 {
		t.Errorf("skip counters %d segments %d bytes", c["segments_skipped"], c["bytes_skipped"])
	}
}

func TestBudgetResponsesAndPortOverride(t *testing.T) {
	s := newTestSensor(t, Config{Budgets: true, RequestBudget: 4096, ResponseBudget: 1024})
	resp := func(seq uint32, n int) tcpSeg {
		b := append([]byte("HTTP/1.1 200 OK\r\n\r\n"), bytes.Repeat([]byte("r"), n-19)...)
		return tcpSeg{src: srv4, dst: cli4, seq: seq, flags: apicap.FlagACK, payload: b}
	}
	// A message start bigger than the budget (a GSO super-packet) is cut.
	got := runBudget(t, s, resp(1, 3000))
	if want := []budgetChunk{{1024, 3000, true}}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("response: %v, want %v", got, want)
	}
	// Per-port override for the server port (80): unlimited responses.
	if err := s.SetPortBudgets(map[uint16]PortBudget{srv4.Port(): {Request: 4096, Response: 0}}); err != nil {
		t.Fatal(err)
	}
	got = runBudget(t, s, resp(5000, 3000))
	if want := []budgetChunk{{3000, 3000, false}}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("override: %v, want %v", got, want)
	}
	if err := s.SetPortBudgets(nil); err != nil {
		t.Fatal(err)
	}
	if got = runBudget(t, s, resp(9000, 3000)); got[0].copied != 1024 {
		t.Fatalf("override removed: %v", got)
	}
	over := map[uint16]PortBudget{}
	for i := range MaxBudgetPorts + 1 {
		over[uint16(1000+i)] = PortBudget{}
	}
	if err := s.SetPortBudgets(over); err == nil {
		t.Error("more than MaxBudgetPorts overrides accepted")
	}
	delete(over, 1000)
	if err := s.SetPortBudgets(over); err != nil {
		t.Errorf("MaxBudgetPorts overrides: %v", err)
	}
}

func TestBudgetLeavesOtherStreamsAlone(t *testing.T) {
	s := newTestSensor(t, Config{Budgets: true, RequestBudget: 1024, ResponseBudget: 1024})
	// HTTP/2 preface and frames, TLS records, lower-case "methods": no
	// message start, no state, every byte copied.
	for i, p := range [][]byte{
		append([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), make([]byte, 3000)...),
		append([]byte{0x17, 0x03, 0x03, 0x10, 0x00}, make([]byte, 3000)...),
		append([]byte("get / HTTP/1.1\r\n"), make([]byte, 3000)...),
	} {
		src := cli4
		if i > 0 {
			src = netipPort(cli4, uint16(41000+i))
		}
		got := runBudget(t, s, tcpSeg{src: src, dst: srv4, seq: 1, flags: apicap.FlagACK, payload: p},
			tcpSeg{src: src, dst: srv4, seq: 1 + uint32(len(p)), flags: apicap.FlagACK, payload: make([]byte, 2000)})
		if len(got) != 2 || got[0].skipped || got[1].skipped || got[1].copied != 2000 {
			t.Errorf("stream %d: %v", i, got)
		}
	}
	// Budgets off: nothing is ever skipped.
	s2 := newTestSensor(t, Config{})
	got := runBudget(t, s2, tcpSeg{src: cli4, dst: srv4, seq: 1, flags: apicap.FlagACK, payload: request(1000)},
		tcpSeg{src: cli4, dst: srv4, seq: 1001, flags: apicap.FlagACK, payload: make([]byte, 3000)})
	if len(got) != 2 || got[1].copied != 3000 {
		t.Errorf("budgets off: %v", got)
	}
}

func netipPort(ap netip.AddrPort, port uint16) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr(), port)
}

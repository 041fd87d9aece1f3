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
	// HTTP/2 preface and frames, lower-case "methods", a TLS-looking
	// version byte out of range: no message start, no state, every byte
	// copied.
	for i, p := range [][]byte{
		append([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), make([]byte, 3000)...),
		append([]byte{0x17, 0x03, 0x05, 0x10, 0x00}, make([]byte, 3000)...),
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

// tlsRecord is a TLS record header of the given type followed by n bytes.
func tlsRecord(typ byte, n int) []byte {
	return append([]byte{typ, 0x03, 0x03, byte(n >> 8), byte(n)}, make([]byte, n)...)
}

// A TLS record stream: its first segment is copied up to the peek bytes
// (userspace sees it and ignores the flow), later segments are not
// captured, FIN/RST still are (the flow's end), and a plaintext message
// start on the same direction turns copying back on.
func TestBudgetCiphertextStreamIsNotCopied(t *testing.T) {
	s := newTestSensor(t, Config{Budgets: true, RequestBudget: 1024, ResponseBudget: 1024})
	hello := tlsRecord(0x16, 500)
	data := tlsRecord(0x17, 1400)
	got := runBudget(t, s,
		tcpSeg{src: cli4, dst: srv4, seq: 1, flags: apicap.FlagACK, payload: hello},
		tcpSeg{src: cli4, dst: srv4, seq: 506, flags: apicap.FlagACK, payload: data},
		tcpSeg{src: cli4, dst: srv4, seq: 1911, flags: apicap.FlagACK, payload: make([]byte, 700)}, // record continuation
		tcpSeg{src: cli4, dst: srv4, seq: 2611, flags: apicap.FlagACK | apicap.FlagFIN, payload: tlsRecord(0x15, 2)})
	want := []budgetChunk{{8, 505, true}, {7, 7, false}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("ciphertext stream: got %v, want %v (peek of the first record, then only the FIN segment, peeked)", got, want)
	}
	// The server's direction is its own stream: its first record is peeked.
	if got := runBudget(t, s, tcpSeg{src: srv4, dst: cli4, seq: 1, flags: apicap.FlagACK, payload: tlsRecord(0x16, 90)}); len(got) != 1 || got[0].copied != 8 {
		t.Errorf("server direction: %v", got)
	}
	// Shortest header that counts: 5 bytes; 4 bytes is not a record.
	other := netipPort(cli4, 42001)
	if got := runBudget(t, s, tcpSeg{src: other, dst: srv4, seq: 1, flags: apicap.FlagACK, payload: []byte{0x17, 0x03, 0x03, 0x00}},
		tcpSeg{src: other, dst: srv4, seq: 5, flags: apicap.FlagACK, payload: make([]byte, 100)}); len(got) != 2 || got[1].copied != 100 {
		t.Errorf("4-byte segment taken for a record: %v", got)
	}
	// A request line after a TLS-looking start is copied under its budget.
	p := request(600)
	if got := runBudget(t, s, tcpSeg{src: cli4, dst: srv4, seq: 2618, flags: apicap.FlagACK, payload: p}); len(got) != 1 || got[0].copied != 600 || got[0].skipped {
		t.Errorf("plaintext message after ciphertext: %v", got)
	}
	c, err := s.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if c["ciphertext_segments_skipped"] != 2 {
		t.Errorf("ciphertext_segments_skipped = %d, want 2", c["ciphertext_segments_skipped"])
	}
}

// A held port's ciphertext segments (a TLS handshake before the server's
// first read) still reach userspace, peeked: the hold point releases a
// segment only once its chunk went through the pipeline.
func TestBudgetCiphertextOfHeldPortIsPeeked(t *testing.T) {
	s := newTestSensor(t, Config{Budgets: true, RequestBudget: 1024, ResponseBudget: 1024})
	if err := s.SetWakePorts([]uint16{srv4.Port()}); err != nil {
		t.Fatal(err)
	}
	got := runBudget(t, s,
		tcpSeg{src: cli4, dst: srv4, seq: 1, flags: apicap.FlagACK, payload: tlsRecord(0x16, 300)},
		tcpSeg{src: cli4, dst: srv4, seq: 306, flags: apicap.FlagACK, payload: tlsRecord(0x14, 1)},
		// The response direction of a held port is not held: not captured.
		tcpSeg{src: srv4, dst: cli4, seq: 1, flags: apicap.FlagACK, payload: tlsRecord(0x16, 100)},
		tcpSeg{src: srv4, dst: cli4, seq: 106, flags: apicap.FlagACK, payload: tlsRecord(0x17, 100)})
	want := []budgetChunk{{8, 305, true}, {6, 6, false}, {8, 105, true}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("held port: got %v, want %v", got, want)
	}
}

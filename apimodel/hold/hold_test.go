package hold

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/apiwarden/apiwarden/apimodel/capture"
)

type verdict struct {
	id     uint32
	accept bool
}

type fakeQueue chan verdict

func (q fakeQueue) Accept(id uint32) error { q <- verdict{id, true}; return nil }
func (q fakeQueue) Drop(id uint32) error   { q <- verdict{id, false}; return nil }

var key = capture.FlowKey{
	Src: netip.MustParseAddrPort("10.1.0.2:40000"),
	Dst: netip.MustParseAddrPort("10.2.0.2:8080"),
}

func newHolder(t *testing.T, cfg Config) (*Holder, fakeQueue) {
	t.Helper()
	q := make(fakeQueue, 64)
	if cfg.Timeout == 0 {
		cfg.Timeout = time.Hour // tests decide by events, never by the clock
	}
	h := New(cfg, q)
	h.SetPorts([]uint16{8080})
	return h, q
}

func expect(t *testing.T, q fakeQueue, id uint32, accept bool) {
	t.Helper()
	v := <-q
	if v.id != id || v.accept != accept {
		t.Fatalf("verdict %+v, want id %d accept %v", v, id, accept)
	}
}

func none(t *testing.T, q fakeQueue) {
	t.Helper()
	select {
	case v := <-q:
		t.Fatalf("unexpected verdict %+v", v)
	default:
	}
}

func TestPacketWaitsUntilItsBytesAreJudged(t *testing.T) {
	h, q := newHolder(t, Config{})
	h.Judged(key, 999, 1000, false) // SYN: next byte is 1000
	h.Hold(Packet{ID: 1, Key: key, Seq: 1000, End: 1100})
	h.Hold(Packet{ID: 2, Key: key, Seq: 1100, End: 1200})
	none(t, q)
	h.Judged(key, 1000, 1100, false)
	expect(t, q, 1, true)
	none(t, q)
	h.Judged(key, 1100, 1200, false)
	expect(t, q, 2, true)
	// A retransmission of judged bytes passes at once.
	h.Hold(Packet{ID: 3, Key: key, Seq: 1000, End: 1100})
	expect(t, q, 3, true)
	if s := h.Stats(); s.Held != 3 || s.Allowed != 3 || s.Waiting != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestBlockDropsWaitingAndLaterPackets(t *testing.T) {
	h, q := newHolder(t, Config{})
	h.Judged(key, 0, 1, false)
	h.Hold(Packet{ID: 1, Key: key, Seq: 1, End: 50})
	h.Block(key) // the pipeline cut the request before publishing progress
	expect(t, q, 1, false)
	h.Judged(key, 1, 50, false)
	none(t, q)
	h.Hold(Packet{ID: 2, Key: key, Seq: 1, End: 50}) // retransmission
	expect(t, q, 2, false)
	h.Forget(key) // a cut flow is kept
	h.Hold(Packet{ID: 3, Key: key, Seq: 50, End: 60})
	expect(t, q, 3, false)
	if s := h.Stats(); s.Blocked != 3 {
		t.Fatalf("stats %+v", s)
	}
}

func TestTimeoutFailsOpenOrClosed(t *testing.T) {
	for _, closed := range []bool{false, true} {
		h, q := newHolder(t, Config{Timeout: time.Millisecond, FailClosed: closed})
		h.Hold(Packet{ID: 9, Key: key, Seq: 1, End: 2})
		expect(t, q, 9, !closed)
		// A late judgement after the timeout sends nothing twice.
		h.Judged(key, 1, 2, false)
		none(t, q)
		if s := h.Stats(); s.TimedOut != 1 || s.Waiting != 0 {
			t.Fatalf("closed=%v stats %+v", closed, s)
		}
	}
}

func TestQueueBound(t *testing.T) {
	h, q := newHolder(t, Config{MaxQueued: 2})
	h.Hold(Packet{ID: 1, Key: key, Seq: 1, End: 2})
	h.Hold(Packet{ID: 2, Key: key, Seq: 2, End: 3})
	none(t, q)
	h.Hold(Packet{ID: 3, Key: key, Seq: 3, End: 4}) // the bound: passes unjudged
	expect(t, q, 3, true)
	if s := h.Stats(); s.QueueFull != 1 || s.Waiting != 2 {
		t.Fatalf("stats %+v", s)
	}
}

func TestFlowBound(t *testing.T) {
	h, q := newHolder(t, Config{MaxFlows: 2})
	for i := range 3 {
		k := key
		k.Src = netip.AddrPortFrom(k.Src.Addr(), uint16(50000+i))
		h.Hold(Packet{ID: uint32(i), Key: k, Seq: 1, End: 2})
	}
	// Two flows wait; the third finds no room (nobody can be forgotten).
	expect(t, q, 2, true)
	if s := h.Stats(); s.QueueFull != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestOutOfOrderJudgementsMerge(t *testing.T) {
	h, q := newHolder(t, Config{})
	h.Judged(key, 99, 100, false)
	h.Hold(Packet{ID: 2, Key: key, Seq: 200, End: 300})
	h.Judged(key, 200, 300, false) // ahead of the hole [100,200)
	none(t, q)
	h.Hold(Packet{ID: 1, Key: key, Seq: 100, End: 200})
	none(t, q)
	h.Judged(key, 100, 200, false)
	a, b := <-q, <-q
	if !a.accept || !b.accept || a.id+b.id != 3 {
		t.Fatalf("verdicts %+v %+v", a, b)
	}
}

func TestSequenceWrap(t *testing.T) {
	h, q := newHolder(t, Config{})
	h.Judged(key, 0xFFFFFFF0, 0xFFFFFFFF, false)
	h.Hold(Packet{ID: 1, Key: key, Seq: 0xFFFFFFFF, End: 0x10})
	none(t, q)
	h.Judged(key, 0xFFFFFFFF, 0x10, false)
	expect(t, q, 1, true)
}

func TestTruncatedCaptureFailsOpenCounted(t *testing.T) {
	h, q := newHolder(t, Config{})
	h.Judged(key, 0, 1, false)
	h.Hold(Packet{ID: 1, Key: key, Seq: 1, End: 70000})
	h.Judged(key, 1, 70000, true)
	expect(t, q, 1, true)
	if s := h.Stats(); s.Truncated != 1 || s.Allowed != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestOnlyHeldPortsTracked(t *testing.T) {
	h, _ := newHolder(t, Config{})
	resp := key.Reverse()
	h.Judged(resp, 0, 10, false)
	if len(h.flows) != 0 {
		t.Fatal("response direction tracked")
	}
	if !h.Wants(key) || h.Wants(resp) {
		t.Fatal("Wants")
	}
}

func TestParsePacket(t *testing.T) {
	tcp := make([]byte, 20)
	binary.BigEndian.PutUint16(tcp[0:], 40000)
	binary.BigEndian.PutUint16(tcp[2:], 8080)
	binary.BigEndian.PutUint32(tcp[4:], 0xFFFFFFF0)
	tcp[12] = 5 << 4
	v4 := make([]byte, 20)
	v4[0], v4[9] = 0x45, 6
	binary.BigEndian.PutUint16(v4[2:], 20+20+32) // 32 payload bytes, not copied
	copy(v4[12:], []byte{10, 1, 0, 2})
	copy(v4[16:], []byte{10, 2, 0, 2})
	p, ok := ParsePacket(5, append(v4, tcp...), time.Time{})
	if !ok || p.Key != key || p.Seq != 0xFFFFFFF0 || p.End != 0x10 || p.ID != 5 {
		t.Fatalf("v4: %+v %v", p, ok)
	}
	v6 := make([]byte, 40)
	v6[0], v6[6] = 0x60, 6
	binary.BigEndian.PutUint16(v6[4:], 20+7)
	v6[23], v6[39] = 1, 2
	p, ok = ParsePacket(6, append(v6, tcp...), time.Time{})
	if !ok || p.End-p.Seq != 7 || p.Key.Dst.Addr() != netip.MustParseAddr("::2") {
		t.Fatalf("v6: %+v %v", p, ok)
	}
	bad := [][]byte{nil, {0x45}, append([]byte{0x45, 0, 0, 40, 0, 0, 0, 0, 64, 17}, make([]byte, 30)...), v6[:30]}
	for i, b := range bad {
		if _, ok := ParsePacket(1, b, time.Time{}); ok {
			t.Errorf("bad[%d] parsed", i)
		}
	}
}

// TLS responses: the server's packets (server -> client) wait until the
// decrypted request stream is judged up to what the server had read.

type tlsReads map[capture.FlowKey]uint32

func (r tlsReads) read(k capture.FlowKey) (uint32, bool) { v, ok := r[k]; return v, ok }

func newTLSHolder(t *testing.T, cfg Config) (*Holder, fakeQueue, tlsReads) {
	t.Helper()
	reads := tlsReads{}
	cfg.TLSRead = reads.read
	h, q := newHolder(t, cfg)
	return h, q, reads
}

func respPacket(id, seq uint32) Packet {
	return Packet{ID: id, Key: key.Reverse(), Seq: seq, End: seq + 100}
}

func TestTLSResponseWaitsUntilRequestJudged(t *testing.T) {
	h, q, reads := newTLSHolder(t, Config{})
	reads[key] = 300 // the server read the decrypted stream up to 300
	h.Hold(respPacket(1, 5000))
	h.Hold(respPacket(2, 5100))
	none(t, q)
	h.JudgedTLS(key, 200) // not yet up to the read
	none(t, q)
	h.JudgedTLS(key, 300)
	expect(t, q, 1, true)
	expect(t, q, 2, true)
	// Marked before the verdict, queued after it: passes at once.
	h.Hold(respPacket(3, 5200))
	expect(t, q, 3, true)
	// The next request read: its response waits again.
	reads[key] = 450
	h.Hold(respPacket(4, 5300))
	none(t, q)
	h.JudgedTLS(key, 450)
	expect(t, q, 4, true)
	s := h.Stats()
	if s.TLSHeld != 4 || s.TLSAllowed != 4 || s.Allowed != 4 || s.Waiting != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestTLSResponseOfCutRequestIsDropped(t *testing.T) {
	h, q, reads := newTLSHolder(t, Config{})
	reads[key] = 120
	h.Hold(respPacket(1, 5000))
	h.Hold(Packet{ID: 2, Key: key.Reverse(), Seq: 5100, End: 5100}) // FIN
	none(t, q)
	h.Block(key) // the detector cut the request
	expect(t, q, 1, false)
	expect(t, q, 2, false)
	// Retransmissions and later packets stay dropped, judged or not.
	h.JudgedTLS(key, 120)
	h.Hold(respPacket(3, 5000))
	expect(t, q, 3, false)
	// The request direction of the cut flow too.
	h.Hold(Packet{ID: 4, Key: key, Seq: 1, End: 10})
	expect(t, q, 4, false)
	s := h.Stats()
	if s.TLSBlocked != 3 || s.Blocked != 4 || s.TLSAllowed != 0 {
		t.Fatalf("stats %+v", s)
	}
	// A cut TLS flow is not forgotten while its retransmissions may come.
	h.ForgetTLS(key)
	h.Hold(respPacket(5, 5000))
	expect(t, q, 5, false)
}

func TestTLSResponseTimeoutFailsOpenOrClosed(t *testing.T) {
	for _, closed := range []bool{false, true} {
		h, q, reads := newTLSHolder(t, Config{Timeout: time.Millisecond, FailClosed: closed})
		reads[key] = 10
		h.Hold(respPacket(1, 5000))
		expect(t, q, 1, !closed) // waits for the timer, not for a clock assertion
		if s := h.Stats(); s.TLSTimedOut != 1 || s.TimedOut != 1 || s.Waiting != 0 {
			t.Fatalf("closed %v: stats %+v", closed, s)
		}
		// A late verdict for the expired packet is harmless.
		h.JudgedTLS(key, 10)
		none(t, q)
	}
}

func TestTLSResponseWithoutReadOffsetPasses(t *testing.T) {
	h, q, _ := newTLSHolder(t, Config{})
	// No read offset (evicted from the kernel's LRU, or the socket closed):
	// nothing to wait for.
	h.Hold(respPacket(1, 5000))
	expect(t, q, 1, true)
	if s := h.Stats(); s.TLSUnknown != 1 || s.Waiting != 0 {
		t.Fatalf("stats %+v", s)
	}
	// Without a TLSRead source a server -> client packet is a plain packet
	// (the plaintext path), as before.
	h2, q2 := newHolder(t, Config{Timeout: time.Millisecond})
	h2.Hold(respPacket(2, 5000))
	expect(t, q2, 2, true)
	if s := h2.Stats(); s.TLSHeld != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestTLSResponseQueueBound(t *testing.T) {
	h, q, reads := newTLSHolder(t, Config{MaxQueued: 2})
	reads[key] = 10
	h.Hold(respPacket(1, 5000))
	h.Hold(respPacket(2, 5100))
	h.Hold(respPacket(3, 5200)) // over the bound: passes unjudged
	expect(t, q, 3, true)
	if s := h.Stats(); s.QueueFull != 1 || s.Waiting != 2 {
		t.Fatalf("stats %+v", s)
	}
	h.JudgedTLS(key, 10)
	expect(t, q, 1, true)
	expect(t, q, 2, true)
}

func TestTLSFlowSurvivesClientFINUntilSocketCloses(t *testing.T) {
	h, q, reads := newTLSHolder(t, Config{})
	reads[key] = 50
	h.JudgedTLS(key, 50)
	h.Forget(key) // the client's FIN on the wire: the server may still answer
	h.Hold(respPacket(1, 5000))
	expect(t, q, 1, true)
	h.ForgetTLS(key) // the server's socket closed
	h.Hold(respPacket(2, 5000))
	none(t, q) // a new flow state: waits for its verdict again
	h.JudgedTLS(key, 50)
	expect(t, q, 2, true)
}

// TestHoldReportsWhetherThePacketWaits: the queue reader flushes the
// capture only for packets still waiting; one whose bytes were judged
// first is decided on the spot.
func TestHoldReportsWhetherThePacketWaits(t *testing.T) {
	h, q := newHolder(t, Config{})
	h.Judged(key, 999, 1100, false)
	if h.Hold(Packet{ID: 1, Key: key, Seq: 1000, End: 1100}) {
		t.Fatal("a judged packet reported waiting")
	}
	expect(t, q, 1, true)
	if !h.Hold(Packet{ID: 2, Key: key, Seq: 1100, End: 1200}) {
		t.Fatal("an unjudged packet reported decided")
	}
	none(t, q)
	h.Block(key)
	expect(t, q, 2, false)
	if h.Hold(Packet{ID: 3, Key: key, Seq: 1200, End: 1300}) {
		t.Fatal("a packet of a cut flow reported waiting")
	}
	expect(t, q, 3, false)
}

// A client that reuses the 4-tuple of a cut connection (a reset socket
// leaves no TIME_WAIT) opens a new connection: its packets are judged like
// a new flow's, while the cut connection's own stay dropped.
func TestNewConnectionOnCutFlowsTuple(t *testing.T) {
	h, q := newHolder(t, Config{})
	h.Judged(key, 999, 1100, false) // SYN + the attack request
	h.Block(key)
	h.Hold(Packet{ID: 1, Key: key, Seq: 1000, End: 1100}) // retransmission
	expect(t, q, 1, false)
	h.Hold(Packet{ID: 2, Key: key, Seq: 1100 + cutWindow - 1, End: 1100 + cutWindow + 99}) // data past it, same connection
	expect(t, q, 2, false)

	// SYN judged first, then the new connection's request.
	const isn = 1000 + 1<<31
	h.Open(key)
	h.Judged(key, isn, isn+1, false)
	h.Hold(Packet{ID: 3, Key: key, Seq: isn + 1, End: isn + 101})
	none(t, q)
	h.Judged(key, isn+1, isn+101, false)
	expect(t, q, 3, true)

	// Cut again; this time the new connection's request is queued before
	// the pipeline has seen its SYN: it waits instead of being dropped.
	h.Block(key)
	const isn2 = 1000 + 1<<30
	h.Hold(Packet{ID: 4, Key: key, Seq: isn2 + 1, End: isn2 + 101})
	none(t, q)
	h.Open(key)
	h.Judged(key, isn2, isn2+1, false)
	none(t, q)
	h.Judged(key, isn2+1, isn2+101, false)
	expect(t, q, 4, true)
	if s := h.Stats(); s.Blocked != 2 || s.Allowed != 2 {
		t.Fatalf("stats %+v", s)
	}
}

// The window's bounds: a cut flow's packets within cutWindow of its judged
// position (either side, across the sequence wrap) are its own.
func TestCutWindowBounds(t *testing.T) {
	for _, c := range []struct {
		judged, seq uint32
		in          bool
	}{
		{1000, 1000, true},
		{1000, 1000 + cutWindow - 1, true},
		{1000, 1000 + cutWindow, false},
		{cutWindow + 1000, 1001, true},
		{cutWindow + 1000, 1000, false},
		{0xffffff00, 0x100, true}, // across the wrap
		{0x100, 0xffffff00, true},
	} {
		if got := inCutWindow(c.judged, c.seq); got != c.in {
			t.Errorf("inCutWindow(%#x, %#x) = %v", c.judged, c.seq, got)
		}
	}
}

// A cut flow whose position was never judged cannot tell its packets from
// a new connection's: they are dropped (the kernel's SYN handling and the
// client's retransmission recover a new connection).
func TestCutFlowWithoutPositionDrops(t *testing.T) {
	h, q := newHolder(t, Config{})
	h.Block(key)
	h.Hold(Packet{ID: 1, Key: key, Seq: 5, End: 105})
	expect(t, q, 1, false)
}

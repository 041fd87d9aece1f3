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

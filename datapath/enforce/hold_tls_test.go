package enforce

import (
	"net/netip"
	"testing"
)

// The TLS response hold (bpf/include/hold.h): while the server end of a
// protect-mode flow has read more request bytes (hold_tls_read, written by
// the TLS read probe; set directly here) than the agent has judged
// (hold_tls_judged), its server->client data segments and FIN are marked.

func setTLSRead(t *testing.T, e *Enforcer, client, server netip.AddrPort, end uint32) {
	t.Helper()
	k := flowKey(client, server)
	if err := e.objs.HoldTlsRead.Put(&k, end); err != nil {
		t.Fatal(err)
	}
}

func TestHoldMarksTLSResponsesUntilJudged(t *testing.T) {
	e := newEnforcer(t)
	const mark = 0x00400000
	if err := e.SetHold(mark, []uint16{8080}); err != nil {
		t.Fatal(err)
	}
	resp := tcpPacket(server, client, "\x17\x03\x03\x00\x20encrypted-response-record")
	fin := withFlags(tcpPacket(server, client, ""), false, 0x11)
	ack := tcpPacket(server, client, "")
	rst := withFlags(tcpPacket(server, client, ""), false, 0x14)
	marked := func(pkt []byte) bool {
		t.Helper()
		ret, got := runMark(t, e.objs.EnforceIngress, pkt, 0)
		if ret != tcxNext {
			t.Errorf("verdict %#x, want next", ret)
		}
		return got&mark != 0
	}

	if marked(resp) {
		t.Error("response of a flow the server read nothing of: marked")
	}
	setTLSRead(t, e, client, server, 120)
	steps := []struct {
		name   string
		judged int64 // -1: none written
		pkt    []byte
		want   bool
	}{
		{"read, nothing judged: data", -1, resp, true},
		{"read, nothing judged: FIN", -1, fin, true},
		{"read, nothing judged: pure ACK", -1, ack, false},
		{"read, nothing judged: RST", -1, rst, false},
		{"judged behind the read", 60, resp, true},
		{"judged up to the read", 120, resp, false},
		{"judged up to the read: FIN", 120, fin, false},
		{"judged past the read", 200, resp, false},
	}
	for _, s := range steps {
		if s.judged >= 0 {
			if err := e.SetTLSJudged(client, server, uint32(s.judged)); err != nil {
				t.Fatal(err)
			}
		}
		if got := marked(s.pkt); got != s.want {
			t.Errorf("%s: marked %v, want %v", s.name, got, s.want)
		}
	}

	// Offsets wrap at 2^32: a read just past the wrap is ahead of a judged
	// offset just before it.
	setTLSRead(t, e, client, server, 5)
	if err := e.SetTLSJudged(client, server, 0xfffffff0); err != nil {
		t.Fatal(err)
	}
	if !marked(resp) {
		t.Error("read past the 2^32 wrap, judged before it: not marked")
	}

	// The request direction of a TLS flow is not held on the wire.
	if marked(tcpPacket(client, server, "\x17\x03\x03\x00\x10request")) {
		t.Error("TLS request segment marked")
	}
	cnt, err := e.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if cnt["hold_tls_marked"] != 4 || cnt["hold_marked"] != 0 {
		t.Errorf("hold_tls_marked = %d (want 4), hold_marked = %d (want 0)", cnt["hold_tls_marked"], cnt["hold_marked"])
	}

	// Forgotten (socket closed): nothing held.
	e.ForgetTLS(client, server)
	if marked(resp) {
		t.Error("forgotten flow: marked")
	}
	if _, ok := e.TLSRead(client, server); ok {
		t.Error("forgotten flow still has a read offset")
	}
}

func TestHoldTLSResponseOnlyForHeldPorts(t *testing.T) {
	e := newEnforcer(t)
	const mark = 0x00400000
	other := netip.MustParseAddrPort("10.2.0.2:9443")
	srv6 := netip.MustParseAddrPort("[fd00::2]:8080")
	cli6 := netip.MustParseAddrPort("[fd00::1]:40000")
	if err := e.SetHold(mark, []uint16{8080}); err != nil {
		t.Fatal(err)
	}
	setTLSRead(t, e, client, other, 10)
	setTLSRead(t, e, cli6, srv6, 10)
	if _, got := runMark(t, e.objs.EnforceIngress, tcpPacket(other, client, "x"), 0); got != 0 {
		t.Errorf("port not held: mark %#x", got)
	}
	if _, got := runMark(t, e.objs.EnforceIngress, tcpPacket(srv6, cli6, "x"), 0x3); got != 0x3|mark {
		t.Errorf("ipv6 response: mark %#x, want %#x (other bits kept)", got, 0x3|mark)
	}
	// Holding off: nothing marked, whatever the maps say.
	if err := e.SetHold(0, []uint16{8080}); err != nil {
		t.Fatal(err)
	}
	if _, got := runMark(t, e.objs.EnforceIngress, tcpPacket(srv6, cli6, "x"), 0); got != 0 {
		t.Errorf("holding off: mark %#x", got)
	}
}

// At the map's bound the LRU forgets old flows: a forgotten flow's
// responses pass unmarked (fail open), never the other way round, and
// writes never fail.
func TestHoldTLSMapAtBound(t *testing.T) {
	e := newEnforcer(t)
	const mark = 0x00400000
	if err := e.SetHold(mark, []uint16{8080}); err != nil {
		t.Fatal(err)
	}
	setTLSRead(t, e, client, server, 10)
	nth := func(i int) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 9, byte(i >> 8), byte(i)}), uint16(1024+i%60000))
	}
	for i := range 2 * MaxHoldTLSFlows {
		c := nth(i)
		setTLSRead(t, e, c, server, 10)
		if err := e.SetTLSJudged(c, server, 5); err != nil {
			t.Fatalf("judged write %d at the bound: %v", i, err)
		}
	}
	_, present := e.TLSRead(client, server)
	_, got := runMark(t, e.objs.EnforceIngress, tcpPacket(server, client, "x"), 0)
	if (got&mark != 0) != present {
		t.Errorf("flow present %v but marked %v", present, got&mark != 0)
	}
	// The newest flow is held.
	last := nth(2*MaxHoldTLSFlows - 1)
	if _, got := runMark(t, e.objs.EnforceIngress, tcpPacket(server, last, "x"), 0); got&mark == 0 {
		t.Error("newest flow at the bound not marked")
	}
	t.Logf("oldest flow kept at the bound: %v", present)
}

// Request segments of a flow the TLS probe saw a server read are not held
// on the wire (the response is); a plaintext flow of the same port is.
func TestHoldSkipsRequestSegmentsOfTLSFlows(t *testing.T) {
	e := newEnforcer(t)
	const mark = 0x00400000
	if err := e.SetHold(mark, []uint16{8080}); err != nil {
		t.Fatal(err)
	}
	plain := netip.MustParseAddrPort("10.1.0.3:40001")
	setTLSRead(t, e, client, server, 10)
	if _, got := runMark(t, e.objs.EnforceIngress, tcpPacket(client, server, "\x17\x03\x03\x00\x10record"), 0); got != 0 {
		t.Errorf("TLS flow request segment: mark %#x, want none", got)
	}
	if _, got := runMark(t, e.objs.EnforceIngress, tcpPacket(plain, server, "GET / HTTP/1.1\r\n\r\n"), 0); got != mark {
		t.Errorf("plaintext flow request segment: mark %#x, want %#x", got, mark)
	}
}

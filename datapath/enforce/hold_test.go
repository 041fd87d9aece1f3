package enforce

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
)

// skbCtx is the head of struct __sk_buff up to mark (len, pkt_type, mark):
// PROG_TEST_RUN takes a prefix of the context, which is all the hold point
// reads or writes.
type skbCtx struct {
	Len, PktType, Mark uint32
}

// runMark runs the ingress program on pkt with skb->mark = in and returns
// the verdict and the mark the program left.
func runMark(t *testing.T, p *ebpf.Program, pkt []byte, in uint32) (uint32, uint32) {
	t.Helper()
	ctxIn := skbCtx{Mark: in}
	// The kernel writes back the whole __sk_buff (192 bytes on 6.x).
	ctxOut := make([]byte, 192)
	ret, err := p.Run(&ebpf.RunOptions{Data: pkt, Context: ctxIn, ContextOut: ctxOut})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return ret, binary.LittleEndian.Uint32(ctxOut[8:])
}

func withFlags(pkt []byte, v6 bool, flags byte) []byte {
	off := 14 + 20 + 13
	if v6 {
		off = 14 + 40 + 13
	}
	out := append([]byte(nil), pkt...)
	out[off] = flags
	return out
}

func TestHoldMarksProtectedRequestSegments(t *testing.T) {
	e := newEnforcer(t)
	const mark = 0x00400000
	if err := e.SetHold(mark, []uint16{8080}); err != nil {
		t.Fatal(err)
	}
	srv6 := netip.MustParseAddrPort("[fd00::2]:8080")
	cli6 := netip.MustParseAddrPort("[fd00::1]:40000")
	other := netip.MustParseAddrPort("10.2.0.2:9090")
	req := "GET /api/v1/users/42 HTTP/1.1\r\nHost: x\r\n\r\n"
	cases := []struct {
		name   string
		pkt    []byte
		in     uint32
		marked bool
	}{
		{"request segment", tcpPacket(client, server, req), 0, true},
		{"one payload byte (the bound)", tcpPacket(client, server, "G"), 0, true},
		{"body segment, not a request start", tcpPacket(client, server, "a=1&b=2"), 0, true},
		{"ipv6 request", tcpPacket(cli6, srv6, req), 0, true},
		{"other bits preserved", tcpPacket(client, server, req), 0x5, true},
		{"pure ack (no payload)", tcpPacket(client, server, ""), 0, false},
		{"response direction", tcpPacket(server, client, "HTTP/1.1 200 OK\r\n\r\n"), 0, false},
		{"port not held", tcpPacket(client, other, req), 0, false},
		{"rst with payload", withFlags(tcpPacket(client, server, "x"), false, 0x14), 0, false},
	}
	for _, c := range cases {
		ret, got := runMark(t, e.objs.EnforceIngress, c.pkt, c.in)
		if ret != tcxNext {
			t.Errorf("%s: verdict %#x, want next", c.name, ret)
		}
		want := c.in
		if c.marked {
			want |= mark
		}
		if got != want {
			t.Errorf("%s: mark %#x, want %#x", c.name, got, want)
		}
	}
	cnt, err := e.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if cnt["hold_marked"] != 5 {
		t.Errorf("hold_marked = %d, want 5", cnt["hold_marked"])
	}
}

func TestHoldOffMarksNothing(t *testing.T) {
	e := newEnforcer(t)
	pkt := tcpPacket(client, server, "GET / HTTP/1.1\r\n\r\n")
	// Ports without a mark, and (after clearing) neither: nothing is marked.
	if err := e.SetHold(0, []uint16{8080}); err != nil {
		t.Fatal(err)
	}
	if _, got := runMark(t, e.objs.EnforceIngress, pkt, 0); got != 0 {
		t.Errorf("mark 0: got %#x", got)
	}
	if err := e.SetHold(0x400000, nil); err != nil {
		t.Fatal(err)
	}
	if _, got := runMark(t, e.objs.EnforceIngress, pkt, 0); got != 0 {
		t.Errorf("no ports: got %#x", got)
	}
	ports := make([]uint16, MaxHoldPorts+1)
	if err := e.SetHold(0x400000, ports); err == nil {
		t.Error("more than MaxHoldPorts accepted")
	}
}

func TestKernelRuleDropIsNotHeld(t *testing.T) {
	e := newEnforcer(t)
	if err := e.SetRules([]Rule{{ID: 1, Kind: KindLiteral, Pattern: "${jndi:", Action: ActionDrop}}); err != nil {
		t.Fatal(err)
	}
	if err := e.SetHold(0x400000, []uint16{8080}); err != nil {
		t.Fatal(err)
	}
	ret, got := runMark(t, e.objs.EnforceIngress, tcpPacket(client, server, "GET /?q=${jndi:x} HTTP/1.1\r\n\r\n"), 0)
	if ret != tcxDrop || got != 0 {
		t.Errorf("kernel drop: verdict %#x mark %#x", ret, got)
	}
}

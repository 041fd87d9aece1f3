package enforce

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
)

const (
	tcxNext = 0xffffffff
	tcxDrop = 2
)

var (
	client = netip.MustParseAddrPort("10.1.0.2:40000")
	server = netip.MustParseAddrPort("10.2.0.2:8080")
)

func newEnforcer(t *testing.T) *Enforcer {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to load eBPF programs")
	}
	e, err := New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// tcpPacket builds Ethernet + IPv4 or IPv6 + TCP (ACK|PSH) + payload.
func tcpPacket(src, dst netip.AddrPort, payload string) []byte {
	tcp := make([]byte, 20)
	binary.BigEndian.PutUint16(tcp[0:], src.Port())
	binary.BigEndian.PutUint16(tcp[2:], dst.Port())
	binary.BigEndian.PutUint32(tcp[4:], 1000)
	tcp[12] = 5 << 4
	tcp[13] = 0x18
	eth := make([]byte, 14)
	var ip []byte
	if src.Addr().Is4() {
		binary.BigEndian.PutUint16(eth[12:], 0x0800)
		ip = make([]byte, 20)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+20+len(payload)))
		ip[8], ip[9] = 64, 6
		s, d := src.Addr().As4(), dst.Addr().As4()
		copy(ip[12:], s[:])
		copy(ip[16:], d[:])
	} else {
		binary.BigEndian.PutUint16(eth[12:], 0x86DD)
		ip = make([]byte, 40)
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], uint16(20+len(payload)))
		ip[6], ip[7] = 6, 64
		s, d := src.Addr().As16(), dst.Addr().As16()
		copy(ip[8:], s[:])
		copy(ip[24:], d[:])
	}
	pkt := append(eth, ip...)
	pkt = append(pkt, tcp...)
	return append(pkt, payload...)
}

func run(t *testing.T, p *ebpf.Program, pkt []byte) uint32 {
	t.Helper()
	ret, err := p.Run(&ebpf.RunOptions{Data: pkt})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return ret
}

func TestRulesMatchFirstSegment(t *testing.T) {
	e := newEnforcer(t)
	err := e.SetRules([]Rule{
		{ID: 1, Kind: KindPrefix, Method: "DELETE", Pattern: "/admin", Action: ActionDrop},
		{ID: 2, Kind: KindPrefix, Pattern: "/internal/", Action: ActionDrop, Port: 8080},
		{ID: 3, Kind: KindLiteral, Pattern: "${jndi:", Action: ActionDrop},
		{ID: 4, Kind: KindLiteral, Pattern: "../../", Action: ActionCount},
	})
	if err != nil {
		t.Fatal(err)
	}
	other := netip.MustParseAddrPort("10.2.0.2:9090")
	cases := []struct {
		name    string
		dst     netip.AddrPort
		payload string
		want    uint32
	}{
		{"benign get", server, "GET /api/v1/users/42 HTTP/1.1\r\nHost: x\r\n\r\n", tcxNext},
		{"prefix deny with method", server, "DELETE /admin/users HTTP/1.1\r\nHost: x\r\n\r\n", tcxDrop},
		{"prefix other method passes", server, "GET /admin/users HTTP/1.1\r\nHost: x\r\n\r\n", tcxNext},
		{"any-method prefix", server, "POST /internal/debug HTTP/1.1\r\nHost: x\r\n\r\n", tcxDrop},
		{"port-scoped rule elsewhere passes", other, "POST /internal/debug HTTP/1.1\r\nHost: x\r\n\r\n", tcxNext},
		{"literal in header, mixed case", server, "GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: ${JNDI:ldap://a/b}\r\n\r\n", tcxDrop},
		{"literal in query", server, "GET /?q=${jndi:dns://x} HTTP/1.1\r\n\r\n", tcxDrop},
		{"count-only rule passes", server, "GET /files/../../etc/passwd HTTP/1.1\r\n\r\n", tcxNext},
		{"not a request start", server, "this is the middle of a body ${jndi: ....", tcxNext},
		{"response direction not scanned", server, "HTTP/1.1 200 OK\r\nX: ${jndi:\r\n\r\n", tcxNext},
	}
	for i, c := range cases {
		src := netip.AddrPortFrom(client.Addr(), uint16(41000+i)) // a fresh flow each
		if got := run(t, e.objs.EnforceIngress, tcpPacket(src, c.dst, c.payload)); got != c.want {
			t.Errorf("%s: got %#x want %#x", c.name, got, c.want)
		}
	}
	cnt, err := e.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if cnt["requests_dropped"] != 4 || cnt["requests_matched_monitor"] != 1 {
		t.Errorf("counters %v", cnt)
	}
}

func TestDroppedRequestFlagsFlowBothWays(t *testing.T) {
	e := newEnforcer(t)
	if err := e.SetRules([]Rule{{ID: 7, Kind: KindLiteral, Pattern: "<script", Action: ActionDrop}}); err != nil {
		t.Fatal(err)
	}
	events := make(chan Event, 4)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.Run(ctx, func(ev Event) { events <- ev })

	attack := tcpPacket(client, server, "GET /?c=<SCRIPT>alert(1)</script> HTTP/1.1\r\n\r\n")
	if got := run(t, e.objs.EnforceIngress, attack); got != tcxDrop {
		t.Fatalf("attack: got %#x want drop", got)
	}
	if !e.IsFlagged(client, server) {
		t.Fatal("flow not flagged after a drop")
	}
	// The retransmitted request, a later benign request and any response on
	// the same connection are dropped too.
	if got := run(t, e.objs.EnforceIngress, tcpPacket(client, server, "GET / HTTP/1.1\r\n\r\n")); got != tcxDrop {
		t.Errorf("later ingress packet: got %#x want drop", got)
	}
	if got := run(t, e.objs.EnforceEgress, tcpPacket(server, client, "HTTP/1.1 200 OK\r\n\r\nsecret")); got != tcxDrop {
		t.Errorf("response packet: got %#x want drop", got)
	}
	// Another connection of the same client is untouched.
	other := netip.AddrPortFrom(client.Addr(), client.Port()+1)
	if got := run(t, e.objs.EnforceIngress, tcpPacket(other, server, "GET / HTTP/1.1\r\n\r\n")); got != tcxNext {
		t.Errorf("other flow: got %#x want pass", got)
	}
	select {
	case ev := <-events:
		if ev.RuleID != 7 || ev.Client != client || ev.Server != server || ev.Action != ActionDrop ||
			!strings.HasPrefix(string(ev.Evidence), "GET /?c=<SCRIPT>") {
			t.Errorf("event %+v", ev)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no enforce event")
	}
	if err := e.Unflag(client, server); err != nil {
		t.Fatal(err)
	}
	if got := run(t, e.objs.EnforceEgress, tcpPacket(server, client, "HTTP/1.1 200 OK\r\n\r\n")); got != tcxNext {
		t.Errorf("after unflag: got %#x want pass", got)
	}
}

func TestUserspaceFlagIPv6(t *testing.T) {
	e := newEnforcer(t)
	c6 := netip.MustParseAddrPort("[fd00::2]:40000")
	s6 := netip.MustParseAddrPort("[fd00:1::2]:443")
	if err := e.Flag(c6, s6, ReasonUserspace, 0); err != nil {
		t.Fatal(err)
	}
	if got := run(t, e.objs.EnforceEgress, tcpPacket(s6, c6, "\x17\x03\x03 ciphertext")); got != tcxDrop {
		t.Errorf("egress of flagged v6 flow: got %#x want drop", got)
	}
	if got := run(t, e.objs.EnforceIngress, tcpPacket(c6, s6, "\x17\x03\x03 ciphertext")); got != tcxDrop {
		t.Errorf("ingress of flagged v6 flow: got %#x want drop", got)
	}
}

func TestNoRulesPassEverything(t *testing.T) {
	e := newEnforcer(t)
	for _, p := range []string{"GET /?x=${jndi:ldap://x} HTTP/1.1\r\n\r\n", "", "\x00\x01"} {
		if got := run(t, e.objs.EnforceIngress, tcpPacket(client, server, p)); got != tcxNext {
			t.Errorf("%q: got %#x want pass", p, got)
		}
	}
	udp := tcpPacket(client, server, "GET / HTTP/1.1\r\n\r\n")
	udp[14+9] = 17
	if got := run(t, e.objs.EnforceIngress, udp); got != tcxNext {
		t.Errorf("udp: got %#x", got)
	}
}

func TestRuleSetBounds(t *testing.T) {
	e := newEnforcer(t)
	// The Go limits must be the kernel's.
	spec, err := loadEnforce()
	if err != nil {
		t.Fatal(err)
	}
	if got := spec.Maps["enforce_rules"].MaxEntries; got != MaxRules {
		t.Fatalf("kernel holds %d rules, Go says %d", got, MaxRules)
	}
	if got := spec.Maps["flagged_flows"].MaxEntries; got != MaxFlagged {
		t.Fatalf("kernel flags %d flows, Go says %d", got, MaxFlagged)
	}
	full := make([]Rule, MaxRules)
	for i := range full {
		full[i] = Rule{ID: uint32(i), Kind: KindLiteral, Pattern: strings.Repeat("z", MaxPattern-1) + string(rune('a'+i%26)), Action: ActionDrop}
	}
	if err := e.SetRules(full); err != nil {
		t.Fatalf("MaxRules rules of MaxPattern bytes: %v", err)
	}
	// The last rule, at the last slot, still matches.
	last := full[MaxRules-1].Pattern
	if got := run(t, e.objs.EnforceIngress, tcpPacket(client, server, "GET /"+last+" HTTP/1.1\r\n\r\n")); got != tcxDrop {
		t.Errorf("last rule at bound: got %#x want drop", got)
	}
	if err := e.SetRules(append(full, full[0])); !errors.Is(err, ErrRuleSet) {
		t.Errorf("MaxRules+1: err %v", err)
	}
	if err := e.SetRules([]Rule{{ID: 1, Kind: KindLiteral, Pattern: strings.Repeat("a", MaxPattern+1), Action: ActionDrop}}); !errors.Is(err, ErrRuleSet) {
		t.Errorf("pattern MaxPattern+1: err %v", err)
	}
	// A literal that ends exactly at the last scanned byte matches; one that
	// straddles the scan limit does not (the rest is userspace's job).
	if err := e.SetRules([]Rule{{ID: 9, Kind: KindLiteral, Pattern: "evil!", Action: ActionDrop}}); err != nil {
		t.Fatal(err)
	}
	pre := "GET /" + strings.Repeat("a", 512-5-5)
	if got := run(t, e.objs.EnforceIngress, tcpPacket(netip.AddrPortFrom(client.Addr(), 50001), server, pre+"evil!")); got != tcxDrop {
		t.Errorf("literal ending at scan bound: got %#x want drop", got)
	}
	if got := run(t, e.objs.EnforceIngress, tcpPacket(netip.AddrPortFrom(client.Addr(), 50002), server, pre+"xevil!")); got != tcxNext {
		t.Errorf("literal past scan bound: got %#x want pass", got)
	}
}

func BenchmarkEnforceIngress(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	e, err := New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	rules := []Rule{{ID: 1, Kind: KindPrefix, Pattern: "/admin", Action: ActionDrop}}
	for i, p := range []string{"${jndi:", "../../", "<script", "union select", "/etc/passwd", "${::-j}", "%2e%2e%2f", "<!entity"} {
		rules = append(rules, Rule{ID: uint32(10 + i), Kind: KindLiteral, Pattern: p, Action: ActionDrop})
	}
	if err := e.SetRules(rules); err != nil {
		b.Fatal(err)
	}
	req := "GET /api/v1/users/42/orders?limit=10&status=open HTTP/1.1\r\nHost: api.example\r\nUser-Agent: curl/8.5.0\r\nAccept: application/json\r\nAuthorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc\r\n\r\n"
	for _, c := range []struct{ name, payload string }{
		{"request-200B", req},
		{"body-segment", strings.Repeat("x", 1400)},
	} {
		b.Run(c.name, func(b *testing.B) {
			_, d, err := e.objs.EnforceIngress.Benchmark(tcpPacket(client, server, c.payload), b.N, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(d.Nanoseconds()), "ns/run")
		})
	}
}

func TestPortModesOverrideRuleAction(t *testing.T) {
	e := newEnforcer(t)
	if err := e.SetRules([]Rule{{ID: 1, Kind: KindLiteral, Pattern: "${jndi:", Action: ActionDrop}}); err != nil {
		t.Fatal(err)
	}
	monitorSvc := netip.MustParseAddrPort("10.2.0.2:9000")
	if err := e.SetPortModes(map[uint16]Action{9000: ActionCount}); err != nil {
		t.Fatal(err)
	}
	attack := "GET /?x=${jndi:ldap://a} HTTP/1.1\r\n\r\n"
	if got := run(t, e.objs.EnforceIngress, tcpPacket(netip.AddrPortFrom(client.Addr(), 42001), monitorSvc, attack)); got != tcxNext {
		t.Errorf("monitor port: got %#x want pass", got)
	}
	if got := run(t, e.objs.EnforceIngress, tcpPacket(netip.AddrPortFrom(client.Addr(), 42002), server, attack)); got != tcxDrop {
		t.Errorf("other port: got %#x want drop", got)
	}
	// Replacing the overrides removes stale ones.
	if err := e.SetPortModes(nil); err != nil {
		t.Fatal(err)
	}
	if got := run(t, e.objs.EnforceIngress, tcpPacket(netip.AddrPortFrom(client.Addr(), 42003), monitorSvc, attack)); got != tcxDrop {
		t.Errorf("after clearing overrides: got %#x want drop", got)
	}
	tooMany := map[uint16]Action{}
	for p := 1; p <= MaxPortModes+1; p++ {
		tooMany[uint16(p)] = ActionCount
	}
	if err := e.SetPortModes(tooMany); !errors.Is(err, ErrRuleSet) {
		t.Errorf("MaxPortModes+1: %v", err)
	}
	delete(tooMany, 1)
	if err := e.SetPortModes(tooMany); err != nil {
		t.Errorf("exactly MaxPortModes: %v", err)
	}
}

// TestRSTOfFlaggedFlowPasses: the reset of a destroyed socket must reach the
// peer, or a client in another namespace waits for a timeout instead.
func TestRSTOfFlaggedFlowPasses(t *testing.T) {
	e := newEnforcer(t)
	if err := e.Flag(client, server, ReasonUserspace, 0); err != nil {
		t.Fatal(err)
	}
	rst := tcpPacket(server, client, "")
	rst[14+20+13] = 0x14 // RST|ACK
	if got := run(t, e.objs.EnforceEgress, rst); got != tcxNext {
		t.Errorf("RST at egress: got %#x want pass", got)
	}
	if got := run(t, e.objs.EnforceIngress, rst); got != tcxNext {
		t.Errorf("RST at ingress: got %#x want pass", got)
	}
	data := tcpPacket(server, client, "HTTP/1.1 200 OK\r\n\r\n")
	if got := run(t, e.objs.EnforceEgress, data); got != tcxDrop {
		t.Errorf("data of flagged flow: got %#x want drop", got)
	}
}

// A new connection that reuses the client port of a cut one must connect:
// its SYN clears an old flag and passes. A SYN within the grace period
// (the agent may still be tearing the flow down), a SYN-ACK or data do not.
func TestSYNOfNewConnectionClearsOldFlag(t *testing.T) {
	e := newEnforcer(t)
	syn := tcpPacket(client, server, "")
	syn[14+20+13] = 0x02 // SYN
	synAck := tcpPacket(server, client, "")
	synAck[14+20+13] = 0x12 // SYN|ACK

	// Young flag (set now): everything still dropped, the flag stays.
	if err := e.Flag(client, server, ReasonUserspace, 0); err != nil {
		t.Fatal(err)
	}
	if got := run(t, e.objs.EnforceIngress, syn); got != tcxDrop {
		t.Errorf("SYN within grace: got %#x want drop", got)
	}
	if got := run(t, e.objs.EnforceEgress, synAck); got != tcxDrop {
		t.Errorf("SYN-ACK of flagged flow: got %#x want drop", got)
	}
	if !e.IsFlagged(client, server) {
		t.Fatal("young flag cleared")
	}

	// Age the flag past the grace period (ts 0 = at boot).
	k := flowKey(client, server)
	if err := e.objs.FlaggedFlows.Put(&k, &enforceEnforceFlag{TsNs: 0, Reason: uint32(ReasonUserspace)}); err != nil {
		t.Fatal(err)
	}
	if got := run(t, e.objs.EnforceIngress, tcpPacket(client, server, "GET / HTTP/1.1\r\n\r\n")); got != tcxDrop {
		t.Errorf("data on old flag: got %#x want drop", got)
	}
	if got := run(t, e.objs.EnforceEgress, synAck); got != tcxDrop {
		t.Errorf("SYN-ACK on old flag: got %#x want drop (only a SYN opens)", got)
	}
	// A SYN past the grace period clears it (here at egress: the host-side
	// veth of the server's namespace sends it on).
	if got := run(t, e.objs.EnforceEgress, syn); got != tcxNext {
		t.Errorf("SYN past grace: got %#x want pass", got)
	}
	if e.IsFlagged(client, server) {
		t.Error("flag not cleared by the SYN")
	}
	if got := run(t, e.objs.EnforceEgress, synAck); got != tcxNext {
		t.Errorf("SYN-ACK after clear: got %#x want pass", got)
	}
	c, err := e.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if c["flags_cleared_by_syn"] != 1 {
		t.Errorf("flags_cleared_by_syn = %d, want 1", c["flags_cleared_by_syn"])
	}
}

package guard

import (
	"encoding/binary"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf"
)

const (
	xdpDrop = 1
	xdpPass = 2
	tcxNext = 0xffffffff // -1 as returned by Run
	tcxDrop = 2
)

func newGuard(t *testing.T, cfg Config) *Guard {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to load eBPF programs")
	}
	g, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// packet builds Ethernet + IPv4/IPv6 + a minimal TCP header from src.
func packet(src netip.Addr) []byte {
	eth := make([]byte, 14)
	if src.Is4() {
		binary.BigEndian.PutUint16(eth[12:], 0x0800)
		ip := make([]byte, 20)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], 40)
		ip[8], ip[9] = 64, 6
		a := src.As4()
		copy(ip[12:], a[:])
		copy(ip[16:], []byte{10, 0, 0, 1})
		return append(append(eth, ip...), make([]byte, 20)...)
	}
	binary.BigEndian.PutUint16(eth[12:], 0x86DD)
	ip := make([]byte, 40)
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], 20)
	ip[6], ip[7] = 6, 64
	a := src.As16()
	copy(ip[8:], a[:])
	ip[39] = 1
	return append(append(eth, ip...), make([]byte, 20)...)
}

func run(t *testing.T, p *ebpf.Program, pkt []byte) uint32 {
	t.Helper()
	ret, err := p.Run(&ebpf.RunOptions{Data: pkt})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return ret
}

func TestBlocklistPrefixes(t *testing.T) {
	g := newGuard(t, Config{})
	mustBlock := func(p string, ttl time.Duration) {
		if err := g.Block(netip.MustParsePrefix(p), ttl, ReasonManual); err != nil {
			t.Fatal(err)
		}
	}
	mustBlock("192.0.2.0/24", 0)
	mustBlock("198.51.100.7/32", time.Hour)
	mustBlock("2001:db8:1::/48", 0)

	cases := []struct {
		src  string
		drop bool
	}{
		{"192.0.2.1", true},
		{"192.0.2.255", true},
		{"192.0.3.1", false},
		{"198.51.100.7", true},
		{"198.51.100.8", false},
		{"2001:db8:1:ffff::1", true},
		{"2001:db8:2::1", false},
	}
	for _, c := range cases {
		pkt := packet(netip.MustParseAddr(c.src))
		wantXDP, wantTC := uint32(xdpPass), uint32(tcxNext)
		if c.drop {
			wantXDP, wantTC = xdpDrop, tcxDrop
		}
		if got := run(t, g.objs.GuardXdp, pkt); got != wantXDP {
			t.Errorf("xdp %s: got %d want %d", c.src, got, wantXDP)
		}
		if got := run(t, g.objs.GuardTc, pkt); got != wantTC {
			t.Errorf("tcx %s: got %d want %d", c.src, got, wantTC)
		}
	}
	cnt, err := g.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if cnt["dropped_blocklist"] != 8 || cnt["passed"] != 6 {
		t.Errorf("counters %v: want 8 dropped_blocklist, 6 passed", cnt)
	}

	if err := g.Unblock(netip.MustParsePrefix("192.0.2.0/24")); err != nil {
		t.Fatal(err)
	}
	if got := run(t, g.objs.GuardXdp, packet(netip.MustParseAddr("192.0.2.1"))); got != xdpPass {
		t.Errorf("after unblock: got %d want pass", got)
	}
	entries, err := g.List()
	if err != nil || len(entries) != 2 {
		t.Fatalf("List = %v, %v; want 2 entries", entries, err)
	}
}

func TestExpiredEntryPassesAndIsCollected(t *testing.T) {
	g := newGuard(t, Config{})
	p := netip.MustParsePrefix("203.0.113.9/32")
	if err := g.Block(p, time.Millisecond, ReasonDetection); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	if got := run(t, g.objs.GuardXdp, packet(p.Addr())); got != xdpPass {
		t.Fatalf("expired entry: got %d want pass", got)
	}
	cnt, _ := g.Counters()
	if cnt["expired_match"] != 1 {
		t.Errorf("expired_match = %d, want 1", cnt["expired_match"])
	}
	n, err := g.Collect(time.Now())
	if err != nil || n != 1 {
		t.Fatalf("Collect = %d, %v; want 1", n, err)
	}
}

func TestNonIPAndMalformedPass(t *testing.T) {
	g := newGuard(t, Config{})
	if err := g.Block(netip.MustParsePrefix("0.0.0.0/0"), 0, ReasonManual); err != nil {
		t.Fatal(err)
	}
	arp := make([]byte, 60)
	binary.BigEndian.PutUint16(arp[12:], 0x0806)
	if got := run(t, g.objs.GuardXdp, arp); got != xdpPass {
		t.Errorf("arp: got %d want pass", got)
	}
	short := packet(netip.MustParseAddr("192.0.2.1"))[:20] // Ethernet + 6 bytes of IP
	if got := run(t, g.objs.GuardXdp, short); got != xdpPass {
		t.Errorf("truncated ip: got %d want pass", got)
	}
	cnt, _ := g.Counters()
	if cnt["not_ip"] != 1 || cnt["malformed"] != 1 {
		t.Errorf("counters %v", cnt)
	}
}

func TestRateLimitAtBurstBound(t *testing.T) {
	// 1 packet per second with a burst of 3: within one test the clock does
	// not advance enough to earn a token, so exactly burst+1 packets pass
	// (the first one opens the bucket) and the next is dropped.
	const burst = 3
	g := newGuard(t, Config{RatePPS: 1, Burst: burst})
	pkt := packet(netip.MustParseAddr("192.0.2.50"))
	for i := 0; i < burst+1; i++ {
		if got := run(t, g.objs.GuardXdp, pkt); got != xdpPass {
			t.Fatalf("packet %d: got %d want pass", i, got)
		}
	}
	if got := run(t, g.objs.GuardXdp, pkt); got != xdpDrop {
		t.Fatalf("packet %d: got %d want drop", burst+1, got)
	}
	// Another source has its own bucket.
	if got := run(t, g.objs.GuardXdp, packet(netip.MustParseAddr("192.0.2.51"))); got != xdpPass {
		t.Fatalf("other source: got %d want pass", got)
	}
	cnt, _ := g.Counters()
	if cnt["dropped_ratelimit"] != 1 {
		t.Errorf("dropped_ratelimit = %d, want 1", cnt["dropped_ratelimit"])
	}
}

func TestBlocklistFullAtBound(t *testing.T) {
	if testing.Short() {
		t.Skip("fills 65536 entries")
	}
	g := newGuard(t, Config{})
	for i := 0; i < MaxPrefixes; i++ {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if err := g.Block(netip.PrefixFrom(a, 32), 0, ReasonManual); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
	}
	err := g.Block(netip.MustParsePrefix("192.0.2.1/32"), 0, ReasonManual)
	if err == nil {
		t.Fatal("entry beyond MaxPrefixes accepted")
	}
	t.Logf("at bound: %v", err)
}

func BenchmarkGuardXDP(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	g, err := New(Config{RatePPS: 1_000_000, Burst: 1000}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	_ = g.Block(netip.MustParsePrefix("192.0.2.0/24"), 0, ReasonManual)
	for _, c := range []struct{ name, src string }{{"pass", "198.51.100.1"}, {"drop", "192.0.2.1"}} {
		b.Run(c.name, func(b *testing.B) {
			_, d, err := g.objs.GuardXdp.Benchmark(packet(netip.MustParseAddr(c.src)), b.N, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(d.Nanoseconds()), "ns/run")
		})
	}
}

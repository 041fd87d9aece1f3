// Package guard loads and drives apiwarden's source guard: an XDP (or tcx)
// program that drops packets from blocklisted prefixes, with an expiry per
// entry, and from sources over a per-source rate. The blocklist is the only
// thing that makes it drop, so an empty blocklist and no rate limit pass
// everything.
package guard

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"golang.org/x/sys/unix"

	"github.com/apiwarden/apiwarden/datapath/percpu"
)

// MaxPrefixes is the blocklist capacity per address family.
const MaxPrefixes = 65536

// ErrFull is returned when the blocklist holds MaxPrefixes entries already.
var ErrFull = errors.New("blocklist full")

// Reason says why a prefix is blocked.
type Reason uint32

const (
	ReasonManual    Reason = 1
	ReasonDetection Reason = 2
)

func (r Reason) String() string {
	switch r {
	case ReasonManual:
		return "manual"
	case ReasonDetection:
		return "detection"
	}
	return "unknown"
}

// Config sets the rate limit; zero RatePPS disables it.
type Config struct {
	// RatePPS is the packets per second each source may send; Burst is how
	// many packets above the rate it may send at once.
	RatePPS uint64
	Burst   uint64
}

// Entry is one blocklist entry.
type Entry struct {
	Prefix netip.Prefix
	// Expires is the wall-clock expiry; zero means until removed.
	Expires time.Time
	Reason  Reason
}

// Guard owns the guard programs, maps and links.
type Guard struct {
	log  *slog.Logger
	objs guardObjects

	mu    sync.Mutex
	links map[int]link.Link // by ifindex
	modes map[int]string
}

// New loads the guard programs into the kernel.
func New(cfg Config, log *slog.Logger) (*Guard, error) {
	spec, err := loadGuard()
	if err != nil {
		return nil, fmt.Errorf("load guard spec: %w", err)
	}
	if cfg.RatePPS > 0 {
		emission := uint64(time.Second) / cfg.RatePPS
		if emission == 0 {
			emission = 1
		}
		if err := spec.Variables["emission_ns"].Set(emission); err != nil {
			return nil, fmt.Errorf("set emission_ns: %w", err)
		}
		if err := spec.Variables["tolerance_ns"].Set(emission * cfg.Burst); err != nil {
			return nil, fmt.Errorf("set tolerance_ns: %w", err)
		}
	}
	g := &Guard{log: log.With("component", "guard"), links: map[int]link.Link{}, modes: map[int]string{}}
	if err := spec.LoadAndAssign(&g.objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("load guard: %+v", ve)
		}
		if errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("load guard: %w (need root or CAP_BPF+CAP_NET_ADMIN)", err)
		}
		return nil, fmt.Errorf("load guard: %w", err)
	}
	return g, nil
}

// AttachXDP attaches the XDP program to an interface, natively when the
// driver supports it and in generic mode otherwise. It returns the mode used.
func (g *Guard) AttachXDP(ifindex int) (string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.links[ifindex]; ok {
		return g.modes[ifindex], nil
	}
	l, err := link.AttachXDP(link.XDPOptions{Program: g.objs.GuardXdp, Interface: ifindex, Flags: link.XDPDriverMode})
	mode := "native"
	if err != nil {
		l, err = link.AttachXDP(link.XDPOptions{Program: g.objs.GuardXdp, Interface: ifindex, Flags: link.XDPGenericMode})
		mode = "generic"
	}
	if err != nil {
		return "", fmt.Errorf("attach xdp guard to ifindex %d: %w", ifindex, err)
	}
	g.links[ifindex], g.modes[ifindex] = l, "xdp-"+mode
	return "xdp-" + mode, nil
}

// AttachTC attaches the tcx ingress variant, for interfaces where XDP brings
// no speed (veth) or is unavailable.
func (g *Guard) AttachTC(ifindex int) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.links[ifindex]; ok {
		return nil
	}
	l, err := link.AttachTCX(link.TCXOptions{Program: g.objs.GuardTc, Interface: ifindex, Attach: ebpf.AttachTCXIngress, Anchor: link.Head()})
	if err != nil {
		return fmt.Errorf("attach tcx guard to ifindex %d: %w", ifindex, err)
	}
	g.links[ifindex], g.modes[ifindex] = l, "tcx"
	return nil
}

// Detach removes the guard from an interface.
func (g *Guard) Detach(ifindex int) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	l, ok := g.links[ifindex]
	if !ok {
		return nil
	}
	delete(g.links, ifindex)
	delete(g.modes, ifindex)
	return l.Close()
}

// Close detaches every program and releases the maps: nothing stays blocked.
func (g *Guard) Close() error {
	g.mu.Lock()
	var errs []error
	for i, l := range g.links {
		errs = append(errs, l.Close())
		delete(g.links, i)
	}
	g.mu.Unlock()
	errs = append(errs, g.objs.Close())
	return errors.Join(errs...)
}

// monotonicNow reads CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns.
func monotonicNow() time.Duration {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return time.Duration(ts.Nano())
}

// Block adds or replaces a prefix. ttl 0 blocks until Unblock.
func (g *Guard) Block(p netip.Prefix, ttl time.Duration, reason Reason) error {
	p = p.Masked()
	if !p.IsValid() {
		return errors.New("block: invalid prefix")
	}
	val := guardGuardBlock{Reason: uint32(reason)}
	if ttl > 0 {
		val.ExpiresNs = uint64(monotonicNow() + ttl)
	}
	m, key := g.keyFor(p)
	if err := m.Update(key, &val, ebpf.UpdateAny); err != nil {
		if errors.Is(err, unix.E2BIG) || errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.ENOMEM) {
			return fmt.Errorf("block %s: %w", p, ErrFull)
		}
		return fmt.Errorf("block %s: %w", p, err)
	}
	return nil
}

// Unblock removes a prefix; removing an absent prefix is not an error.
func (g *Guard) Unblock(p netip.Prefix) error {
	p = p.Masked()
	m, key := g.keyFor(p)
	if err := m.Delete(key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("unblock %s: %w", p, err)
	}
	return nil
}

func (g *Guard) keyFor(p netip.Prefix) (*ebpf.Map, any) {
	if p.Addr().Is4() {
		k := guardGuardV4Key{Prefixlen: uint32(p.Bits())}
		k.Addr = p.Addr().As4()
		return g.objs.GuardBlockV4, &k
	}
	k := guardGuardV6Key{Prefixlen: uint32(p.Bits())}
	k.Addr = p.Addr().As16()
	return g.objs.GuardBlockV6, &k
}

// List returns the blocklist, expired entries included until collected.
func (g *Guard) List() ([]Entry, error) {
	mono, wall := monotonicNow(), time.Now()
	toWall := func(exp uint64) time.Time {
		if exp == 0 {
			return time.Time{}
		}
		return wall.Add(time.Duration(exp) - mono)
	}
	var out []Entry
	var k4 guardGuardV4Key
	var v guardGuardBlock
	it := g.objs.GuardBlockV4.Iterate()
	for it.Next(&k4, &v) {
		out = append(out, Entry{Prefix: netip.PrefixFrom(netip.AddrFrom4(k4.Addr), int(k4.Prefixlen)), Expires: toWall(v.ExpiresNs), Reason: Reason(v.Reason)})
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("list v4 blocklist: %w", err)
	}
	var k6 guardGuardV6Key
	it = g.objs.GuardBlockV6.Iterate()
	for it.Next(&k6, &v) {
		out = append(out, Entry{Prefix: netip.PrefixFrom(netip.AddrFrom16(k6.Addr), int(k6.Prefixlen)), Expires: toWall(v.ExpiresNs), Reason: Reason(v.Reason)})
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("list v6 blocklist: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Prefix.String() < out[j].Prefix.String() })
	return out, nil
}

// Collect removes expired entries and returns how many it removed.
func (g *Guard) Collect(now time.Time) (int, error) {
	entries, err := g.List()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		if !e.Expires.IsZero() && !e.Expires.After(now) {
			if err := g.Unblock(e.Prefix); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

// counterNames maps enum guard_counter to metric names.
var counterNames = map[guardGuardCounter]string{
	guardGuardCounterGUARD_CNT_PASSED:         "passed",
	guardGuardCounterGUARD_CNT_DROP_BLOCKLIST: "dropped_blocklist",
	guardGuardCounterGUARD_CNT_DROP_RATELIMIT: "dropped_ratelimit",
	guardGuardCounterGUARD_CNT_EXPIRED_MATCH:  "expired_match",
	guardGuardCounterGUARD_CNT_NOT_IP:         "not_ip",
	guardGuardCounterGUARD_CNT_MALFORMED:      "malformed",
}

// Counters sums the per-CPU counters.
func (g *Guard) Counters() (map[string]uint64, error) {
	return percpu.Sum(g.objs.GuardCounters, counterNames)
}

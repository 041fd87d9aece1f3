// Package enforce loads and drives apiwarden's TC verdict programs: compiled
// request rules matched on the first segment of plaintext requests, and the
// flagged-flow map that makes TC drop every further packet of a connection in
// both directions. Together with the reset package it turns a verdict into a
// cut connection.
package enforce

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	dpcapture "github.com/apiwarden/apiwarden/datapath/capture"
	"github.com/apiwarden/apiwarden/datapath/percpu"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"
)

// Limits of the kernel rule set (ENFORCE_* in bpf/include/enforce_types.h).
const (
	MaxRules      = 32
	MaxPattern    = 32
	MaxMethod     = 8
	MaxFlagged    = 65536
	EvidenceBytes = 256
)

// ErrRuleSet is wrapped by SetRules for a rule set the kernel cannot hold.
var ErrRuleSet = errors.New("invalid kernel rule set")

// Kind is how a rule matches.
type Kind uint8

const (
	// KindPrefix matches an optional method and a path prefix, exactly.
	KindPrefix = Kind(enforceEnforceKindENFORCE_KIND_PREFIX)
	// KindLiteral matches a case-insensitive literal anywhere in the first
	// bytes of the request (request line and first headers).
	KindLiteral = Kind(enforceEnforceKindENFORCE_KIND_LITERAL)
)

// Action is what a match does.
type Action uint8

const (
	// ActionCount reports the match and lets the request pass (monitor).
	ActionCount = Action(enforceEnforceActionENFORCE_ACT_COUNT)
	// ActionDrop drops the request, flags the flow and reports (protect).
	ActionDrop = Action(enforceEnforceActionENFORCE_ACT_DROP)
)

// Rule is one compiled kernel rule.
type Rule struct {
	ID      uint32
	Port    uint16 // server port; 0 = any
	Kind    Kind
	Method  string // prefix rules only; "" = any
	Pattern string
	Action  Action
}

// Reason says who flagged a flow.
type Reason uint32

const (
	ReasonKernelRule = Reason(enforceEnforceReasonENFORCE_REASON_KERNEL_RULE)
	ReasonUserspace  = Reason(enforceEnforceReasonENFORCE_REASON_USERSPACE)
	ReasonTLSRule    = Reason(enforceEnforceReasonENFORCE_REASON_TLS_RULE)
)

// Event reports a kernel rule match.
type Event struct {
	Time     time.Time
	Client   netip.AddrPort
	Server   netip.AddrPort
	RuleID   uint32
	Ifindex  uint32
	Action   Action
	Evidence []byte // first bytes of the request
}

// Enforcer owns the programs, maps and links.
type Enforcer struct {
	log  *slog.Logger
	objs enforceObjects

	mu    sync.Mutex
	links map[int][2]link.Link
}

// New loads the enforcement programs. Nothing is dropped until rules are set
// or flows flagged, and nothing at all until Attach.
func New(log *slog.Logger) (*Enforcer, error) {
	spec, err := loadEnforce()
	if err != nil {
		return nil, fmt.Errorf("load enforce spec: %w", err)
	}
	e := &Enforcer{log: log.With("component", "enforce"), links: map[int][2]link.Link{}}
	if err := spec.LoadAndAssign(&e.objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("load enforce: %+v", ve)
		}
		return nil, fmt.Errorf("load enforce: %w", err)
	}
	return e, nil
}

// Attach puts the programs at the head of the interface's tcx chains, ahead
// of capture, so a dropped request is never handed to anything else.
func (e *Enforcer) Attach(ifindex int) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.links[ifindex]; ok {
		return nil
	}
	in, err := link.AttachTCX(link.TCXOptions{Program: e.objs.EnforceIngress, Interface: ifindex, Attach: ebpf.AttachTCXIngress, Anchor: link.Head()})
	if err != nil {
		return fmt.Errorf("attach enforce ingress to ifindex %d: %w", ifindex, err)
	}
	out, err := link.AttachTCX(link.TCXOptions{Program: e.objs.EnforceEgress, Interface: ifindex, Attach: ebpf.AttachTCXEgress, Anchor: link.Head()})
	if err != nil {
		in.Close()
		return fmt.Errorf("attach enforce egress to ifindex %d: %w", ifindex, err)
	}
	e.links[ifindex] = [2]link.Link{in, out}
	return nil
}

// Detach removes the programs from an interface.
func (e *Enforcer) Detach(ifindex int) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	l, ok := e.links[ifindex]
	if !ok {
		return nil
	}
	delete(e.links, ifindex)
	return errors.Join(l[0].Close(), l[1].Close())
}

// Close detaches everything and frees the maps: no verdict outlives the agent.
func (e *Enforcer) Close() error {
	e.mu.Lock()
	var errs []error
	for i, l := range e.links {
		errs = append(errs, l[0].Close(), l[1].Close())
		delete(e.links, i)
	}
	e.mu.Unlock()
	return errors.Join(append(errs, e.objs.Close())...)
}

// Validate checks a rule against the kernel's limits.
func (r Rule) Validate() error {
	switch {
	case r.Kind != KindPrefix && r.Kind != KindLiteral:
		return fmt.Errorf("rule %d: unknown kind %d", r.ID, r.Kind)
	case r.Action != ActionCount && r.Action != ActionDrop:
		return fmt.Errorf("rule %d: unknown action %d", r.ID, r.Action)
	case len(r.Pattern) == 0 || len(r.Pattern) > MaxPattern:
		return fmt.Errorf("rule %d: pattern must be 1..%d bytes, got %d", r.ID, MaxPattern, len(r.Pattern))
	case len(r.Method) > MaxMethod:
		return fmt.Errorf("rule %d: method longer than %d bytes", r.ID, MaxMethod)
	case r.Kind == KindLiteral && len(r.Pattern) < 2:
		return fmt.Errorf("rule %d: literal patterns need at least 2 bytes", r.ID)
	case r.Kind == KindLiteral && r.Method != "":
		return fmt.Errorf("rule %d: literal rules take no method", r.ID)
	}
	return nil
}

// SetRules replaces the kernel rule set. The rule count is cleared first and
// written last, so a packet never sees a half-written rule as active.
func (e *Enforcer) SetRules(rules []Rule) error {
	if len(rules) > MaxRules {
		return fmt.Errorf("%w: %d rules, at most %d", ErrRuleSet, len(rules), MaxRules)
	}
	var cfg enforceEnforceConfig
	for _, r := range rules {
		if err := r.Validate(); err != nil {
			return fmt.Errorf("%w: %v", ErrRuleSet, err)
		}
		if r.Kind == KindLiteral {
			pair := uint32(lowerASCII(r.Pattern[0]))<<8 | uint32(lowerASCII(r.Pattern[1]))
			cfg.FirstPairs[pair>>3] |= 1 << (pair & 7)
		}
	}
	zero := uint32(0)
	if err := e.objs.EnforceSettings.Put(zero, &enforceEnforceConfig{}); err != nil {
		return fmt.Errorf("clear rule count: %w", err)
	}
	for i, r := range rules {
		kr := enforceEnforceRule{Id: r.ID, Port: r.Port, Kind: uint8(r.Kind), Action: uint8(r.Action),
			MethodLen: uint8(len(r.Method)), PatternLen: uint8(len(r.Pattern))}
		pat := r.Pattern
		if r.Kind == KindLiteral {
			pat = strings.Map(func(c rune) rune { return rune(lowerASCII(byte(c))) }, pat)
		}
		copyInt8(kr.Method[:], r.Method)
		copyInt8(kr.Pattern[:], pat)
		if err := e.objs.EnforceRules.Put(uint32(i), &kr); err != nil {
			return fmt.Errorf("write rule %d: %w", r.ID, err)
		}
	}
	cfg.RuleCount = uint32(len(rules))
	if err := e.objs.EnforceSettings.Put(zero, &cfg); err != nil {
		return fmt.Errorf("write rule count: %w", err)
	}
	return nil
}

// MaxPortModes is how many server ports can override the rules' action.
const MaxPortModes = 256

// SetPortModes replaces the per-port overrides: a match whose server port is
// listed takes that action instead of the rule's. This is how one service
// stays in monitor mode under a global protect (and the reverse).
func (e *Enforcer) SetPortModes(modes map[uint16]Action) error {
	if len(modes) > MaxPortModes {
		return fmt.Errorf("%w: %d port modes, at most %d", ErrRuleSet, len(modes), MaxPortModes)
	}
	var port uint16
	var act uint8
	var stale []uint16
	it := e.objs.PortModes.Iterate()
	for it.Next(&port, &act) {
		if _, ok := modes[port]; !ok {
			stale = append(stale, port)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read port modes: %w", err)
	}
	for p, a := range modes {
		if a != ActionCount && a != ActionDrop {
			return fmt.Errorf("%w: port %d: unknown action %d", ErrRuleSet, p, a)
		}
		if err := e.objs.PortModes.Put(p, uint8(a)); err != nil {
			return fmt.Errorf("write port mode %d: %w", p, err)
		}
	}
	for _, p := range stale {
		if err := e.objs.PortModes.Delete(p); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete port mode %d: %w", p, err)
		}
	}
	return nil
}

func lowerASCII(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 32
	}
	return c
}

func copyInt8(dst []int8, s string) {
	for i := 0; i < len(s) && i < len(dst); i++ {
		dst[i] = int8(s[i])
	}
}

func flowKey(src, dst netip.AddrPort) enforceFlowKey {
	var k enforceFlowKey
	sa, da := src.Addr().Unmap(), dst.Addr().Unmap()
	if sa.Is4() {
		k.Family = unix.AF_INET
		a, b := sa.As4(), da.As4()
		copy(k.Saddr[:], a[:])
		copy(k.Daddr[:], b[:])
	} else {
		k.Family = unix.AF_INET6
		k.Saddr, k.Daddr = sa.As16(), da.As16()
	}
	k.Sport, k.Dport = src.Port(), dst.Port()
	return k
}

// Flag makes TC drop every further packet of the connection, both ways.
func (e *Enforcer) Flag(client, server netip.AddrPort, reason Reason, ruleID uint32) error {
	k := flowKey(client, server)
	v := enforceEnforceFlag{TsNs: uint64(monotonicNow()), RuleId: ruleID, Reason: uint32(reason)}
	if err := e.objs.FlaggedFlows.Put(&k, &v); err != nil {
		return fmt.Errorf("flag flow %s->%s: %w", client, server, err)
	}
	return nil
}

// Unflag forgets a flagged connection (e.g. once it is reset).
func (e *Enforcer) Unflag(client, server netip.AddrPort) error {
	k := flowKey(client, server)
	if err := e.objs.FlaggedFlows.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("unflag flow: %w", err)
	}
	return nil
}

// IsFlagged reports whether the connection (client->server orientation) is
// flagged.
func (e *Enforcer) IsFlagged(client, server netip.AddrPort) bool {
	k := flowKey(client, server)
	var v enforceEnforceFlag
	return e.objs.FlaggedFlows.Lookup(&k, &v) == nil
}

// FlaggedMap exposes the flagged-flow map so another object (the TLS probes)
// can share it through MapReplacements.
func (e *Enforcer) FlaggedMap() *ebpf.Map { return e.objs.FlaggedFlows }

// Maps returns the maps another object matching rules or flagging flows
// (the TLS probes) must share, by their names in bpf/include/enforce_maps.h,
// ready for ebpf.CollectionOptions.MapReplacements: one rule set, one
// flag map and one event stream for every place a verdict is reached.
func (e *Enforcer) Maps() map[string]*ebpf.Map {
	return map[string]*ebpf.Map{
		"enforce_rules":    e.objs.EnforceRules,
		"enforce_settings": e.objs.EnforceSettings,
		"port_modes":       e.objs.PortModes,
		"flagged_flows":    e.objs.FlaggedFlows,
		"enforce_events":   e.objs.EnforceEvents,
		"enforce_counters": e.objs.EnforceCounters,
		// The TLS read probes note what a protect-mode server read
		// (bpf/include/hold.h).
		"hold_settings":   e.objs.HoldSettings,
		"hold_ports":      e.objs.HoldPorts,
		"hold_tls_read":   e.objs.HoldTlsRead,
		"hold_tls_judged": e.objs.HoldTlsJudged,
	}
}

func monotonicNow() time.Duration {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return time.Duration(ts.Nano())
}

// Run reads rule-match events until ctx ends.
func (e *Enforcer) Run(ctx context.Context, fn func(Event)) error {
	rd, err := ringbuf.NewReader(e.objs.EnforceEvents)
	if err != nil {
		return fmt.Errorf("open enforce events: %w", err)
	}
	go func() { <-ctx.Done(); rd.Close() }()
	clk, err := dpcapture.NewClock()
	if err != nil {
		rd.Close()
		return err
	}
	for {
		rec, err := rd.Read()
		if err != nil {
			if errors.Is(err, ringbuf.ErrClosed) {
				return nil
			}
			return fmt.Errorf("read enforce events: %w", err)
		}
		ev, err := decodeEvent(rec.RawSample, clk)
		if err != nil {
			e.log.Warn("bad enforce event", "err", err)
			continue
		}
		fn(ev)
	}
}

// decodeEvent turns a raw enforce_event record into an Event.
func decodeEvent(b []byte, clk dpcapture.Clock) (Event, error) {
	var raw enforceEnforceEvent
	if len(b) < binary.Size(raw) {
		return Event{}, fmt.Errorf("enforce event: %d bytes, want %d", len(b), binary.Size(raw))
	}
	if _, err := binary.Decode(b, binary.LittleEndian, &raw); err != nil {
		return Event{}, fmt.Errorf("enforce event: %w", err)
	}
	src, dst := addrsOf(raw.Key)
	n := min(int(raw.Len), len(raw.Data))
	return Event{
		Time:     clk.Wall(raw.TsNs),
		Client:   src,
		Server:   dst,
		RuleID:   raw.RuleId,
		Ifindex:  raw.Ifindex,
		Action:   Action(raw.Action),
		Evidence: append([]byte(nil), raw.Data[:n]...),
	}, nil
}

// addrsOf turns a flow key into addresses. IPv4-mapped IPv6 addresses (a
// dual-stack socket's view, as the TLS probes read it) are unmapped, so a
// client has one spelling in every event.
func addrsOf(k enforceFlowKey) (src, dst netip.AddrPort) {
	if k.Family == unix.AF_INET6 {
		s, d := netip.AddrFrom16(k.Saddr), netip.AddrFrom16(k.Daddr)
		if s.Is4In6() && d.Is4In6() {
			return netip.AddrPortFrom(s.Unmap(), k.Sport), netip.AddrPortFrom(d.Unmap(), k.Dport)
		}
	}
	if k.Family == unix.AF_INET {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(k.Saddr[:4])), k.Sport),
			netip.AddrPortFrom(netip.AddrFrom4([4]byte(k.Daddr[:4])), k.Dport)
	}
	return netip.AddrPortFrom(netip.AddrFrom16(k.Saddr), k.Sport),
		netip.AddrPortFrom(netip.AddrFrom16(k.Daddr), k.Dport)
}

var counterNames = map[enforceEnforceCounter]string{
	enforceEnforceCounterENF_CNT_REQUESTS_INSPECTED:   "requests_inspected",
	enforceEnforceCounterENF_CNT_MATCH_DROPPED:        "requests_dropped",
	enforceEnforceCounterENF_CNT_MATCH_COUNTED:        "requests_matched_monitor",
	enforceEnforceCounterENF_CNT_FLAGGED_DROP_INGRESS: "flagged_packets_dropped_ingress",
	enforceEnforceCounterENF_CNT_FLAGGED_DROP_EGRESS:  "flagged_packets_dropped_egress",
	enforceEnforceCounterENF_CNT_EVENTS_LOST:          "events_lost",
	enforceEnforceCounterENF_CNT_HOLD_MARKED:          "hold_marked",
	enforceEnforceCounterENF_CNT_HOLD_TLS_MARKED:      "hold_tls_marked",
	enforceEnforceCounterENF_CNT_FLAG_CLEARED_SYN:     "flags_cleared_by_syn",
}

// Counters sums the per-CPU counters.
func (e *Enforcer) Counters() (map[string]uint64, error) {
	return percpu.Sum(e.objs.EnforceCounters, counterNames)
}

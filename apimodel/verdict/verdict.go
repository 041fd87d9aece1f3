// Package verdict decides what protect mode does with the detector's
// findings: pass, cut the connection, or also block its source. The agent
// only carries the decision out; keeping it here makes the rules testable
// without root and states them once.
package verdict

import (
	"net/netip"
	"sync"
	"time"

	"github.com/apiwarden/apiwarden/apimodel/detect"
)

// Policy says which findings are "cut-grade": severe and confident enough
// to reset a connection. Everything else is recorded only: a WAF that
// resets on every medium hint breaks real APIs.
type Policy struct {
	Severity   detect.Severity
	Confidence int
}

// DefaultPolicy cuts high-severity findings of confidence >= 85, the
// confidence the accuracy benchmark (bench/detect) calls "block".
var DefaultPolicy = Policy{Severity: detect.SeverityHigh, Confidence: 85}

// CutGrade returns the first finding that meets the policy (findings come
// most confident first, but a cut-grade finding may follow a more
// confident low-severity one).
func (p Policy) CutGrade(fs []detect.Finding) (detect.Finding, bool) {
	for _, f := range fs {
		if f.Severity >= p.Severity && f.Confidence >= p.Confidence {
			return f, true
		}
	}
	return detect.Finding{}, false
}

// Action is what happens to a request.
type Action uint8

const (
	// Pass: no finding, or none worth a cut (recorded if any).
	Pass Action = iota
	// Monitor: a cut-grade finding on a service in monitor mode: recorded
	// as what protect mode would have done.
	Monitor
	// Cut: drop the request and reset both ends.
	Cut
)

func (a Action) String() string {
	switch a {
	case Monitor:
		return "monitor"
	case Cut:
		return "blocked"
	}
	return "pass"
}

// Decide returns the action for a request's findings under protect or not.
// grade reports whether the findings were cut-grade (what auto-blocking
// counts, in either mode).
func (p Policy) Decide(fs []detect.Finding, protect bool) (a Action, grade bool) {
	if _, ok := p.CutGrade(fs); !ok {
		return Pass, false
	}
	if protect {
		return Cut, true
	}
	return Monitor, true
}

// AutoBlockConfig: a client identity that produces Threshold cut-grade
// findings within Window is blocked for TTL. Threshold 0 disables it.
type AutoBlockConfig struct {
	Threshold int
	Window    time.Duration
	TTL       time.Duration
}

// MaxTracked bounds the identities the auto-blocker remembers; beyond it
// the oldest-noted half is forgotten, so a flood of distinct sources cannot
// grow memory (forgetting only delays a block).
const MaxTracked = 65536

// AutoBlocker counts cut-grade findings per client identity. Only what
// would be cut counts: a benign client that now and then matches a
// low-confidence rule is never blocked, however long it runs.
type AutoBlocker struct {
	cfg AutoBlockConfig

	mu      sync.Mutex
	windows map[netip.Addr][]time.Time
	evicted uint64
}

// NewAutoBlocker returns an auto-blocker with cfg.
func NewAutoBlocker(cfg AutoBlockConfig) *AutoBlocker {
	return &AutoBlocker{cfg: cfg, windows: map[netip.Addr][]time.Time{}}
}

// Note records one cut-grade finding of identity at now and reports whether
// it reached the threshold (the count restarts after a trip).
func (b *AutoBlocker) Note(identity netip.Addr, now time.Time) bool {
	if b == nil || b.cfg.Threshold <= 0 {
		return false
	}
	identity = identity.Unmap()
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.windows[identity]; !ok && len(b.windows) >= MaxTracked {
		b.evictOldest()
	}
	w := b.windows[identity]
	keep := w[:0]
	for _, ts := range w {
		if now.Sub(ts) < b.cfg.Window {
			keep = append(keep, ts)
		}
	}
	keep = append(keep, now)
	if len(keep) >= b.cfg.Threshold {
		delete(b.windows, identity)
		return true
	}
	b.windows[identity] = keep
	return false
}

// evictOldest forgets the half of the identities noted longest ago.
func (b *AutoBlocker) evictOldest() {
	var cut time.Time
	var all []time.Time
	for _, w := range b.windows {
		all = append(all, w[len(w)-1])
	}
	if len(all) == 0 {
		return
	}
	// median of the last-noted times, without sorting the whole slice
	cut = quickSelect(all, len(all)/2)
	for id, w := range b.windows {
		if !w[len(w)-1].After(cut) {
			delete(b.windows, id)
			b.evicted++
		}
	}
}

// Tracked returns how many identities are counted and how many were
// forgotten at the bound.
func (b *AutoBlocker) Tracked() (tracked int, evicted uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.windows), b.evicted
}

func quickSelect(a []time.Time, k int) time.Time {
	lo, hi := 0, len(a)-1
	for lo < hi {
		p := a[(lo+hi)/2]
		i, j := lo, hi
		for i <= j {
			for a[i].Before(p) {
				i++
			}
			for a[j].After(p) {
				j--
			}
			if i <= j {
				a[i], a[j] = a[j], a[i]
				i++
				j--
			}
		}
		if k <= j {
			hi = j
		} else if k >= i {
			lo = i
		} else {
			return a[k]
		}
	}
	return a[k]
}

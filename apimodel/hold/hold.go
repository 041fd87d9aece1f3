// Package hold decides when a packet that protect mode holds in the kernel's
// verdict queue may go on: once the call pipeline has judged every byte of
// its flow up to the packet's end (allow), or at once when the flow was cut
// (drop). It is the meeting point of two goroutines that never wait for
// each other: the queue reader hands in held packets (Hold), the pipeline
// reports after each chunk how far a flow is judged (Judged) and which
// flows it cut (Block). Every hold is bounded in time and number, and
// everything that is not a clear "cut" fails open by default.
//
// TLS flows are held the other way round: the request is decrypted only
// once the server has read it, so the server's response packets wait
// (HoldResponse) until the pipeline has judged the decrypted stream up to
// the offset the server had read (JudgedTLS).
//
// The package knows nothing of NFQUEUE: verdicts go through the Verdicter
// interface, so it is tested without root.
package hold

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/apiwarden/apiwarden/apimodel/capture"
)

// Verdicter carries a verdict to the kernel.
type Verdicter interface {
	Accept(id uint32) error
	Drop(id uint32) error
}

// Config bounds the holding.
type Config struct {
	// Timeout is the longest a packet waits for its verdict.
	Timeout time.Duration
	// FailClosed drops a packet whose verdict did not come in time;
	// the default (false) lets it pass.
	FailClosed bool
	// MaxQueued bounds the packets waiting at once; beyond it packets pass
	// unjudged (counted as queue_full).
	MaxQueued int
	// MaxFlows bounds the flows tracked; at the bound flows without
	// waiting packets are forgotten.
	MaxFlows int
	// TLSRead returns, for a held TLS flow (client -> server), the
	// decrypted-stream offset past what the server has read (the kernel's
	// hold_tls_read); a response packet waits until the flow is judged up
	// to it. nil: responses are never held.
	TLSRead func(key capture.FlowKey) (end uint32, ok bool)
	// Observe, if set, receives stage timings: "wait" (queue read to
	// verdict decided) and "verdict_write" (verdict sent to the kernel).
	Observe func(stage string, d time.Duration)
}

// Defaults of Config's zero fields.
const (
	DefaultTimeout   = 5 * time.Millisecond
	DefaultMaxQueued = 4096
	DefaultMaxFlows  = 65536
	// maxPendingRanges bounds the out-of-order judged ranges kept per flow
	// (beyond it the oldest is forgotten; a packet then waits for its
	// timeout, which fails open).
	maxPendingRanges = 8
)

// Packet is one held packet: the client->server bytes [Seq, End) of Key.
type Packet struct {
	ID       uint32
	Key      capture.FlowKey
	Seq, End uint32
	Received time.Time
}

// Stats counts every outcome.
type Stats struct {
	Held          uint64 // packets handed in
	Allowed       uint64 // passed after their bytes were judged
	Blocked       uint64 // dropped: their flow was cut
	TimedOut      uint64 // verdict late: passed (or dropped, fail-closed)
	QueueFull     uint64 // passed unjudged: too many waiting or flows
	Truncated     uint64 // passed: the capture did not copy all of them
	Unparsed      uint64 // passed: not a TCP segment we understand
	VerdictErrors uint64 // the kernel refused a verdict
	Waiting       uint64 // waiting now

	// TLS responses (counted in the totals above too).
	TLSHeld     uint64 // response packets handed in
	TLSAllowed  uint64 // passed after the request bytes were judged
	TLSBlocked  uint64 // dropped: the flow was cut
	TLSTimedOut uint64 // verdict late
	TLSUnknown  uint64 // passed: no read offset for the flow (evicted, closed)
}

type rng struct{ start, end uint32 }

type waiter struct {
	p     Packet
	timer *time.Timer
	done  bool   // decided (under Holder.mu)
	resp  bool   // a TLS response packet
	need  uint32 // resp: decrypted offset the flow must be judged to
}

type flow struct {
	judged  uint32 // every byte before it has been through the pipeline
	have    bool   // judged is known
	blocked bool
	trunc   rng // last range the capture truncated
	pending []rng
	waiters []*waiter

	// TLS: the decrypted request stream judged up to tlsJudged, and the
	// server's response packets waiting for it.
	tlsJudged uint32
	tlsHave   bool
	resp      []*waiter
}

func (f *flow) idle() bool { return len(f.waiters) == 0 && len(f.resp) == 0 && !f.blocked }

// Holder matches held packets with the pipeline's progress.
type Holder struct {
	cfg Config
	v   Verdicter

	ports atomic.Pointer[map[uint16]bool]

	mu     sync.Mutex
	flows  map[capture.FlowKey]*flow
	queued int

	held, allowed, blocked, timedOut, queueFull, truncated, unparsed, verdictErrors atomic.Uint64
	tlsHeld, tlsAllowed, tlsBlocked, tlsTimedOut, tlsUnknown                        atomic.Uint64
}

// New returns a holder sending verdicts through v.
func New(cfg Config, v Verdicter) *Holder {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxQueued <= 0 {
		cfg.MaxQueued = DefaultMaxQueued
	}
	if cfg.MaxFlows <= 0 {
		cfg.MaxFlows = DefaultMaxFlows
	}
	h := &Holder{cfg: cfg, v: v, flows: map[capture.FlowKey]*flow{}}
	h.SetPorts(nil)
	return h
}

// SetPorts names the server ports whose requests are held: the pipeline's
// progress is tracked for flows to them only.
func (h *Holder) SetPorts(ports []uint16) {
	m := make(map[uint16]bool, len(ports))
	for _, p := range ports {
		m[p] = true
	}
	h.ports.Store(&m)
}

// Wants reports whether key (sender -> receiver) is a held direction.
func (h *Holder) Wants(key capture.FlowKey) bool {
	return (*h.ports.Load())[key.Dst.Port()]
}

// seqBefore reports a < b in TCP sequence space (RFC 1982 style).
func seqBefore(a, b uint32) bool { return int32(a-b) < 0 }

func (r rng) overlaps(s, e uint32) bool {
	return r.start != r.end && seqBefore(s, r.end) && seqBefore(r.start, e)
}

// Unparsed accepts a queued packet the caller could not parse.
func (h *Holder) Unparsed(id uint32) {
	h.held.Add(1)
	h.unparsed.Add(1)
	h.send(id, true, time.Time{})
}

// Hold takes one queued packet. It never blocks: the packet is decided now
// or when its flow is judged, cut or its timeout fires. A packet from a
// held port (a server's response) is a TLS response (HoldResponse).
// It reports whether the packet waits (its verdict was not decided now).
func (h *Holder) Hold(p Packet) (waiting bool) {
	if h.cfg.TLSRead != nil && !h.Wants(p.Key) && h.Wants(p.Key.Reverse()) {
		return h.HoldResponse(p)
	}
	h.held.Add(1)
	h.mu.Lock()
	f := h.flows[p.Key]
	if f != nil && f.blocked && f.have && !inCutWindow(f.judged, p.Seq) {
		// The client reused the 4-tuple of a cut connection (a reset
		// socket leaves no TIME_WAIT) and its SYN has not been through
		// the pipeline yet: its packets wait like a new flow's, and Open
		// starts the flow over when the SYN arrives.
		f.reset()
	}
	switch {
	case f != nil && f.blocked:
		h.mu.Unlock()
		h.blocked.Add(1)
		h.send(p.ID, false, p.Received)
		return false
	case f != nil && f.have && !seqBefore(f.judged, p.End):
		tr := f.trunc.overlaps(p.Seq, p.End)
		h.mu.Unlock()
		h.pass(p, tr)
		return false
	case h.queued >= h.cfg.MaxQueued:
		h.mu.Unlock()
		h.queueFull.Add(1)
		h.send(p.ID, true, p.Received)
		return false
	}
	if f == nil {
		if f = h.newFlow(p.Key); f == nil {
			h.mu.Unlock()
			h.queueFull.Add(1)
			h.send(p.ID, true, p.Received)
			return false
		}
	}
	w := &waiter{p: p}
	f.waiters = append(f.waiters, w)
	h.queued++
	w.timer = time.AfterFunc(h.cfg.Timeout, func() { h.expire(p.Key, w) })
	h.mu.Unlock()
	return true
}

func (h *Holder) pass(p Packet, truncated bool) {
	if truncated {
		h.truncated.Add(1)
	} else {
		h.allowed.Add(1)
	}
	h.send(p.ID, true, p.Received)
}

// newFlow adds a flow (h.mu held), making room at the bound by forgetting
// flows nobody waits on. nil: no room.
// flowLocked returns key's flow, made if absent; nil when the table is
// full of flows that cannot be evicted. h.mu must be held.
func (h *Holder) flowLocked(key capture.FlowKey) *flow {
	if f := h.flows[key]; f != nil {
		return f
	}
	return h.newFlow(key)
}

func (h *Holder) newFlow(k capture.FlowKey) *flow {
	if len(h.flows) >= h.cfg.MaxFlows {
		for key, f := range h.flows {
			if f.idle() {
				delete(h.flows, key)
			}
			if len(h.flows) < h.cfg.MaxFlows/2 {
				break
			}
		}
		if len(h.flows) >= h.cfg.MaxFlows {
			return nil
		}
	}
	f := &flow{}
	h.flows[k] = f
	return f
}

// Judged reports that the pipeline has processed the bytes [seq, end) of
// key (a chunk; end counts SYN and FIN like TCP) and acted on every request
// they completed. truncated: the capture copied only part of them.
func (h *Holder) Judged(key capture.FlowKey, seq, end uint32, truncated bool) {
	if !h.Wants(key) {
		return
	}
	h.mu.Lock()
	f := h.flowLocked(key)
	if f == nil {
		h.mu.Unlock()
		return
	}
	if truncated {
		f.trunc = rng{seq, end}
	}
	switch {
	case !f.have:
		f.judged, f.have = end, true
	case !seqBefore(f.judged, seq): // contiguous (or a retransmission)
		if seqBefore(f.judged, end) {
			f.judged = end
		}
	default: // ahead of a hole: remember it until the hole is filled
		if len(f.pending) >= maxPendingRanges {
			f.pending = f.pending[1:]
		}
		f.pending = append(f.pending, rng{seq, end})
	}
	for merged := true; merged && len(f.pending) > 0; {
		merged = false
		for i, r := range f.pending {
			if !seqBefore(f.judged, r.start) {
				if seqBefore(f.judged, r.end) {
					f.judged = r.end
				}
				f.pending = append(f.pending[:i], f.pending[i+1:]...)
				merged = true
				break
			}
		}
	}
	var ready []*waiter
	keep := f.waiters[:0]
	for _, w := range f.waiters {
		if !seqBefore(f.judged, w.p.End) {
			w.done = true
			ready = append(ready, w)
		} else {
			keep = append(keep, w)
		}
	}
	f.waiters = keep
	h.queued -= len(ready)
	tr := f.trunc
	h.mu.Unlock()
	for _, w := range ready {
		w.timer.Stop()
		h.pass(w.p, tr.overlaps(w.p.Seq, w.p.End))
	}
}

// Block cuts a flow (key: client -> server): what of it waits is dropped,
// and so is what comes later.
func (h *Holder) Block(key capture.FlowKey) {
	h.mu.Lock()
	f := h.flowLocked(key)
	if f == nil {
		h.mu.Unlock()
		return
	}
	f.blocked = true
	ws := append(f.waiters, f.resp...)
	f.waiters, f.resp = nil, nil
	for _, w := range ws {
		w.done = true
	}
	h.queued -= len(ws)
	h.mu.Unlock()
	for _, w := range ws {
		w.timer.Stop()
		h.blocked.Add(1)
		if w.resp {
			h.tlsBlocked.Add(1)
		}
		h.send(w.p.ID, false, w.p.Received)
	}
}

// cutWindow bounds, on each side of the judged position of a cut flow,
// the sequence numbers its own packets (retransmissions, data the client
// sent past the request that was cut) can carry: a send buffer's worth.
// A packet outside it belongs to a new connection on the same 4-tuple
// (the chance that a random initial sequence number lands inside is
// 2^26/2^32, 1.6 %; such a packet is dropped and retransmitted once Open
// has run, a delay of one retransmission timeout).
const cutWindow = 1 << 25

func inCutWindow(judged, seq uint32) bool {
	d := int32(seq - judged)
	return d > -cutWindow && d < cutWindow
}

// reset starts a flow over (a new connection on its 4-tuple); the packets
// waiting on it stay and are decided by what is judged from now on.
func (f *flow) reset() {
	*f = flow{waiters: f.waiters, resp: f.resp}
}

// Open reports a client's SYN (key: client -> server), judged next: a new
// connection on the 4-tuple, whose state, and that of the cut or
// unfinished connection that used it before, starts over.
func (h *Holder) Open(key capture.FlowKey) {
	if !h.Wants(key) {
		return
	}
	h.mu.Lock()
	if f := h.flows[key]; f != nil {
		tlsJudged, tlsHave := f.tlsJudged, f.tlsHave && !f.blocked
		f.reset()
		// The decrypted stream comes through another ring and may have
		// been judged before this SYN: an uncut flow keeps that offset
		// (a stale one from a connection whose socket close was not
		// seen only lets its responses wait out the timeout).
		f.tlsJudged, f.tlsHave = tlsJudged, tlsHave
	}
	h.mu.Unlock()
}

// Forget drops a flow that ended (FIN/RST seen and judged). A flow that
// still has waiting packets or was cut is kept: the waiters decide, and
// retransmissions of a cut flow stay dropped.
// A TLS flow is kept until ForgetTLS: its server may still answer after
// the client's FIN.
func (h *Holder) Forget(key capture.FlowKey) {
	h.mu.Lock()
	if f := h.flows[key]; f != nil && f.idle() && !f.tlsHave {
		delete(h.flows, key)
	}
	h.mu.Unlock()
}

// ForgetTLS drops a TLS flow (client -> server) whose socket closed, unless
// packets still wait on it or it was cut.
func (h *Holder) ForgetTLS(key capture.FlowKey) {
	h.mu.Lock()
	if f := h.flows[key]; f != nil && f.idle() {
		delete(h.flows, key)
	}
	h.mu.Unlock()
}

// HoldResponse takes a queued server -> client packet of a TLS flow: it
// waits until the decrypted request stream is judged up to what the server
// had read (Config.TLSRead) when it was queued, or is dropped when the flow
// is cut. A packet the kernel marked before the flow was judged may reach
// here after it: it then passes at once. It reports whether the packet
// waits.
func (h *Holder) HoldResponse(p Packet) (waiting bool) {
	h.held.Add(1)
	h.tlsHeld.Add(1)
	ck := p.Key.Reverse()
	var need uint32
	ok := false
	if h.cfg.TLSRead != nil {
		need, ok = h.cfg.TLSRead(ck)
	}
	h.mu.Lock()
	f := h.flows[ck]
	switch {
	case f != nil && f.blocked:
		h.mu.Unlock()
		h.blocked.Add(1)
		h.tlsBlocked.Add(1)
		h.send(p.ID, false, p.Received)
		return false
	case !ok:
		h.mu.Unlock()
		h.tlsUnknown.Add(1)
		h.send(p.ID, true, p.Received)
		return false
	case f != nil && f.tlsHave && !seqBefore(f.tlsJudged, need):
		h.mu.Unlock()
		h.allowed.Add(1)
		h.tlsAllowed.Add(1)
		h.send(p.ID, true, p.Received)
		return false
	case h.queued >= h.cfg.MaxQueued:
		h.mu.Unlock()
		h.queueFull.Add(1)
		h.send(p.ID, true, p.Received)
		return false
	}
	if f == nil {
		if f = h.newFlow(ck); f == nil {
			h.mu.Unlock()
			h.queueFull.Add(1)
			h.send(p.ID, true, p.Received)
			return false
		}
	}
	w := &waiter{p: p, resp: true, need: need}
	f.resp = append(f.resp, w)
	h.queued++
	w.timer = time.AfterFunc(h.cfg.Timeout, func() { h.expire(ck, w) })
	h.mu.Unlock()
	return true
}

// JudgedTLS reports that the pipeline has run the detector on the
// decrypted request stream of key (client -> server) up to offset end and
// acted on every request it completed: response packets waiting for no
// more than that go on. It reports false for a flow that was cut (its
// responses stay dropped) or cannot be tracked.
func (h *Holder) JudgedTLS(key capture.FlowKey, end uint32) bool {
	if !h.Wants(key) {
		return false
	}
	h.mu.Lock()
	f := h.flowLocked(key)
	if f == nil || f.blocked {
		h.mu.Unlock()
		return false
	}
	if !f.tlsHave || seqBefore(f.tlsJudged, end) {
		f.tlsJudged, f.tlsHave = end, true
	}
	var ready []*waiter
	keep := f.resp[:0]
	for _, w := range f.resp {
		if !seqBefore(f.tlsJudged, w.need) {
			w.done = true
			ready = append(ready, w)
		} else {
			keep = append(keep, w)
		}
	}
	f.resp = keep
	h.queued -= len(ready)
	h.mu.Unlock()
	for _, w := range ready {
		w.timer.Stop()
		h.allowed.Add(1)
		h.tlsAllowed.Add(1)
		h.send(w.p.ID, true, w.p.Received)
	}
	return true
}

func (h *Holder) expire(key capture.FlowKey, w *waiter) {
	h.mu.Lock()
	if w.done {
		h.mu.Unlock()
		return
	}
	w.done = true
	if f := h.flows[key]; f != nil {
		f.waiters = removeWaiter(f.waiters, w)
		f.resp = removeWaiter(f.resp, w)
	}
	h.queued--
	h.mu.Unlock()
	h.timedOut.Add(1)
	if w.resp {
		h.tlsTimedOut.Add(1)
	}
	h.send(w.p.ID, !h.cfg.FailClosed, w.p.Received)
}

func removeWaiter(ws []*waiter, w *waiter) []*waiter {
	for i, x := range ws {
		if x == w {
			return append(ws[:i], ws[i+1:]...)
		}
	}
	return ws
}

func (h *Holder) send(id uint32, accept bool, received time.Time) {
	start := time.Now()
	var err error
	if accept {
		err = h.v.Accept(id)
	} else {
		err = h.v.Drop(id)
	}
	if err != nil {
		h.verdictErrors.Add(1)
	}
	if h.cfg.Observe != nil {
		if !received.IsZero() {
			h.cfg.Observe("wait", start.Sub(received))
		}
		h.cfg.Observe("verdict_write", time.Since(start))
	}
}

// Stats returns the counters.
func (h *Holder) Stats() Stats {
	h.mu.Lock()
	q := h.queued
	h.mu.Unlock()
	return Stats{
		Held: h.held.Load(), Allowed: h.allowed.Load(), Blocked: h.blocked.Load(),
		TimedOut: h.timedOut.Load(), QueueFull: h.queueFull.Load(), Truncated: h.truncated.Load(),
		Unparsed: h.unparsed.Load(), VerdictErrors: h.verdictErrors.Load(), Waiting: uint64(q),
		TLSHeld: h.tlsHeld.Load(), TLSAllowed: h.tlsAllowed.Load(), TLSBlocked: h.tlsBlocked.Load(),
		TLSTimedOut: h.tlsTimedOut.Load(), TLSUnknown: h.tlsUnknown.Load(),
	}
}

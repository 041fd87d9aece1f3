package agent

import (
	"runtime/debug"
	"sync"
	"sync/atomic"

	"github.com/apiwarden/apiwarden/apimodel/call"
)

// learnQueueLen bounds the calls waiting for the learner. At ~10 µs per
// call it is ~40 ms of work: enough to absorb a burst, small enough that
// the inventory never lags far behind the wire.
const learnQueueLen = 4096

// learner runs, when protect mode's hold point is active, the part of the
// call pipeline that only learns — inventory,
// behavioural model, per-call metrics — on a goroutine of its own, off the
// capture goroutine. The capture goroutine is what protect mode's hold point
// waits on (a held segment is released once the parser and the detector
// have judged its bytes), so every microsecond of learning done there
// delayed the next held request behind it (issue #7 item 4, issue #8 item
// 3: "inventory updates batched off the capture goroutine"). Calls are
// records of their own (the parser never reuses them), so handing one over
// needs no copy. Without a hold point the agent learns inline: the hand-off
// costs a goroutine wakeup per call and nothing waits on capture. Nothing
// is dropped: when the queue is full the call is
// learned on the caller's goroutine (counted), which slows capture down as
// it did before rather than losing a call.
type learner struct {
	q      chan learnItem
	done   sync.WaitGroup
	inline atomic.Uint64 // calls learned on the capture goroutine: queue full
	queued atomic.Uint64
	stop   sync.Once
	closed atomic.Bool
}

type learnItem struct {
	c       *call.Call
	service string
}

// startLearner starts the learner goroutine; stopLearner drains it.
func (a *Agent) startLearner() {
	l := &learner{q: make(chan learnItem, learnQueueLen)}
	l.done.Add(1)
	go func() {
		defer l.done.Done()
		for it := range l.q {
			a.learnSafe(it.c, it.service)
		}
	}()
	a.learn = l
}

// stopLearner waits until every queued call is learned. Call it after the
// last onCall (the assembler flushed, its goroutines stopped).
func (a *Agent) stopLearner() {
	l := a.learn
	if l == nil {
		return
	}
	l.stop.Do(func() {
		l.closed.Store(true)
		close(l.q)
		l.done.Wait()
	})
}

// learnCall hands c to the learner, or learns it now when there is none
// (tests, benchmarks) or its queue is full.
func (a *Agent) learnCall(c *call.Call, service string) {
	if l := a.learn; l != nil && !l.closed.Load() {
		select {
		case l.q <- learnItem{c, service}:
			l.queued.Add(1)
			return
		default:
			l.inline.Add(1)
		}
	}
	a.learnSafe(c, service)
}

// learnSafe learns one call; a panic in the model is logged and counted
// like one in the parser, and loses only this call.
func (a *Agent) learnSafe(c *call.Call, service string) {
	defer func() {
		if r := recover(); r != nil {
			a.panics.Add(1)
			a.log.Error("recovered from a panic while learning a call; call dropped", "panic", r,
				"stack", string(debug.Stack()))
		}
	}()
	template, slot := a.inv.ObserveSlot(c)
	a.observeBehavior(c, service, template)
	status, latency := 0, -1.0
	if c.Response != nil {
		status = c.Response.StatusCode
		latency = c.Latency.Seconds()
	}
	a.metrics.observeSlot(slot, service, template, c.Request.Method, status, latency)
}

// counters of the learner, for /v1/status and /metrics.
func (l *learner) counters(out map[string]uint64) {
	if l == nil {
		return
	}
	out["agent_learn_queued"] = l.queued.Load()
	out["agent_learn_inline"] = l.inline.Load()
	out["agent_learn_waiting"] = uint64(len(l.q))
}

package agent

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/apiwarden/apiwarden/apimodel/capture"
	"github.com/apiwarden/apiwarden/apimodel/hold"
	"github.com/apiwarden/apiwarden/datapath/enforce"
	"github.com/apiwarden/apiwarden/datapath/nfqueue"
)

// holdTable is the agent's own nftables table (ip and ip6): deleted and
// recreated at start, deleted at stop.
const holdTable = "apiwarden_hold"

// holdPoint wires protect mode's hold point: the tcx verdict program marks
// client->server data segments of protect-mode ports, the agent's nftables
// rule queues them to q, and the holder releases each one once the
// pipeline (addChunk -> assembler -> onRequest -> detector) has judged its
// bytes, or drops it when the request was cut.
type holdPoint struct {
	q      *nfqueue.Queue
	h      *hold.Holder
	ports  string // last port set written
	stages *stageTimings
	stop   sync.Once
}

// holdEnabled reports whether the hold point is wanted: protect mode for
// some service and not turned off.
func (a *Agent) holdEnabled() bool {
	return a.protecting() && a.cfg.Hold.Enabled && a.cfg.Hold.Mark != 0
}

// openHold installs the queue rule and binds the queue. It runs first in
// Run, before any BPF object exists, for a reason that only matters on
// kill -9: the kernel closes a dead process's files in descriptor order,
// and closing hundreds of TLS uprobe links takes seconds. The queue socket,
// opened first, has a low descriptor and goes first: what it held is
// dropped (TCP resends it) and the rule's bypass passes the rest, while
// the uprobes are still being taken down. A failure leaves protect mode
// without its hold point (the kernel first-segment rules and after-the-fact
// cuts still work) and says so.
func (a *Agent) openHold() {
	if !a.holdEnabled() {
		return
	}
	hc := a.cfg.Hold
	if err := nfqueue.InstallRule(nfqueue.RuleConfig{Table: holdTable, Mark: hc.Mark, Num: hc.Queue}); err != nil {
		a.log.Error("hold point unavailable: protect mode cuts only after the fact", "err", err)
		return
	}
	q, err := nfqueue.Open(nfqueue.Config{Num: hc.Queue, MaxLen: uint32(2 * hc.MaxQueued), CopyRange: 128})
	if err != nil {
		_ = nfqueue.RemoveRule(holdTable, 0)
		a.log.Error("hold point unavailable: protect mode cuts only after the fact", "err", err)
		return
	}
	st := newStageTimings(a.reg)
	hp := &holdPoint{q: q, stages: st}
	hcfg := hold.Config{
		Timeout: hc.Timeout, FailClosed: hc.FailMode == "closed", MaxQueued: hc.MaxQueued,
		Observe: st.observe,
	}
	if hc.TLSResponses && a.cfg.TLS {
		// The enforcer is loaded after the queue opens and before it is
		// read (startHold): the lookup finds it in place.
		hcfg.TLSRead = func(k capture.FlowKey) (uint32, bool) {
			if a.enforcer == nil {
				return 0, false
			}
			return a.enforcer.TLSRead(k.Src, k.Dst)
		}
	}
	hp.h = hold.New(hcfg, q)
	a.hold = hp
	a.reg.MustRegister(newCounterSource("hold", "", hp.counters))
}

// startHold starts reading the queue (nothing is marked before the held
// ports are set, after it).
func (a *Agent) startHold(run func(string, func() error)) {
	hp := a.hold
	if hp == nil {
		return
	}
	if a.enforcer == nil {
		a.stopHold()
		a.hold = nil
		return
	}
	run("hold", func() error {
		return hp.q.Run(func(p nfqueue.Packet) {
			pk, ok := hold.ParsePacket(p.ID, p.Data, p.Received)
			if !ok {
				hp.h.Unparsed(p.ID)
				return
			}
			// A request segment's chunk woke the capture reader from
			// the kernel (capture.c: wake_ports), so it is usually
			// judged by now or about to be. When the segment still
			// waits, flush anyway: a TLS response waits on read
			// chunks that do not wake, and a wake may be missed.
			if hp.h.Hold(pk) {
				_ = a.capture.Flush()
			}
		})
	})
	hc := a.cfg.Hold
	a.log.Info("hold point active", "queue", hc.Queue, "mark", fmt.Sprintf("%#x", hc.Mark),
		"timeout", hc.Timeout, "fail_mode", hc.FailMode)
}

// stopHold stops marking, then unbinds the queue (the kernel drops what it
// still holds; TCP resends it and the bypass lets it pass) and removes the
// rule: after it nothing of the agent holds a packet.
func (a *Agent) stopHold() {
	hp := a.hold
	if hp == nil {
		return
	}
	hp.stop.Do(func() {
		if a.enforcer != nil {
			_ = a.enforcer.SetHold(0, nil)
		}
		if a.capture != nil {
			_ = a.capture.SetWakePorts(nil)
		}
		hp.q.Close()
		if err := nfqueue.RemoveRule(holdTable, 0); err != nil {
			a.log.Warn("remove hold rule", "err", err)
		}
	})
}

// updateHoldPorts keeps the held ports equal to the listening ports of
// protect-mode services (never the agent's own).
func (a *Agent) updateHoldPorts() {
	hp := a.hold
	if hp == nil || a.enforcer == nil {
		return
	}
	var ports []uint16
	for _, p := range a.procs.Processes() {
		if p.Exited || len(p.ListenPorts) == 0 || p.PID == a.self {
			continue
		}
		if a.modeFor(baseName(p.Exe)) != ModeProtect {
			continue
		}
		for _, port := range p.ListenPorts {
			if len(ports) < enforce.MaxHoldPorts {
				ports = append(ports, port)
			}
		}
	}
	slices.Sort(ports)
	ports = slices.Compact(ports)
	key := fmt.Sprint(ports)
	if key == hp.ports {
		return
	}
	// The holder learns the ports first: a segment marked under the new set
	// finds its flow tracked.
	hp.h.SetPorts(ports)
	// Their request chunks wake the capture reader at once: the verdict
	// waits on them.
	if a.capture != nil {
		if err := a.capture.SetWakePorts(ports); err != nil {
			a.log.Warn("capture wake ports", "err", err)
		}
	}
	if err := a.enforcer.SetHold(a.cfg.Hold.Mark, ports); err != nil {
		a.log.Warn("held ports", "err", err)
		return
	}
	hp.ports = key
	a.log.Info("held ports", "ports", ports)
}

// judged tells the holder how far a chunk's flow has been through the
// pipeline; called after the assembler took the chunk (and the detector
// ran on every request it completed).
func (a *Agent) judged(c capture.Chunk) {
	hp := a.hold
	if hp == nil {
		return
	}
	if c.Source == capture.SourceTLSRead {
		a.judgedTLS(hp, c)
		return
	}
	if c.Source.IsTLS() {
		return
	}
	end := c.Seq + c.PayloadLen
	if c.Flags&capture.FlagSYN != 0 {
		hp.h.Open(c.Key) // only a client's SYN is of a held flow
		end++
	}
	if c.Flags&capture.FlagFIN != 0 {
		end++
	}
	hp.h.Judged(c.Key, c.Seq, end, uint32(len(c.Data)) < c.PayloadLen)
	if c.Flags&(capture.FlagFIN|capture.FlagRST) != 0 {
		hp.h.Forget(c.Key)
	}
	if !c.Time.IsZero() && hp.h.Wants(c.Key) && c.PayloadLen > 0 {
		hp.stages.observe("capture_to_judged", time.Since(c.Time))
	}
}

// judgedTLS tells the holder and the kernel how far a protect-mode TLS
// server's decrypted request stream has been judged (c is a read chunk of
// the server, keyed client -> server): the responses waiting for it go
// on, and the kernel stops marking the flow's responses until the server
// reads more. A cut flow keeps its responses marked (and dropped).
func (a *Agent) judgedTLS(hp *holdPoint, c capture.Chunk) {
	if !hp.h.Wants(c.Key) || !a.cfg.Hold.TLSResponses || a.enforcer == nil {
		return
	}
	end := c.Seq + c.PayloadLen
	if !hp.h.JudgedTLS(c.Key, end) {
		return
	}
	if err := a.enforcer.SetTLSJudged(c.Key.Src, c.Key.Dst, end); err != nil {
		a.log.Debug("tls judged offset", "err", err)
	}
	if !c.Time.IsZero() {
		hp.stages.observe("tls_read_to_judged", time.Since(c.Time))
	}
}

// holdForgetTLS forgets the hold state of a TLS connection whose socket
// closed (key: as the process saw it, local -> remote) once its stream
// ended: only the server's end (remote -> local is client -> server of a
// held port) has any.
func (a *Agent) holdForgetTLS(key capture.FlowKey) {
	hp := a.hold
	ck := key.Reverse()
	if hp == nil || !hp.h.Wants(ck) {
		return
	}
	hp.h.ForgetTLS(ck)
	if a.enforcer != nil {
		a.enforcer.ForgetTLS(ck.Src, ck.Dst)
	}
}

// holdBlock drops what of a cut flow is held, before the (slower) resets.
func (a *Agent) holdBlock(key capture.FlowKey) {
	if hp := a.hold; hp != nil {
		hp.h.Block(key)
	}
}

func (hp *holdPoint) counters() map[string]uint64 {
	s := hp.h.Stats()
	return map[string]uint64{
		"held": s.Held, "allowed": s.Allowed, "blocked": s.Blocked, "timed_out": s.TimedOut,
		"queue_full": s.QueueFull, "truncated": s.Truncated, "unparsed": s.Unparsed,
		"verdict_errors": s.VerdictErrors,
		// TLS responses, also counted in the totals above.
		"tls_held": s.TLSHeld, "tls_allowed": s.TLSAllowed, "tls_blocked": s.TLSBlocked,
		"tls_timed_out": s.TLSTimedOut, "tls_unknown": s.TLSUnknown,
	}
}

// holdStatus adds the hold counters and the verdict-path stage timings to
// the status counters (/v1/status).
func (a *Agent) holdStatus(out map[string]uint64) {
	hp := a.hold
	if hp == nil {
		return
	}
	for k, v := range hp.counters() {
		out["hold_"+k] = v
	}
	out["hold_waiting"] = hp.h.Stats().Waiting
	hp.stages.snapshot(out)
}

// stageTimings keeps the verdict path's stage durations: a Prometheus
// histogram (apiwarden_hold_stage_seconds{stage}) and, for /v1/status, an
// HDR histogram per stage whose p50/p99/max are reported in nanoseconds.
type stageTimings struct {
	prom *prometheus.HistogramVec
	mu   sync.Mutex
	hdr  map[string]*hdrhistogram.Histogram
	obs  map[string]prometheus.Observer
}

// Stages of the verdict path, in order.
var holdStages = []string{"capture_to_judged", "tls_read_to_judged", "detect", "wait", "verdict_write"}

func newStageTimings(reg prometheus.Registerer) *stageTimings {
	st := &stageTimings{
		prom: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "apiwarden", Subsystem: "hold", Name: "stage_seconds",
			Help: "Verdict path of held requests by stage: capture_to_judged (kernel capture to the " +
				"pipeline done with the chunk), tls_read_to_judged (TLS read probe to the decrypted bytes judged, " +
				"what a held TLS response waits for), detect (detector on one request), wait (packet read " +
				"from the queue to its verdict), verdict_write (verdict sent to the kernel).",
			Buckets: prometheus.ExponentialBuckets(1e-6, 2, 16),
		}, []string{"stage"}),
		hdr: map[string]*hdrhistogram.Histogram{},
		obs: map[string]prometheus.Observer{},
	}
	for _, s := range holdStages {
		st.hdr[s] = hdrhistogram.New(1, int64(10*time.Second), 2)
		st.obs[s] = st.prom.WithLabelValues(s)
	}
	reg.MustRegister(st.prom)
	return st
}

func (st *stageTimings) observe(stage string, d time.Duration) {
	if st == nil {
		return
	}
	o, ok := st.obs[stage]
	if !ok {
		return
	}
	o.Observe(d.Seconds())
	st.mu.Lock()
	_ = st.hdr[stage].RecordValue(max(int64(d), 1))
	st.mu.Unlock()
}

func (st *stageTimings) snapshot(out map[string]uint64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for s, h := range st.hdr {
		if h.TotalCount() == 0 {
			continue
		}
		out["hold_stage_"+s+"_count"] = uint64(h.TotalCount())
		out["hold_stage_"+s+"_p50_ns"] = uint64(h.ValueAtQuantile(50))
		out["hold_stage_"+s+"_p99_ns"] = uint64(h.ValueAtQuantile(99))
		out["hold_stage_"+s+"_max_ns"] = uint64(h.Max())
	}
}

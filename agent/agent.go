// Package agent wires apiwarden's sensors, model and API into the node agent:
// it loads the kernel programs, attaches them to the watched interfaces,
// turns what they report into calls, keeps the inventory, and serves it.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/apiwarden/apiwarden/apimodel/assemble"
	"github.com/apiwarden/apiwarden/apimodel/attrib"
	"github.com/apiwarden/apiwarden/apimodel/behavior"
	"github.com/apiwarden/apiwarden/apimodel/call"
	"github.com/apiwarden/apiwarden/apimodel/capture"
	"github.com/apiwarden/apiwarden/apimodel/detect"
	"github.com/apiwarden/apiwarden/apimodel/grpcschema"
	"github.com/apiwarden/apiwarden/apimodel/http1"
	"github.com/apiwarden/apiwarden/apimodel/inventory"
	"github.com/apiwarden/apiwarden/apimodel/verdict"
	"github.com/apiwarden/apiwarden/apiserver"
	dpcapture "github.com/apiwarden/apiwarden/datapath/capture"
	"github.com/apiwarden/apiwarden/datapath/enforce"
	"github.com/apiwarden/apiwarden/datapath/guard"
	"github.com/apiwarden/apiwarden/datapath/iface"
	"github.com/apiwarden/apiwarden/datapath/procmon"
	"github.com/apiwarden/apiwarden/datapath/reset"
	"github.com/apiwarden/apiwarden/otlplog"
	"github.com/apiwarden/apiwarden/procfs"
	"github.com/apiwarden/apiwarden/store"
	"github.com/apiwarden/apiwarden/xds"
)

// Agent is one running node agent.
type Agent struct {
	cfg     Config
	version string
	base    *slog.Logger // handed to components, which add their own "component"
	log     *slog.Logger
	started time.Time
	self    uint32 // the agent's own pid: its API traffic is not modelled

	store   *store.Store
	inv     *inventory.Inventory
	model   *behavior.Model // nil: behavioural model disabled
	procs   *attrib.Table
	reg     *prometheus.Registry
	metrics *requestMetrics

	// asm is fed from several reader goroutines (TC capture, TLS); the
	// assembler is single-threaded by design, so one mutex serialises it.
	asmMu sync.Mutex
	asm   *assemble.Assembler

	capture  *dpcapture.Sensor
	procmon  *procmon.Monitor
	enforcer *enforce.Enforcer
	resetter *reset.Resetter
	guard    *guard.Guard
	ifaces   *iface.Manager

	detector *detect.Detector
	// shapes learns parameter shapes for the detector (nil: off).
	shapes          *detect.Profiler
	kernelRuleNames map[uint32]kernelRuleName
	portModes       string                          // last per-port overrides written to the kernel
	budgetPorts     map[uint16]dpcapture.PortBudget // last per-port copy budgets written
	resolved        *resolveCache
	tls             *tlsBinder             // nil: TLS probes off or unavailable
	hold            *holdPoint             // nil: no hold point (monitor mode, or unavailable)
	resets          chan [2]netip.AddrPort // cuts waiting for the reset worker
	autoBlock       *verdict.AutoBlocker

	blocks    blockBook
	modes     modeBook // runtime per-service mode overrides (modes.go)
	apiToken  string   // bearer token the API requires ("" on loopback without apiTokenFile)
	events    *eventLog
	xds       *xds.Server
	xdsPolicy string // last published policy, to publish only changes
	closeOnce sync.Once
	panics    atomic.Uint64 // parser panics recovered
	learn     *learner      // inventory, model and metrics off the capture goroutine
	// guardActive is set once the source guard is attached everywhere.
	guardActive atomic.Bool
}

// New checks the configuration and builds an agent; nothing touches the
// kernel until Run.
func New(cfg Config, version string, log *slog.Logger) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &Agent{cfg: cfg, version: version, base: log, log: log.With("component", "agent"),
		reg: prometheus.NewRegistry(), self: uint32(os.Getpid())}
	a.metrics = newRequestMetrics(a.reg, cfg.MaxMetricSeries)
	a.reg.MustRegister(buildInfo(version))
	a.blocks = blockBook{entries: map[string]blockMeta{}}
	a.resolved = newResolveCache(5 * time.Second)
	a.autoBlock = verdict.NewAutoBlocker(verdict.AutoBlockConfig(cfg.AutoBlock))
	if cfg.APITokenFile != "" {
		tok, err := apiserver.ReadTokenFile(cfg.APITokenFile)
		if err != nil {
			return nil, err
		}
		a.apiToken = tok
	}
	return a, nil
}

// Run loads, attaches and serves until ctx ends, then detaches everything
// and saves the inventory. Traffic never depends on the agent: when it stops,
// the programs go with it.
func (a *Agent) Run(ctx context.Context) (err error) {
	a.started = time.Now()
	// The call pipeline allocates short-lived records at traffic rate; a
	// lazier collector under a hard memory limit halves the GC's share of
	// the agent's CPU without letting memory grow past the limit.
	debug.SetGCPercent(400)
	debug.SetMemoryLimit(a.cfg.MemoryLimitBytes)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// The API port is taken first: a second agent or a busy port fails here,
	// before anything is attached to the kernel.
	ln, err := net.Listen("tcp", a.cfg.APIAddr)
	if err != nil {
		return fmt.Errorf("api listen %s: %w", a.cfg.APIAddr, err)
	}
	defer ln.Close()
	// Runtime mode overrides decide, like serviceModes, whether the hold
	// point and the enforcement programs load: read them from the store,
	// closed again at once so openHold still opens the first descriptor.
	if err := a.preloadModes(); err != nil {
		a.log.Warn("persisted mode overrides not restored", "err", err)
	}
	a.openHold() // first: see openHold for why
	defer a.stopHold()

	if a.store, err = store.Open(a.cfg.DataDir, a.base); err != nil {
		return err
	}
	defer a.store.Close()
	a.events = newEventLog(a.store, a.base)
	if a.cfg.EventsFile != "" {
		if err := a.events.exportTo(a.cfg.EventsFile); err != nil {
			return err
		}
		defer a.events.closeExport()
	}
	if a.cfg.OTLPLogs.Endpoint != "" {
		host, _ := os.Hostname()
		exp, err := otlplog.New(otlplog.Config{Endpoint: a.cfg.OTLPLogs.Endpoint, Headers: a.cfg.OTLPLogs.Headers,
			Resource: map[string]string{"host.name": host, "service.version": a.version}}, a.base)
		if err != nil {
			return err
		}
		a.events.otlp = exp
		defer exp.Close()
	}

	invCfg := inventory.Config{MaxBodyBytes: a.cfg.MaxBodyBytes}
	if files := a.cfg.grpcDescriptorFiles(); len(files) > 0 {
		reg, err := grpcschema.Load(files...)
		if err != nil {
			return fmt.Errorf("gRPC descriptor sets: %w", err)
		}
		invCfg.GRPCDescriptors = reg
		a.log.Info("gRPC descriptor sets loaded", "files", len(files), "services", reg.Services(), "methods", reg.Methods())
	}
	a.inv = inventory.New(invCfg, a.base)
	if state, err := a.store.LoadInventory(); err != nil {
		return fmt.Errorf("load inventory: %w", err)
	} else if state != nil {
		if err := a.inv.RestoreState(state); err != nil {
			a.log.Warn("stored inventory not restored; starting empty", "err", err)
		}
	}
	if err := a.openBehavior(); err != nil {
		return err
	}
	if a.hold != nil {
		// Only the hold point waits on the capture goroutine; without it
		// learning inline is cheaper (no hand-off per call).
		a.startLearner()
	}
	// Every return below (after the assembler exists) ends with the
	// learner drained; the normal stop drains it before saving.
	defer a.stopLearner()
	a.procs = attrib.New(attrib.Config{ProcFS: procfs.New("")}, a.base)
	a.asm = assemble.New(assemble.Config{
		MaxFlows:    a.cfg.MaxFlows,
		IdleTimeout: a.cfg.FlowIdleTimeout,
		HTTP:        http1.Config{MaxBodyBytes: a.cfg.MaxBodyBytes},
		OnRequest:   a.onRequest,
		// Only protect mode acts on requests the parser rejects.
		OnInvalidRequest: a.invalidRequestHook(),
	}, a.base, a.onCall)

	dcfg := detect.Config{RuleFiles: a.cfg.RuleFiles}
	if a.shapes = a.cfg.Shapes.profiler(); a.shapes != nil {
		dcfg.Shapes = a.shapes
	}
	if a.detector, err = detect.New(dcfg, a.base); err != nil {
		return fmt.Errorf("detection rules: %w", err)
	}
	if err := a.loadSensors(); err != nil {
		a.closeSensors()
		return err
	}
	defer a.closeSensors()
	if a.resetter != nil {
		a.resets = make(chan [2]netip.AddrPort, maxPendingResets)
	}

	if a.enforcer != nil {
		rules := a.kernelRules()
		if err := a.enforcer.SetRules(rules); err != nil {
			return fmt.Errorf("kernel rules: %w", err)
		}
		a.log.Info("kernel rules loaded", "rules", len(rules))
	}

	var wg sync.WaitGroup
	run := func(name string, fn func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(); err != nil && ctx.Err() == nil {
				a.log.Error("component failed", "component", name, "err", err)
				cancel()
			}
		}()
	}
	// Readers start before anything is attached so no early event is lost.
	// TLS comes first: process events (queued since procmon loaded) bind
	// the probes to new processes, and read a.tls.
	a.startTLS(ctx, run)
	run("procmon", func() error { return a.procmon.Run(ctx, a.onProc, a.onSock) })
	run("capture", func() error { return a.capture.Run(ctx, a.addChunk) })
	if a.enforcer != nil {
		run("enforce", func() error { return a.enforcer.Run(ctx, a.onEnforceEvent) })
	}
	if a.resets != nil {
		run("reset", func() error { a.resetWorker(ctx); return nil })
	}
	if err := a.procs.Scan(); err != nil {
		a.log.Warn("initial process scan incomplete", "err", err)
	}
	a.updatePortModes()
	a.startHold(run)
	a.updateHoldPorts()
	a.updateBudgetPorts()

	a.ifaces = iface.New(iface.Config{Names: a.cfg.Interfaces}, &attachers{a: a}, a.base)
	if err := a.ifaces.Start(ctx); err != nil {
		return fmt.Errorf("watch interfaces: %w", err)
	}
	defer a.ifaces.Close()
	if len(a.cfg.Interfaces) > 0 && len(a.ifaces.Attached()) == 0 {
		return fmt.Errorf("none of the interfaces %v could be attached", a.cfg.Interfaces)
	}
	if a.protecting() {
		a.activateGuard()
	}
	if err := a.restoreBlocklist(); err != nil {
		a.log.Warn("persisted blocklist not restored", "err", err)
	}
	a.registerCollectors()
	if a.cfg.BPFStats {
		if stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME)); err != nil {
			a.log.Warn("bpf run-time statistics not enabled", "err", err)
		} else {
			defer stats.Close()
		}
	}
	a.log.Info("agent running", "mode", a.cfg.Mode, "api", ln.Addr().String(), "interfaces", a.attachedNames())

	// The xDS server exists before the API and housekeeping goroutines
	// that read a.xds start.
	if a.cfg.XDSAddr != "" {
		if a.xds, err = xds.New(a.base, xds.Config{Envoy: a.cfg.XDSEnvoyListeners, Registerer: a.reg}); err != nil {
			return err
		}
		run("xds", func() error { return a.xds.Serve(ctx, a.cfg.XDSAddr) })
	}
	srv := apiserver.New(apiserver.Config{Version: a.version, Pprof: a.cfg.Pprof,
		Token: a.apiToken, PublicMetrics: a.cfg.APIPublicMetrics}, backend{a}, a.reg, a.base)
	run("api", func() error { return srv.ServeListener(ctx, ln) })
	run("housekeeping", func() error { a.housekeeping(ctx); return nil })

	<-ctx.Done()
	a.log.Info("stopping: detaching programs")
	// Detach first so the application's traffic is untouched from here on.
	a.stopHold()
	a.ifaces.Close()
	a.closeSensors()
	wg.Wait()
	a.withAssembler(func(asm *assemble.Assembler) { asm.Flush() })
	a.stopLearner()
	if err := a.saveInventory(); err != nil {
		return err
	}
	return nil
}

// loadSensors loads every kernel program. Capture and process attribution
// are required; the enforcement pieces are required only in protect mode.
func (a *Agent) loadSensors() error {
	var err error
	cb := a.cfg.CopyBudget
	a.capture, err = dpcapture.New(dpcapture.Config{ChunkMax: a.cfg.ChunkMax, Ports: a.cfg.Ports,
		RingBufferBytes: a.cfg.RingBufferBytes, WakeupBytes: a.cfg.WakeupBytes, PollInterval: a.cfg.PollInterval,
		Budgets: cb.enabled(), RequestBudget: uint32(cb.RequestBytes), ResponseBudget: uint32(cb.ResponseBytes),
	}, a.base)
	if err != nil {
		return fmt.Errorf("capture sensor: %w", err)
	}
	a.procmon, err = procmon.New(procmon.Config{}, a.base)
	if err != nil {
		return fmt.Errorf("process monitor: %w", err)
	}
	needEnforce := a.protecting() || len(a.cfg.DenyRules) > 0
	optional := func(what string, err error) error {
		if needEnforce {
			return fmt.Errorf("%s (needed by protect mode): %w", what, err)
		}
		a.log.Warn(what+" unavailable; monitor mode continues without it", "err", err)
		return nil
	}
	// The verdict programs cost every packet a parse and two lookups; in
	// pure monitor mode without deny rules nothing can match or be flagged,
	// so they are not loaded.
	if needEnforce {
		if a.enforcer, err = enforce.New(a.base); err != nil {
			return fmt.Errorf("enforcement programs (needed by protect mode): %w", err)
		}
	}
	if a.resetter, err = reset.New(a.base); err != nil {
		a.resetter = nil
		if err := optional("connection reset (iter/tcp + bpf_sock_destroy)", err); err != nil {
			return err
		}
	}
	if a.guard, err = guard.New(guard.Config{}, a.base); err != nil {
		a.guard = nil
		if err := optional("source guard", err); err != nil {
			return err
		}
	}
	return nil
}

// protecting reports whether any service is in protect mode.
func (a *Agent) protecting() bool {
	if a.cfg.Mode == ModeProtect {
		return true
	}
	for _, m := range a.serviceModes() {
		if m == ModeProtect {
			return true
		}
	}
	return false
}

// activateGuard puts the source guard on every watched interface. It runs
// at start in protect mode (automatic blocks) and on the first manual
// block otherwise, so an agent that blocks nothing costs packets nothing.
func (a *Agent) activateGuard() {
	if a.guard == nil || a.guardActive.Swap(true) {
		return
	}
	for _, ifindex := range a.capture.Attached() {
		a.attachGuard(ifindex)
	}
}

// attachGuard uses XDP on physical NICs, tcx elsewhere (veth, lo), where XDP
// brings no speed.
func (a *Agent) attachGuard(ifindex int) {
	var err error
	if l, lerr := netlink.LinkByIndex(ifindex); lerr == nil && l.Type() == "device" && l.Attrs().Flags&net.FlagLoopback == 0 {
		_, err = a.guard.AttachXDP(ifindex)
	} else {
		err = a.guard.AttachTC(ifindex)
	}
	if err != nil {
		a.log.Warn("source guard not attached", "ifindex", ifindex, "err", err)
	}
}

// closeSensors detaches and unloads every kernel program, once: after it,
// no apiwarden program touches a packet.
func (a *Agent) closeSensors() {
	a.closeOnce.Do(func() {
		if a.guard != nil {
			a.guard.Close()
		}
		if a.enforcer != nil {
			a.enforcer.Close()
		}
		if a.resetter != nil {
			a.resetter.Close()
		}
		if a.capture != nil {
			a.capture.Close()
		}
		if a.procmon != nil {
			a.procmon.Close()
		}
		if a.tls != nil {
			// Detaching waits for an attach in progress; past a bound the
			// process exit releases the probes instead.
			done := make(chan struct{})
			go func() { a.tls.sensor.Close(); close(done) }()
			select {
			case <-done:
			case <-time.After(3 * time.Second):
				a.log.Warn("TLS probes still detaching; the agent's exit releases them")
			}
		}
	})
}

// attachers puts every per-interface program on an interface: capture
// (tcx, appended), enforcement (tcx, head, protect mode only) and the source
// guard (once active).
type attachers struct{ a *Agent }

func (m *attachers) Attach(ifindex int) error {
	a := m.a
	if err := a.capture.Attach(ifindex); err != nil {
		return err
	}
	if a.enforcer != nil {
		if err := a.enforcer.Attach(ifindex); err != nil {
			a.log.Warn("enforcement not attached", "ifindex", ifindex, "err", err)
		}
	}
	// After capture.Attach, so activateGuard (which walks capture's list)
	// and this check cannot both miss a new interface.
	if a.guard != nil && a.guardActive.Load() {
		a.attachGuard(ifindex)
	}
	return nil
}

func (m *attachers) Detach(ifindex int) error {
	a := m.a
	var errs []error
	if a.guard != nil {
		errs = append(errs, a.guard.Detach(ifindex))
	}
	if a.enforcer != nil {
		errs = append(errs, a.enforcer.Detach(ifindex))
	}
	errs = append(errs, a.capture.Detach(ifindex))
	return errors.Join(errs...)
}

func (a *Agent) attachedNames() []string {
	if a.ifaces == nil {
		return nil
	}
	var out []string
	for _, n := range a.ifaces.Attached() {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// addChunk feeds one kernel chunk to the assembler. A bug in a parser must
// not take the agent down with it (the application never depends on the
// agent, but its visibility does): the panic is logged and counted, and the
// chunk is lost.
func (a *Agent) addChunk(c capture.Chunk) {
	a.withAssembler(func(asm *assemble.Assembler) { asm.Add(c) })
	a.judged(c)
}

// withAssembler runs fn with the assembler locked, recovering from a panic.
func (a *Agent) withAssembler(fn func(*assemble.Assembler)) {
	a.asmMu.Lock()
	defer a.asmMu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			a.panics.Add(1)
			a.log.Error("recovered from a panic in the call pipeline; data dropped", "panic", r,
				"stack", string(debug.Stack()))
		}
	}()
	fn(a.asm)
}

// onCall runs for every reconstructed call (on the assembler's goroutine):
// attribute it, learn it, count it.
func (a *Agent) onCall(c *call.Call) {
	// TLS calls first: which end the probes saw decides what to resolve.
	if !a.tlsCall(c) {
		return
	}
	if c.ServerProcess == nil || c.ClientProcess == nil {
		o := a.owners(c.Client, c.Server, c.Request.Start)
		if c.ServerProcess == nil {
			c.ServerProcess = o.server
		}
		if c.ClientProcess == nil {
			c.ClientProcess = o.client
		}
	}
	if c.ServerProcess != nil && c.ServerProcess.PID == a.self {
		return // the agent's own API is not part of the inventory
	}
	a.learnCall(c, serviceName(c))
}

// owners resolves the processes at both ends of a connection, cached.
func (a *Agent) owners(client, server netip.AddrPort, now time.Time) owners {
	o, ok := a.resolved.get(client, server, now)
	if !ok {
		o.server, o.client = a.procs.Resolve(client, server)
		// An unresolved server may be an accept event still in flight:
		// only a complete answer is worth remembering.
		if o.server != nil {
			a.resolved.put(client, server, o)
		}
	}
	return o
}

// serviceName is the service label of a call: the serving executable's
// basename, as the inventory names it.
func serviceName(c *call.Call) string {
	if c.ServerProcess != nil && c.ServerProcess.Exe != "" {
		return filepath.Base(c.ServerProcess.Exe)
	}
	return "unknown"
}

// housekeeping ticks the assembler, expires blocks and saves the inventory.
func (a *Agent) housekeeping(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastSave, lastPrune := time.Now(), time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			a.endClosed(now)
			a.withAssembler(func(asm *assemble.Assembler) { asm.Tick(now) })
			if a.guard != nil {
				if _, err := a.guard.Collect(now); err != nil {
					a.log.Warn("expire blocklist", "err", err)
				}
				a.blocks.expire(now)
			}
			a.publishPolicy(ctx)
			a.applyModes()
			a.updateBudgetPorts()
			if now.Sub(lastPrune) >= time.Minute {
				lastPrune = now
				if _, err := a.store.Prune(eventKind, now.Add(-a.cfg.EventRetention)); err != nil {
					a.log.Warn("prune events", "err", err)
				}
			}
			if now.Sub(lastSave) >= a.cfg.SaveInterval {
				lastSave = now
				if err := a.saveInventory(); err != nil {
					a.log.Warn("save inventory", "err", err)
				}
			}
		}
	}
}

func (a *Agent) saveInventory() error {
	state, err := a.inv.MarshalState()
	if err != nil {
		return fmt.Errorf("encode inventory: %w", err)
	}
	if err := a.store.SaveInventory(state); err != nil {
		return fmt.Errorf("save inventory: %w", err)
	}
	return a.saveBehavior()
}

// counters gathers every stage's counters under one namespace each.
func (a *Agent) counters() map[string]uint64 {
	out := map[string]uint64{}
	add := func(prefix string, m map[string]uint64, err error) {
		if err != nil {
			return
		}
		for k, v := range m {
			out[prefix+"_"+k] = v
		}
	}
	if a.capture != nil {
		m, err := a.capture.Counters()
		add("capture", m, err)
	}
	if a.enforcer != nil {
		m, err := a.enforcer.Counters()
		add("enforce", m, err)
	}
	if a.guard != nil {
		m, err := a.guard.Counters()
		add("guard", m, err)
	}
	if a.resetter != nil {
		m, err := a.resetter.Counters()
		add("reset", m, err)
	}
	if a.procmon != nil {
		if s, err := a.procmon.Stats(); err == nil {
			flattenStats("procmon", s, out)
		}
	}
	if a.asm != nil {
		a.asmMu.Lock()
		s := a.asm.Stats()
		a.asmMu.Unlock()
		flattenStats("assemble", s, out)
	}
	if a.inv != nil {
		flattenStats("inventory", a.inv.Stats(), out)
	}
	if a.procs != nil {
		flattenStats("attrib", a.procs.Stats(), out)
	}
	if a.ifaces != nil {
		flattenStats("iface", a.ifaces.Stats(), out)
	}
	if a.events != nil {
		flattenStats("events", a.events.Stats(), out)
	}
	if a.detector != nil {
		flattenStats("detect", a.detector.Stats(), out)
	}
	if a.shapes != nil {
		flattenStats("shapes", a.shapes.Stats(), out)
	}
	if a.model != nil {
		st := a.model.Stats()
		out["behavior_calls"], out["behavior_endpoints"], out["behavior_clients"] = st.Calls, st.Endpoints, st.Clients
		out["behavior_evicted_clients"], out["behavior_evicted_endpoints"] = st.EvictedClients, st.EvictedEndpoints
		for rule, n := range st.Findings { // a fixed set of rule ids: bounded
			// Metric-name safe ("behavior_findings_brute_force"); the
			// labelled apiwarden_behavior_anomalies_total also has the action.
			if d := behavior.Detector(rule); d != "" {
				out["behavior_findings_"+d] = n
			}
		}
	}
	out["agent_recovered_panics"] = a.panics.Load()
	a.learn.counters(out)
	if a.tls != nil {
		if st, err := a.tls.sensor.Stats(); err == nil {
			for k, v := range st.Kernel {
				out["tls_"+k] = v
			}
			for k, v := range st.Skips {
				out["tls_skipped_"+k] = v
			}
			out["tls_probed_files"] = uint64(st.Files)
			out["tls_attach_points"] = uint64(st.Points)
			out["tls_attach_points_slow"] = uint64(st.SlowPoints)
		}
		out["tls_attach_queue_dropped"] = a.tls.dropped.Load()
	}
	return out
}

func (a *Agent) registerCollectors() {
	a.reg.MustRegister(newCounterSource("pipeline", "", a.counters), newVisibilityCollector(a), newBPFProgramCollector(),
		newSummaryCollector(a.summaryCounters))
}

// publishPolicy sends the current blocklist and deny rules to xDS clients
// when they changed, so proxies enforce what the kernel enforces.
func (a *Agent) publishPolicy(ctx context.Context) {
	if a.xds == nil {
		return
	}
	p := xds.Policy{Monitor: a.cfg.Mode == ModeMonitor, RateLimit: a.cfg.XDSRateLimit}
	for _, d := range a.cfg.DenyRules {
		p.Denies = append(p.Denies, xds.Deny{Method: d.Method, PathPrefix: d.PathPrefix})
	}
	if a.guard != nil {
		entries, err := a.guard.List()
		if err != nil {
			a.log.Warn("xds: read blocklist", "err", err)
			return
		}
		now := time.Now()
		for _, e := range entries {
			if e.Expires.IsZero() || e.Expires.After(now) {
				p.BlockedSources = append(p.BlockedSources, e.Prefix)
			}
		}
	}
	key := fmt.Sprint(p)
	if key == a.xdsPolicy {
		return
	}
	if err := a.xds.Update(ctx, p); err != nil {
		a.log.Warn("xds: publish policy", "err", err)
		return
	}
	a.xdsPolicy = key
}

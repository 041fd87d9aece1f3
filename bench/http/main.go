// Command http is apiwarden's A/B HTTP benchmark: client and server in two
// network namespaces joined through the host, servers nginx (one worker) and
// a Go net/http API, and alternating windows with the agent stopped (A,
// programs detached) and running on the host-side veths (B, attached), in
// A B B A order so slow drift of the machine cancels out. Each window
// measures closed-loop saturation throughput and fixed-rate latency (open
// loop at a fraction of the no-agent maximum, latency from the scheduled
// send time), CPU per request of server, agent and softirq, and the
// in-kernel cost per program run from kernel.bpf_stats_enabled.
//
// -proto https serves HTTPS instead (nginx on the shared libssl, the
// stripped Go crypto/tls API), so the B windows also pay for the TLS
// uprobes; -proto http,https measures both in one run and ends with one
// table of every target. -pin runs the generator alone on the last CPU.
//
// Run as root from the module root: go run ./bench/http [-window 2s -rounds 2]
// [-proto http,https] [-pin].
//
// With -modes it instead compares, in one run against one server (goapi by
// default), no agent, the agent in monitor and in protect mode, and a
// Coraza + CRS inline proxy: go run ./bench/http -modes none,monitor,protect,coraza
// [-quick]. See compare.go.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/apiwarden/apiwarden/e2e/harness"
)

type config struct {
	window   time.Duration
	rounds   int
	conns    int
	latConns int
	frac     float64
	servers  string
	agent    string
	mode     string
	noAgent  bool
	verbose  bool
	noGSO    bool
	profile  string
	pin      bool
	protos   []string // http, https
	agentEnv string
	// comparison (-modes)
	modes string
	quick bool
	pl    int
	nice  int
	rt    int
	trace string
}

// load is awload's JSON result.
type load struct {
	Mode     string  `json:"mode"`
	Requests int64   `json:"requests"`
	Errors   int64   `json:"errors"`
	Missed   int64   `json:"missed"`
	RPS      float64 `json:"rps"`
	P50Us    int64   `json:"p50_us"`
	P90Us    int64   `json:"p90_us"`
	P99Us    int64   `json:"p99_us"`
	P999Us   int64   `json:"p999_us"`
	MaxUs    int64   `json:"max_us"`
	SvcP50Us int64   `json:"svc_p50_us"`
	SvcP99Us int64   `json:"svc_p99_us"`
	LateP50  int64   `json:"late_p50_us"`
	FirstErr string  `json:"first_error"`
}

// window is one A or B measurement.
type window struct {
	attached bool
	sat, lat load
	// CPU during the saturation phase.
	srvCPU, agentCPU, softirq time.Duration
	progs                     []harness.ProgDelta
	// hold point counters over the whole window (protect mode): segments
	// held, and of them released by the timeout (unjudged: fail-open) or
	// passed because the queue was full.
	held, timedOut, queueFull uint64
	// lost: capture and TLS chunk events dropped on a full ring buffer
	// over the window (data the agent never saw: a cheap window that
	// lost data is not a cheap agent).
	lost uint64
}

func (w window) perReq(d time.Duration) float64 {
	if w.sat.Requests == 0 {
		return 0
	}
	return float64(d.Microseconds()) / float64(w.sat.Requests)
}

func (w window) bpfNsPerReq() float64 {
	var ns uint64
	for _, p := range w.progs {
		ns += p.TimeNs
	}
	if w.sat.Requests == 0 {
		return 0
	}
	return float64(ns) / float64(w.sat.Requests)
}

type bench struct {
	cfg     config
	log     *slog.Logger
	base    *slog.Logger // without a component, for the harness
	dir     string
	topo    *harness.Topology
	awload  string
	caFile  string // -tls: the CA the generator trusts
	agent   *harness.Agent
	agentN  int
	restore func()
	path    string // request path of the compared server
}

func main() {
	var cfg config
	flag.DurationVar(&cfg.window, "window", 2*time.Second, "length of each measurement phase (saturation and latency each)")
	flag.IntVar(&cfg.rounds, "rounds", 2, "A B B A rounds per server")
	flag.IntVar(&cfg.conns, "conns", 32, "connections of the saturation (closed-loop) phase")
	flag.IntVar(&cfg.latConns, "lat-conns", 16, "connections of the fixed-rate phase")
	flag.Float64Var(&cfg.frac, "frac", 0.5, "fixed rate as a fraction of the no-agent saturation throughput")
	flag.StringVar(&cfg.servers, "servers", "nginx,goapi", "servers to measure")
	flag.StringVar(&cfg.agent, "agent", "", "apiwarden binary (default: build ./cmd/apiwarden)")
	flag.StringVar(&cfg.mode, "mode", "monitor", "agent mode of the B windows: monitor, or protect (every request held at the hold point until judged)")
	flag.BoolVar(&cfg.noAgent, "no-agent", false, "run only A windows (harness check)")
	flag.BoolVar(&cfg.verbose, "v", false, "print every window")
	flag.BoolVar(&cfg.noGSO, "nogso", false, "cap GSO on the veths so every segment is wire-sized")
	flag.BoolVar(&cfg.pin, "pin", false, "run the load generator alone on the last CPU and the server and agent on the others (taskset), to separate the agent's cost from contention with the generator")
	flag.StringVar(&cfg.profile, "profile", "", "write a CPU profile of the agent during its first saturation window to this file (prefixed with the server name); with -modes: of the protect-mode agent during its fixed-rate keep-alive phase")
	protos := flag.String("proto", "http", "protocols to measure, each against every server: http, https (nginx with the shared libssl, the stripped Go crypto/tls API: the B windows pay for the TLS uprobes; the generator speaks TLS, is a client and is not probed), or http,https for the whole table in one run")
	tlsOnly := flag.Bool("tls", false, "shorthand for -proto https")
	flag.StringVar(&cfg.agentEnv, "agent-env", "", "comma-separated VAR=value pairs added to the agent's environment, e.g. GOMAXPROCS=1")
	flag.StringVar(&cfg.modes, "modes", "", "instead of the A/B windows, compare these modes on one server in one run: none, monitor, protect, coraza (a Coraza + CRS inline proxy in front of the server, no agent); e.g. -modes none,monitor,protect,coraza")
	flag.BoolVar(&cfg.quick, "quick", false, "with -modes: short phases (1.2 s) and no second baseline run, about 30 s in all")
	flag.IntVar(&cfg.pl, "pl", 1, "with -modes: CRS paranoia level of the Coraza proxy")
	flag.IntVar(&cfg.nice, "nice", 0, "run the benchmark (generator, servers, agent, proxy: everything it starts) at this nice level, so other work on a shared machine disturbs it less")
	flag.IntVar(&cfg.rt, "rt", 0, "run the benchmark and everything it starts under SCHED_RR at this priority (chrt -r; 0: off): on a machine busy with other work, woken tasks then run at once instead of queueing behind it (the kernel's RT throttling still leaves the rest 5 %); -modes defaults to 1 unless -nice is given")
	flag.StringVar(&cfg.trace, "trace", "", "with -modes: write a Go execution trace (1 s) of the protect-mode agent during its fixed-rate keep-alive phase to this file (prefixed with the server name)")
	proxy := flag.String("coraza-proxy", "", "internal: run the Coraza + CRS proxy on this listen address (with -upstream)")
	upstream := flag.String("upstream", "", "internal: upstream host:port of -coraza-proxy")
	flag.Parse()
	if *proxy != "" {
		runCorazaProxy(*proxy, *upstream, cfg.pl)
		return
	}
	if *tlsOnly {
		*protos = "https"
	}
	for _, p := range strings.Split(*protos, ",") {
		switch p = strings.TrimSpace(p); p {
		case "http", "https":
			cfg.protos = append(cfg.protos, p)
		default:
			fmt.Fprintf(os.Stderr, "bench/http: -proto %q: want http, https or http,https\n", p)
			os.Exit(2)
		}
	}
	if cfg.modes != "" && slices.Contains(cfg.protos, "https") {
		fmt.Fprintln(os.Stderr, "bench/http: HTTPS is measured by the A/B windows; -modes (and its plaintext Coraza proxy) does not take -proto https")
		os.Exit(2)
	}
	if cfg.modes != "" {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["servers"] {
			cfg.servers = "goapi"
		}
		if !set["rt"] && !set["nice"] {
			cfg.rt = 1
		}
		if !set["window"] {
			cfg.window = 4 * time.Second
			if cfg.quick {
				cfg.window = 1200 * time.Millisecond
			}
		}
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "bench/http: needs root (network namespaces, BPF)")
		os.Exit(2)
	}
	reniceSelf(cfg.nice, cfg.rt, log)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b := &bench{cfg: cfg, log: log.With("component", "bench"), base: log}
	err := b.run(ctx)
	b.close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/http:", err)
		os.Exit(1)
	}
}

func (b *bench) close() {
	if b.agent != nil {
		b.agent.Kill()
	}
	if b.topo != nil {
		if err := b.topo.Close(); err != nil {
			b.log.Warn("cleanup", "err", err)
		}
	}
	if b.restore != nil {
		b.restore()
	}
	if b.dir != "" {
		_ = os.RemoveAll(b.dir)
	}
}

func (b *bench) run(ctx context.Context) error {
	var err error
	if b.dir, err = os.MkdirTemp("", "awe2e-bench-"); err != nil {
		return err
	}
	bins, err := harness.BuildBinaries(ctx, b.dir)
	if err != nil {
		return err
	}
	b.awload = bins.AWLoad
	if !b.cfg.noAgent && b.cfg.agent == "" {
		if b.cfg.agent, err = harness.BuildAgent(ctx, b.dir); err != nil {
			b.log.Warn("agent does not build; running A windows only", "err", firstLine(err.Error()))
			b.cfg.noAgent = true
		}
	}
	if b.restore, err = harness.EnableBPFStats(); err != nil {
		b.log.Warn("no bpf stats", "err", err)
	}
	harness.CleanupStale(b.log)
	if b.topo, err = harness.NewTopology(harness.TopologyConfig{DisableOffload: b.cfg.noGSO}, b.base); err != nil {
		return err
	}
	type target struct {
		name, path string
		srv        *harness.Server
		caFile     string // HTTPS: the CA the generator trusts
	}
	var certs harness.Certs
	var strippedGoAPI string
	if slices.Contains(b.cfg.protos, "https") {
		if certs, err = harness.GenCerts(b.dir, b.topo.SrvIP); err != nil {
			return err
		}
		// Stripped, as deployed binaries usually are: the agent finds
		// crypto/tls through .gopclntab, not the symbol table.
		if strippedGoAPI, err = harness.BuildStrippedGoAPI(ctx, b.dir); err != nil {
			return err
		}
	}
	var targets []target
	for _, proto := range b.cfg.protos {
		tls := proto == "https"
		for _, name := range strings.Split(b.cfg.servers, ",") {
			name = strings.TrimSpace(name)
			var s *harness.Server
			var path string
			switch {
			case name == "nginx" && tls:
				s, err = b.topo.StartNginxTLS(b.dir, certs, false)
				path = "/ping"
			case name == "nginx":
				s, err = b.topo.StartNginx(b.dir)
				path = "/ping"
			case name == "goapi" && tls:
				s, err = b.topo.StartGoAPITLS(strippedGoAPI, b.dir, certs, false)
				path = "/api/v1/ping"
			case name == "goapi":
				s, err = b.topo.StartGoAPI(bins.GoAPI, b.dir, false)
				path = "/api/v1/ping"
			default:
				return fmt.Errorf("unknown server %q", name)
			}
			if err != nil {
				return err
			}
			defer s.Kill()
			if err := b.topo.CheckReach(s.Addr, 5*time.Second); err != nil {
				return err
			}
			t := target{name: name + ", " + proto, path: path, srv: s}
			if tls {
				t.caFile = certs.CA
			}
			targets = append(targets, t)
		}
	}
	if b.cfg.modes != "" {
		for _, t := range targets {
			b.path = t.path
			if err := b.compare(ctx, t.srv, t.path); err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
		}
		return nil
	}
	var rows []summaryRow
	for _, t := range targets {
		b.caFile = t.caFile
		ws, maxRPS, err := b.server(ctx, t.srv, t.path)
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		rows = append(rows, b.report(t.name, maxRPS, ws))
	}
	b.caFile = ""
	printSummary(rows, b.cfg)
	return nil
}

// nicedEnv marks the re-executed benchmark.
const nicedEnv = "AWBENCH_NICED"

// reniceSelf re-executes the benchmark under nice(1) when asked to: nice
// is per thread on Linux, and only a process started at the level has
// every thread (and every child) there.
func reniceSelf(n, rt int, log *slog.Logger) {
	if (n == 0 && rt == 0) || os.Getenv(nicedEnv) != "" {
		return
	}
	self, err := os.Executable()
	tool, args := "nice", []string{"nice", "-n", fmt.Sprint(n)}
	if rt > 0 {
		tool, args = "chrt", []string{"chrt", "-r", fmt.Sprint(rt)}
	}
	path, lerr := exec.LookPath(tool)
	if err != nil || lerr != nil {
		log.Warn("cannot reschedule", "err", errors.Join(err, lerr))
		return
	}
	argv := append(append(args, self), os.Args[1:]...)
	err = syscall.Exec(path, argv, append(os.Environ(), nicedEnv+"=1"))
	log.Warn("cannot reschedule", "err", err)
}

// runOut runs a command and returns its combined output.
func runOut(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// splitEnv splits "A=1,B=2" (empty: none).
func splitEnv(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// awloadRun runs the generator in the client namespace.
func (b *bench) awloadRun(ctx context.Context, addr, path string, conns int, rate float64) (load, error) {
	return b.load(ctx, addr, path, conns, rate, false, b.cfg.window)
}

// load runs awload in the client namespace for d: closed loop (rate 0) or
// at a fixed rate, over keep-alive connections or a new one per request.
func (b *bench) load(ctx context.Context, addr, path string, conns int, rate float64, newConn bool, d time.Duration) (load, error) {
	args := []string{"netns", "exec", b.topo.CliNS}
	if b.cfg.pin {
		args = append(args, "taskset", "-c", fmt.Sprint(runtime.NumCPU()-1))
	}
	args = append(args, b.awload, "-addr", addr, "-path", path,
		"-conns", fmt.Sprint(conns), "-duration", d.String(), "-rate", fmt.Sprintf("%.0f", rate))
	if b.cfg.modes != "" {
		args = append(args, "-host", loadHost)
	}
	if newConn {
		args = append(args, "-new-conn")
	}
	if b.caFile != "" {
		args = append(args, "-cacert", b.caFile)
	}
	out, err := exec.CommandContext(ctx, "ip", args...).Output()
	var l load
	if jerr := json.Unmarshal(out, &l); jerr != nil {
		return l, fmt.Errorf("awload: %v: %s", err, out)
	}
	if l.Errors > 0 {
		b.log.Warn("load errors", "errors", l.Errors, "first", l.FirstErr)
	}
	return l, nil
}

// setAgent starts or stops the agent.
func (b *bench) setAgent(on bool) error {
	if !on {
		if b.agent != nil {
			code, err := b.agent.Stop(15 * time.Second)
			b.agent = nil
			if code != 0 {
				return fmt.Errorf("agent exit %d: %v", code, err)
			}
		}
		return nil
	}
	if b.agent != nil {
		return nil
	}
	b.agentN++
	var extra []string
	if b.cfg.profile != "" || b.cfg.trace != "" {
		extra = append(extra, "--pprof")
	}
	a, err := harness.StartAgent(harness.AgentConfig{Bin: b.cfg.agent, Mode: b.cfg.mode, Ifaces: b.topo.Ifaces(),
		DataDir: filepath.Join(b.dir, "data"), LogFile: filepath.Join(b.dir, fmt.Sprintf("agent-%d.log", b.agentN)),
		Extra: extra, Env: splitEnv(b.cfg.agentEnv)})
	if err != nil {
		return err
	}
	if err := a.WaitReady(30 * time.Second); err != nil {
		a.Kill()
		return err
	}
	b.agent = a
	b.pinAway(a.Pid())
	if err := a.WaitAttached(b.topo.Ifaces(), 10*time.Second); err != nil {
		return err
	}
	time.Sleep(300 * time.Millisecond) // let start-up work settle before measuring
	return nil
}

// schedule is A B B A per round, or only A without an agent.
func (b *bench) schedule() []bool {
	var s []bool
	for i := 0; i < b.cfg.rounds; i++ {
		if b.cfg.noAgent {
			s = append(s, false, false)
		} else {
			s = append(s, false, true, true, false)
		}
	}
	return s
}

func (b *bench) server(ctx context.Context, srv *harness.Server, path string) ([]window, float64, error) {
	if err := b.setAgent(false); err != nil {
		return nil, 0, err
	}
	for _, pid := range srv.CPUPids {
		b.pinAway(pid)
	}
	// Calibration (also the warm-up): saturation without the agent.
	cal, err := b.awloadRun(ctx, srv.Addr, path, b.cfg.conns, 0)
	if err != nil {
		return nil, 0, err
	}
	rate := cal.RPS * b.cfg.frac
	b.log.Info("calibrated", "server", srv.Name, "max_rps", int(cal.RPS), "fixed_rate", int(rate))
	var ws []window
	profiled := false
	for _, attached := range b.schedule() {
		if ctx.Err() != nil {
			return nil, 0, ctx.Err()
		}
		if err := b.setAgent(attached); err != nil {
			return nil, 0, err
		}
		w := window{attached: attached}
		var agentPid int
		if b.agent != nil {
			agentPid = b.agent.Pid()
		}
		progsBefore, _ := harness.ProgStats(agentPid)
		srv0, soft0 := srv.CPUTime(), must(harness.SoftirqTime())
		agent0, _ := cpuOf(agentPid)
		hold0 := b.holdCounters()
		var prof chan error
		if b.agent != nil && b.cfg.profile != "" && !profiled {
			profiled = true
			prof = make(chan error, 1)
			go func() { prof <- b.profileAgent(srv.Name, b.cfg.window) }()
		}
		if w.sat, err = b.awloadRun(ctx, srv.Addr, path, b.cfg.conns, 0); err != nil {
			return nil, 0, err
		}
		if prof != nil {
			if err := <-prof; err != nil {
				b.log.Warn("agent profile", "err", err)
			}
		}
		w.srvCPU, w.softirq = srv.CPUTime()-srv0, must(harness.SoftirqTime())-soft0
		agent1, _ := cpuOf(agentPid)
		w.agentCPU = agent1 - agent0
		if agentPid != 0 {
			progsAfter, _ := harness.ProgStats(agentPid)
			w.progs = harness.DiffProgStats(progsBefore, progsAfter)
		}
		if w.lat, err = b.awloadRun(ctx, srv.Addr, path, b.cfg.latConns, rate); err != nil {
			return nil, 0, err
		}
		if hold1 := b.holdCounters(); hold1 != nil && hold0 != nil {
			w.held = hold1["hold_held"] - hold0["hold_held"]
			w.timedOut = hold1["hold_timed_out"] - hold0["hold_timed_out"]
			w.queueFull = hold1["hold_queue_full"] - hold0["hold_queue_full"]
			for _, k := range []string{"capture_chunks_lost", "tls_chunks_lost"} {
				w.lost += hold1[k] - hold0[k]
			}
			if w.lost > 0 {
				b.log.Warn("chunk events lost (ring buffer full)", "server", srv.Name, "lost", w.lost)
			}
		}
		if b.cfg.verbose {
			fmt.Printf("  %s %-8s sat %8.0f rps p50 %5dus p99 %6dus | rate p50 %6dus p99 %7dus (svc %d/%d, late %d) | cpu/req srv %.1fus agent %.1fus softirq %.1fus bpf %.0fns\n",
				srv.Name, ab(attached), w.sat.RPS, w.sat.P50Us, w.sat.P99Us, w.lat.P50Us, w.lat.P99Us,
				w.lat.SvcP50Us, w.lat.SvcP99Us, w.lat.LateP50, w.perReq(w.srvCPU), w.perReq(w.agentCPU), w.perReq(w.softirq), w.bpfNsPerReq())
		}
		ws = append(ws, w)
	}
	if err := b.setAgent(false); err != nil {
		return nil, 0, err
	}
	return ws, cal.RPS, nil
}

func pct(n, of uint64) float64 {
	if of == 0 {
		return 0
	}
	return 100 * float64(n) / float64(of)
}

// holdCounters reads the agent's hold point counters (nil without an
// agent).
func (b *bench) holdCounters() map[string]uint64 {
	if b.agent == nil {
		return nil
	}
	var st struct {
		Counters map[string]harness.U64 `json:"counters"`
	}
	if err := b.agent.GetJSON("/v1/status", &st); err != nil {
		return nil
	}
	out := map[string]uint64{}
	for k, v := range st.Counters {
		out[k] = uint64(v)
	}
	return out
}

// pinAway keeps pid's threads off the generator's CPU (-pin).
func (b *bench) pinAway(pid int) {
	n := runtime.NumCPU()
	if !b.cfg.pin || n < 2 {
		return
	}
	cpus := "0"
	if n > 2 {
		cpus = fmt.Sprintf("0-%d", n-2)
	}
	if out, err := exec.Command("taskset", "-a", "-p", "-c", cpus, fmt.Sprint(pid)).CombinedOutput(); err != nil {
		b.log.Warn("taskset", "pid", pid, "err", err, "out", string(out))
	}
}

// profileAgent saves a CPU profile of the running agent over d (its
// --pprof endpoint) to <server>-<profile>.
func (b *bench) profileAgent(server string, d time.Duration) error {
	return b.fetchProfile("profile", b.cfg.profile, server, d)
}

// fetchProfile saves /debug/pprof/<kind> of the running agent over d to
// <server>-<file>.
func (b *bench) fetchProfile(kind, file, server string, d time.Duration) error {
	out := filepath.Join(filepath.Dir(file), server+"-"+filepath.Base(file))
	if err := b.agent.Pprof(kind, d, out); err != nil {
		return err
	}
	fmt.Printf("agent %s: %s\n", kind, out)
	return nil
}

func cpuOf(pid int) (time.Duration, error) {
	if pid == 0 {
		return 0, errors.New("no process")
	}
	return harness.CPUTime(pid)
}

func must(d time.Duration, _ error) time.Duration { return d }

func ab(attached bool) string {
	if attached {
		return "B(agent)"
	}
	return "A(none)"
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// summaryRow is one line of the final table: the columns.
type summaryRow struct {
	name                    string
	satA, satRatio, satSprd float64
	p99Ratio                float64
	agentUs, bpfUs          float64
	totalAUs, totalBUs      float64
	lost                    uint64 // chunk events lost over the B windows
}

// abMedians returns the A and B medians of get over ws and the A spread
// ((max-min)/median of the A windows).
func abMedians(ws []window, get func(window) float64) (a, b, spread float64) {
	var av, bv []float64
	for _, w := range ws {
		if w.attached {
			bv = append(bv, get(w))
		} else {
			av = append(av, get(w))
		}
	}
	a, b = median(av), median(bv)
	if len(av) > 1 && a > 0 {
		spread = (slices.Max(av) - slices.Min(av)) / a
	}
	return a, b, spread
}

// printSummary prints every measured target in one table, in the shape
// of issue #8's (markdown, to paste into the README).
func printSummary(rows []summaryRow, cfg config) {
	if len(rows) == 0 {
		return
	}
	pin := ""
	if cfg.pin {
		pin = ", generator pinned to its own CPU (-pin)"
	}
	fmt.Printf("\n== summary: B/A = agent running / stopped, medians of %d rounds A B B A, %v windows%s\n\n", cfg.rounds, cfg.window, pin)
	fmt.Println("| server | saturation throughput B/A (A spread) | fixed-rate p99 B/A | agent CPU / req | BPF / req | server+agent+softirq CPU / req (A → B) | events lost |")
	fmt.Println("|---|---|---|---|---|---|---|")
	for _, r := range rows {
		fmt.Printf("| %s | %s (%.0f %%) | %s | %.1f µs | %.1f µs | %.1f → %.1f µs | %d |\n", r.name, fmtRatio(r.satRatio), 100*r.satSprd,
			fmtRatio(r.p99Ratio), r.agentUs, r.bpfUs, r.totalAUs, r.totalBUs, r.lost)
	}
	fmt.Println("\n(BPF / req is the agent's programs' own run time from kernel.bpf_stats_enabled; the uprobe traps themselves are in the server's CPU. Events lost: chunk events dropped on a full ring buffer during the B windows; a row that lost events measured an agent that did not see all the traffic.)")
}

func (b *bench) report(name string, maxRPS float64, ws []window) summaryRow {
	row := summaryRow{name: name}
	var satB, p99A, p99B float64
	row.satA, satB, row.satSprd = abMedians(ws, func(w window) float64 { return w.sat.RPS })
	row.satRatio = ratio(satB, row.satA)
	p99A, p99B, _ = abMedians(ws, func(w window) float64 { return float64(w.lat.P99Us) })
	row.p99Ratio = ratio(p99B, p99A)
	_, row.agentUs, _ = abMedians(ws, func(w window) float64 { return w.perReq(w.agentCPU) })
	_, row.bpfUs, _ = abMedians(ws, func(w window) float64 { return w.bpfNsPerReq() / 1000 })
	row.totalAUs, row.totalBUs, _ = abMedians(ws, func(w window) float64 { return w.perReq(w.srvCPU + w.agentCPU + w.softirq) })
	for _, w := range ws {
		row.lost += w.lost
	}
	type metric struct {
		name string
		get  func(window) float64
	}
	metrics := []metric{
		{"saturation rps", func(w window) float64 { return w.sat.RPS }},
		{"saturation p50 us", func(w window) float64 { return float64(w.sat.P50Us) }},
		{"saturation p99 us", func(w window) float64 { return float64(w.sat.P99Us) }},
		{"fixed-rate p50 us", func(w window) float64 { return float64(w.lat.P50Us) }},
		{"fixed-rate p99 us", func(w window) float64 { return float64(w.lat.P99Us) }},
		{"fixed-rate svc p50 us", func(w window) float64 { return float64(w.lat.SvcP50Us) }},
		{"fixed-rate svc p99 us", func(w window) float64 { return float64(w.lat.SvcP99Us) }},
		{"generator late p50 us", func(w window) float64 { return float64(w.lat.LateP50) }},
		{"cpu/req server us", func(w window) float64 { return w.perReq(w.srvCPU) }},
		{"cpu/req agent us", func(w window) float64 { return w.perReq(w.agentCPU) }},
		{"cpu/req softirq us", func(w window) float64 { return w.perReq(w.softirq) }},
		{"cpu/req total us", func(w window) float64 { return w.perReq(w.srvCPU + w.agentCPU + w.softirq) }},
		{"bpf ns/req", func(w window) float64 { return w.bpfNsPerReq() }},
		{"chunk events lost", func(w window) float64 { return float64(w.lost) }},
	}
	if b.cfg.mode == "protect" {
		metrics = append(metrics,
			metric{"held segments", func(w window) float64 { return float64(w.held) }},
			metric{"held: timed out %", func(w window) float64 { return pct(w.timedOut, w.held) }},
			metric{"held: queue full %", func(w window) float64 { return pct(w.queueFull, w.held) }})
	}
	fmt.Printf("\n== %s: max %.0f rps without agent, fixed rate %.0f rps (%.0f%%), %d x %v windows, order %s\n",
		name, maxRPS, maxRPS*b.cfg.frac, b.cfg.frac*100, len(ws), b.cfg.window, order(ws))
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	// A spread (max-min over median of the A windows) is the noise floor: a
	// B/A ratio inside it is not a measured effect.
	fmt.Fprintln(tw, "metric\tA median\tB median\tB/A\tA spread\t")
	hasB := slices.ContainsFunc(ws, func(w window) bool { return w.attached })
	for _, m := range metrics {
		ma, mb, sp := abMedians(ws, m.get)
		r, bs := "-", "-"
		if hasB {
			bs = fmt.Sprintf("%.1f", mb)
			if ma > 0 {
				r = fmt.Sprintf("%.3f", mb/ma)
			}
		}
		spread := "-"
		if sp > 0 || ma > 0 {
			spread = fmt.Sprintf("%.0f%%", sp*100)
		}
		fmt.Fprintf(tw, "%s\t%.1f\t%s\t%s\t%s\t\n", m.name, ma, bs, r, spread)
	}
	_ = tw.Flush()
	// Per-program in-kernel cost, summed over the B windows.
	per := map[string]*harness.ProgDelta{}
	for _, w := range ws {
		for _, p := range w.progs {
			k := p.Type + "/" + p.Name
			if per[k] == nil {
				per[k] = &harness.ProgDelta{Name: p.Name, Type: p.Type}
			}
			per[k].Runs += p.Runs
			per[k].TimeNs += p.TimeNs
		}
	}
	if len(per) > 0 {
		keys := make([]string, 0, len(per))
		for k := range per {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Println("  BPF programs of the agent during saturation windows (kernel.bpf_stats_enabled):")
		for _, k := range keys {
			if p := per[k]; p.Runs > 0 {
				fmt.Printf("    %-40s runs %10d  %8.0f ns/run\n", k, p.Runs, p.NsPerRun())
			}
		}
	}
	return row
}

func order(ws []window) string {
	var s []string
	for _, w := range ws {
		if w.attached {
			s = append(s, "B")
		} else {
			s = append(s, "A")
		}
	}
	return strings.Join(s, "")
}

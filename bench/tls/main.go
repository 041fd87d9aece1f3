// Command tls measures what reading TLS plaintext with uprobes costs the
// servers: wrk over HTTPS against nginx (shared libssl) and the stripped Go
// TLS server in the e2e topology, in windows with the agent stopped (A) and
// running (B), A B B A per round. Reported per server: throughput and p99
// of A and B (medians), their ratios, the A spread (noise floor) and the
// agent's CPU time per 100k requests. Needs root and wrk.
//
//	go run ./bench/tls                 # nginx and goapi, 2 rounds, 3 s windows, ~70 s
//	go run ./bench/tls -rounds 1 -servers nginx -v
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/apiwarden/apiwarden/e2e/harness"
)

type config struct {
	window  time.Duration
	rounds  int
	conns   int
	servers string
	agent   string
	noAgent bool
	verbose bool
	profile string
}

// window is one wrk run.
type window struct {
	agent    bool
	rps      float64
	requests float64
	p50, p99 time.Duration
	agentCPU time.Duration // CPU the agent used during the window
	errors   int
}

type target struct {
	name string
	url  string
	srv  *harness.Server
}

type bench struct {
	cfg    config
	log    *slog.Logger
	dir    string
	topo   *harness.Topology
	certs  harness.Certs
	agent  *harness.Agent
	agentN int
}

func main() {
	var cfg config
	flag.DurationVar(&cfg.window, "window", 3*time.Second, "length of each wrk run")
	flag.IntVar(&cfg.rounds, "rounds", 2, "A B B A rounds")
	flag.IntVar(&cfg.conns, "conns", 16, "wrk connections (one thread)")
	flag.StringVar(&cfg.servers, "servers", "nginx,goapi", "servers to measure: nginx, goapi")
	flag.StringVar(&cfg.agent, "agent", "", "apiwarden binary (default: build ./cmd/apiwarden)")
	flag.BoolVar(&cfg.noAgent, "no-agent", false, "run only A windows (harness check)")
	flag.BoolVar(&cfg.verbose, "v", false, "print every window")
	flag.StringVar(&cfg.profile, "profile", "", "write a CPU profile of the agent during its first B window of each server to FILE.SERVER")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "bench/tls: needs root (network namespaces, BPF)")
		os.Exit(2)
	}
	if _, err := exec.LookPath("wrk"); err != nil {
		fmt.Fprintln(os.Stderr, "bench/tls: needs wrk in PATH")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b := &bench{cfg: cfg, log: log.With("component", "bench")}
	err := b.run(ctx)
	b.close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/tls:", err)
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
	if b.dir != "" {
		_ = os.RemoveAll(b.dir)
	}
}

func (b *bench) run(ctx context.Context) error {
	t0 := time.Now()
	var err error
	if b.dir, err = os.MkdirTemp("", "awe2e-tlsbench-"); err != nil {
		return err
	}
	goapi, err := harness.BuildStrippedGoAPI(ctx, b.dir)
	if err != nil {
		return err
	}
	if !b.cfg.noAgent && b.cfg.agent == "" {
		if b.cfg.agent, err = harness.BuildAgent(ctx, b.dir); err != nil {
			b.log.Warn("agent does not build; running A windows only", "err", err)
			b.cfg.noAgent = true
		}
	}
	harness.CleanupStale(b.log)
	if b.topo, err = harness.NewTopology(harness.TopologyConfig{}, b.log); err != nil {
		return err
	}
	if b.certs, err = harness.GenCerts(b.dir, b.topo.SrvIP); err != nil {
		return err
	}
	var targets []target
	for _, name := range strings.Split(b.cfg.servers, ",") {
		var s *harness.Server
		var path string
		switch strings.TrimSpace(name) {
		case "nginx":
			s, err = b.topo.StartNginxTLS(b.dir, b.certs, false)
			path = "/ping"
		case "goapi":
			s, err = b.topo.StartGoAPITLS(goapi, b.dir, b.certs, false)
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
		targets = append(targets, target{name: name, url: "https://" + s.Addr + path, srv: s})
	}
	res := map[string][]window{}
	profiled := map[string]bool{}
	for i, on := range b.schedule() {
		if err := b.setAgent(on); err != nil {
			return err
		}
		for _, t := range targets {
			var prof chan error
			if on && b.cfg.profile != "" && !profiled[t.name] {
				profiled[t.name] = true
				prof = make(chan error, 1)
				go func() { prof <- b.agent.Pprof("profile", b.cfg.window-time.Second, b.cfg.profile+"."+t.name) }()
			}
			w, err := b.wrk(ctx, t)
			if prof != nil {
				if perr := <-prof; perr != nil {
					b.log.Warn("profile", "err", perr)
				}
			}
			if err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			w.agent = on
			res[t.name] = append(res[t.name], w)
			if b.cfg.verbose {
				fmt.Printf("window %d %-6s %s: %8.0f req/s p50 %v p99 %v agent cpu %v errors %d\n", i, t.name, ab(on),
					w.rps, w.p50, w.p99, w.agentCPU, w.errors)
			}
		}
	}
	if err := b.setAgent(false); err != nil {
		return err
	}
	fmt.Printf("\nTLS capture cost: wrk -t1 -c%d -d%v over HTTPS, %d rounds A B B A (A = agent stopped, B = running), medians\n",
		b.cfg.conns, b.cfg.window, b.cfg.rounds)
	fmt.Printf("%-7s %10s %10s %6s %7s %9s %9s %6s %7s %14s\n", "server", "A req/s", "B req/s", "B/A", "A sprd",
		"A p99", "B p99", "B/A", "A sprd", "agent CPU/100k")
	for _, t := range targets {
		report(t.name, res[t.name])
	}
	fmt.Printf("(A sprd: (max-min)/median of the A windows, the noise floor; only the server is probed: process scope, wrk is a client)\n")
	fmt.Printf("total %v\n", time.Since(t0).Round(time.Second))
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

func ab(on bool) string {
	if on {
		return "B"
	}
	return "A"
}

// setAgent starts or stops the agent; a running agent stays for B B.
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
	if b.cfg.profile != "" {
		extra = append(extra, "--pprof")
	}
	a, err := harness.StartAgent(harness.AgentConfig{Bin: b.cfg.agent, Ifaces: b.topo.Ifaces(), Extra: extra,
		DataDir: filepath.Join(b.dir, "data"), LogFile: filepath.Join(b.dir, fmt.Sprintf("agent-%d.log", b.agentN))})
	if err != nil {
		return err
	}
	if err := a.WaitReady(30 * time.Second); err != nil {
		a.Kill()
		return err
	}
	b.agent = a
	if err := a.WaitAttached(b.topo.Ifaces(), 10*time.Second); err != nil {
		return err
	}
	time.Sleep(300 * time.Millisecond) // let start-up work (process scan) settle
	return nil
}

var (
	reqsRE = regexp.MustCompile(`(\d+) requests in`)
	rpsRE  = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	latRE  = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$`)
	errRE  = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)|Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

// wrk runs one window in the client namespace.
func (b *bench) wrk(ctx context.Context, t target) (window, error) {
	var w window
	var cpu0 time.Duration
	if b.agent != nil {
		cpu0, _ = harness.CPUTime(b.agent.Pid())
	}
	secs := max(1, int(b.cfg.window.Round(time.Second)/time.Second))
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", b.topo.CliNS, "wrk", "-t1",
		"-c"+strconv.Itoa(b.cfg.conns), fmt.Sprintf("-d%ds", secs), "--latency", t.url).CombinedOutput()
	if err != nil {
		return w, fmt.Errorf("wrk: %w: %s", err, out)
	}
	if b.agent != nil {
		cpu1, _ := harness.CPUTime(b.agent.Pid())
		w.agentCPU = cpu1 - cpu0
		if b.agent.Exited() {
			return w, errors.New("agent died during the window")
		}
	}
	s := string(out)
	m := rpsRE.FindStringSubmatch(s)
	n := reqsRE.FindStringSubmatch(s)
	if m == nil || n == nil {
		return w, fmt.Errorf("wrk output: %s", s)
	}
	w.rps, _ = strconv.ParseFloat(m[1], 64)
	w.requests, _ = strconv.ParseFloat(n[1], 64)
	for _, l := range latRE.FindAllStringSubmatch(s, -1) {
		v, _ := strconv.ParseFloat(l[2], 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[l[3]]
		d := time.Duration(v * float64(unit))
		if l[1] == "50" {
			w.p50 = d
		} else {
			w.p99 = d
		}
	}
	for _, e := range errRE.FindAllStringSubmatch(s, -1) {
		for _, f := range e[1:] {
			k, _ := strconv.Atoi(f)
			w.errors += k
		}
	}
	if w.errors > 0 {
		b.log.Warn("wrk errors", "server", t.name, "errors", w.errors)
	}
	return w, nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func spread(v []float64) float64 {
	if len(v) < 2 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return (s[len(s)-1] - s[0]) / median(s)
}

func report(name string, ws []window) {
	var aRPS, bRPS, aP99, bP99 []float64
	var cpu time.Duration
	var reqs float64
	for _, w := range ws {
		if w.agent {
			bRPS = append(bRPS, w.rps)
			bP99 = append(bP99, float64(w.p99))
			cpu += w.agentCPU
			reqs += w.requests
		} else {
			aRPS = append(aRPS, w.rps)
			aP99 = append(aP99, float64(w.p99))
		}
	}
	ratio := func(b, a float64) string {
		if a == 0 || b == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", b/a)
	}
	per100k := "-"
	if reqs > 0 {
		per100k = (time.Duration(float64(cpu) * 100000 / reqs)).Round(time.Millisecond).String()
	}
	fmt.Printf("%-7s %10.0f %10.0f %6s %6.0f%% %9v %9v %6s %6.0f%% %14s\n", name,
		median(aRPS), median(bRPS), ratio(median(bRPS), median(aRPS)), 100*spread(aRPS),
		time.Duration(median(aP99)).Round(time.Microsecond), time.Duration(median(bP99)).Round(time.Microsecond),
		ratio(median(bP99), median(aP99)), 100*spread(aP99), per100k)
}

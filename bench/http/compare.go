package main

import (
	"context"
	"fmt"
	"io"

	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"

	"strings"
	"time"

	"github.com/apiwarden/apiwarden/e2e/harness"
)

// The comparison (-modes): one server, measured in turn with no agent (a),
// the agent in monitor mode (b), in protect mode (c: every request held at
// the hold point until the detector judged it) and behind a Coraza + CRS
// inline proxy without the agent (d), each with the same four phases:
// saturation over keep-alive connections, saturation with a new connection
// per request, and the same two at a fixed open-loop rate of 50 % of (a)'s
// saturation. Without -quick the baseline runs again at the end, and the
// difference between its two runs is the noise floor of the table.

// Phases of one mode, in order.
const (
	phSatKA = iota
	phSatNC
	phLatKA
	phLatNC
	numPhases
)

var phaseNames = [numPhases]string{"saturation keep-alive", "saturation new-conn", "fixed-rate keep-alive", "fixed-rate new-conn"}

// corazaPort is where the Coraza proxy listens in the server namespace.
const corazaPort = 8090

// loadHost is the Host header of every request: a name, as clients of a
// real API send (CRS scores a numeric Host as an anomaly).
const loadHost = "api.bench.test"

// modeRun is what one mode measured.
type modeRun struct {
	name  string
	phase [numPhases]load
	// own: the fixed-rate phases again at 50 % of this mode's own
	// saturation, when (a)'s rate overloaded it (Coraza).
	own      [numPhases]*load
	ownRate  [numPhases]float64
	srvCPU   [numPhases]float64 // server µs per request (saturation phases)
	extraCPU [numPhases]float64 // agent or proxy µs per request (saturation phases)
	// hold point: counter deltas and stage histograms (deltas) per phase,
	// from the agent's /metrics.
	hold   [numPhases]map[string]float64
	stages [numPhases]map[string][]bucket
	// lifetime HDR stage timings of the agent (/v1/status), at the end.
	status map[string]uint64
	note   string
}

// holdCounters are the hold outcome counters of /metrics
// (apiwarden_hold_<name>_total).
var holdCounters = []string{"held", "allowed", "blocked", "timed_out", "queue_full", "truncated", "unparsed", "verdict_errors"}

// verdict-path stages (agent/hold.go holdStages) shown for plaintext.
var stageNames = []string{"capture_to_judged", "detect", "wait", "verdict_write"}

// compare runs the comparison on one server.
func (b *bench) compare(ctx context.Context, srv *harness.Server, path string) error {
	modes := strings.Split(b.cfg.modes, ",")
	for i := range modes {
		modes[i] = strings.TrimSpace(modes[i])
		switch modes[i] {
		case "none", "monitor", "protect", "coraza":
		default:
			return fmt.Errorf("unknown mode %q (none, monitor, protect, coraza)", modes[i])
		}
	}
	if modes[0] != "none" {
		modes = append([]string{"none"}, modes...) // the baseline sets the rates
	}
	if !b.cfg.quick && len(modes) > 1 {
		modes = append(modes, "none")
	}
	for _, pid := range srv.CPUPids {
		b.pinAway(pid)
	}
	// Clients close new connections after the server's FIN, so the
	// client holds no TIME_WAIT; a wide port range covers the rest.
	if out, err := runOut("ip", "netns", "exec", b.topo.CliNS, "sysctl", "-qw", "net.ipv4.ip_local_port_range=1024 65000"); err != nil {
		b.log.Warn("client port range", "err", err, "out", out)
	}
	// Warm-up (page cache, server's JIT-free but GC-sized heap).
	if _, err := b.load(ctx, srv.Addr, path, b.cfg.conns, 0, false, b.cfg.window/2); err != nil {
		return err
	}
	start := time.Now()
	load0 := loadAvg()
	var rates [numPhases]float64
	var runs []*modeRun
	for i, m := range modes {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r, err := b.runMode(ctx, m, srv, path, &rates, i == 0)
		if err != nil {
			return fmt.Errorf("mode %s: %w", m, err)
		}
		runs = append(runs, r)
		b.log.Info("mode done", "mode", m, "ka_rps", int(r.phase[phSatKA].RPS), "nc_rps", int(r.phase[phSatNC].RPS),
			"ka_p50_us", r.phase[phLatKA].P50Us, "ka_p99_us", r.phase[phLatKA].P99Us)
	}
	fmt.Print(b.compareReport(srv.Name, runs, rates, time.Since(start)))
	sched := fmt.Sprintf("nice %d", b.cfg.nice)
	if b.cfg.rt > 0 {
		sched = fmt.Sprintf("SCHED_RR priority %d", b.cfg.rt)
	}
	fmt.Printf("\nMachine: %d CPUs, load average %s at the start, %s at the end (other work on the machine shows here); benchmark at %s.\n",
		runtime.NumCPU(), load0, loadAvg(), sched)
	return nil
}

// runMode measures one mode; the first (baseline) run sets rates.
func (b *bench) runMode(ctx context.Context, mode string, srv *harness.Server, path string, rates *[numPhases]float64, first bool) (*modeRun, error) {
	r := &modeRun{name: mode}
	addr := srv.Addr
	var extraPid int
	switch mode {
	case "none":
		if err := b.setAgent(false); err != nil {
			return nil, err
		}
	case "monitor", "protect":
		b.cfg.mode = mode
		if err := b.setAgent(false); err != nil {
			return nil, err
		}
		if err := b.setAgent(true); err != nil {
			return nil, err
		}
		defer func() { _ = b.setAgent(false) }()
		extraPid = b.agent.Pid()
		if err := b.warmAgent(ctx, srv.Addr, path, mode == "protect"); err != nil {
			r.note = err.Error()
			b.log.Warn("warm-up", "mode", mode, "err", err)
		}
	case "coraza":
		if err := b.setAgent(false); err != nil {
			return nil, err
		}
		p, paddr, err := b.startCoraza(srv)
		if err != nil {
			return nil, err
		}
		defer p.Kill()
		extraPid = p.Pid()
		addr = paddr
		if _, err := b.load(ctx, addr, path, b.cfg.conns, 0, false, b.cfg.window/2); err != nil {
			return nil, err
		}
	}
	for ph := 0; ph < numPhases; ph++ {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		newConn := ph == phSatNC || ph == phLatNC
		conns, rate := b.cfg.conns, 0.0
		if ph == phLatKA || ph == phLatNC {
			conns, rate = b.cfg.latConns, rates[ph]
		}
		before := b.scrape()
		srv0 := srv.CPUTime()
		ex0, _ := cpuOf(extraPid)
		var prof, trace chan error
		if mode == "protect" && ph == phLatKA && b.cfg.profile != "" {
			prof = make(chan error, 1)
			go func() { prof <- b.profileAgent(srv.Name+"-protect", b.cfg.window) }()
		}
		if mode == "protect" && ph == phLatKA && b.cfg.trace != "" {
			trace = make(chan error, 1)
			go func() {
				time.Sleep(b.cfg.window / 4)
				trace <- b.fetchProfile("trace", b.cfg.trace, srv.Name+"-protect", time.Second)
			}()
		}
		l, err := b.load(ctx, addr, path, conns, rate, newConn, b.cfg.window)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", phaseNames[ph], err)
		}
		for _, ch := range []chan error{prof, trace} {
			if ch == nil {
				continue
			}
			if err := <-ch; err != nil {
				b.log.Warn("agent profile", "err", err)
			}
		}
		r.phase[ph] = l
		if l.Requests > 0 {
			r.srvCPU[ph] = float64((srv.CPUTime() - srv0).Microseconds()) / float64(l.Requests)
			if extraPid != 0 {
				ex1, _ := cpuOf(extraPid)
				r.extraCPU[ph] = float64((ex1 - ex0).Microseconds()) / float64(l.Requests)
			}
		}
		if before != nil {
			after := b.scrape()
			r.hold[ph], r.stages[ph] = holdDelta(before, after)
		}
		if first && rate == 0 {
			// The baseline's saturation sets the fixed rate of the
			// matching fixed-rate phase of every mode.
			rates[ph+2] = l.RPS * b.cfg.frac
		}
		// A mode that cannot carry (a)'s rate comfortably (it is
		// above 80 % of the mode's own saturation, or the generator
		// left requests unsent) is measured again at 50 % of its own
		// saturation: at (a)'s rate its latency is queueing.
		if rate > 0 {
			sat := r.phase[ph-2].RPS
			if sat > 0 && (sat*0.8 < rate || l.Missed > l.Requests/20) {
				own := sat * b.cfg.frac
				ol, err := b.load(ctx, addr, path, conns, own, newConn, b.cfg.window)
				if err != nil {
					return nil, fmt.Errorf("%s at own rate: %w", phaseNames[ph], err)
				}
				r.own[ph], r.ownRate[ph] = &ol, own
			}
		}
		if b.cfg.verbose {
			fmt.Printf("  %-8s %-22s rps %8.0f p50 %6dus p90 %6dus p99 %7dus errors %d missed %d\n",
				mode, phaseNames[ph], l.RPS, l.P50Us, l.P90Us, l.P99Us, l.Errors, l.Missed)
		}
	}
	if b.agent != nil {
		var st struct {
			Counters map[string]harness.U64 `json:"counters"`
		}
		if err := b.agent.GetJSON("/v1/status", &st); err == nil {
			r.status = map[string]uint64{}
			for k, v := range st.Counters {
				if strings.HasPrefix(k, "hold_") {
					r.status[k] = uint64(v)
				}
			}
		}
	}
	return r, nil
}

// warmAgent sends a little traffic until the agent has the server in its
// inventory and, in protect mode, holds its requests (the held ports are
// set once the agent saw the server's listening socket).
func (b *bench) warmAgent(ctx context.Context, addr, path string, protect bool) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := b.load(ctx, addr, path, 4, 0, false, 300*time.Millisecond); err != nil {
			return err
		}
		if !protect {
			return nil
		}
		if s := b.scrape(); s != nil && s.value("apiwarden_hold_held_total", nil) > 0 {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("protect mode held nothing after 20 s: the table's protect row is not a hold measurement")
		}
	}
}

// startCoraza runs this binary's -coraza-proxy in the server namespace in
// front of srv, and checks that it blocks an attack and passes the API.
func (b *bench) startCoraza(srv *harness.Server) (*harness.Proc, string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	p, err := harness.StartInNS(b.topo.SrvNS, "coraza-proxy", filepath.Join(b.dir, "coraza.out"), nil,
		self, "-coraza-proxy", fmt.Sprintf(":%d", corazaPort), "-upstream", fmt.Sprintf("127.0.0.1:%d", srv.Port),
		"-pl", fmt.Sprint(b.cfg.pl))
	if err != nil {
		return nil, "", err
	}
	addr := fmt.Sprintf("%s:%d", b.topo.SrvIP, corazaPort)
	if err := p.WaitTCP(addr, 30*time.Second); err != nil {
		p.Kill()
		return nil, "", fmt.Errorf("coraza proxy: %w: %s", err, p.Output())
	}
	b.pinAway(p.Pid())
	// The proxy must block (CRS PL1, anomaly threshold 5) and pass.
	hc := &http.Client{Timeout: 5 * time.Second}
	check := func(q string, want int) error {
		u := fmt.Sprintf("http://%s%s", addr, b.path)
		if q != "" {
			u += "?q=" + url.QueryEscape(q)
		}
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		req.Host = loadHost
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			return fmt.Errorf("coraza proxy answered %d to %q, want %d", resp.StatusCode, q, want)
		}
		return nil
	}
	for _, c := range []struct {
		q    string
		want int
	}{{"", 200}, {"1' UNION SELECT password FROM users--", 403}, {"<script>alert(1)</script>", 403}} {
		if err := check(c.q, c.want); err != nil {
			p.Kill()
			return nil, "", err
		}
	}
	b.log.Info("coraza proxy up", "addr", addr, "pl", b.cfg.pl, "blocks", "sqli,xss")
	return p, addr, nil
}

// loadAvg is the 1-minute load average.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

// scrape reads the agent's /metrics (nil without an agent).
func (b *bench) scrape() promScrape {
	if b.agent == nil {
		return nil
	}
	resp, err := http.Get(b.agent.Base + "/metrics")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil
	}
	return parseProm(string(body))
}

// holdDelta is what the hold point did between two scrapes.
func holdDelta(before, after promScrape) (map[string]float64, map[string][]bucket) {
	c := map[string]float64{}
	for _, n := range holdCounters {
		name := "apiwarden_hold_" + n + "_total"
		c[n] = after.value(name, nil) - before.value(name, nil)
	}
	st := map[string][]bucket{}
	for _, s := range stageNames {
		m := map[string]string{"stage": s}
		d := diffBuckets(before.histogram("apiwarden_hold_stage_seconds", m), after.histogram("apiwarden_hold_stage_seconds", m))
		if len(d) > 0 && d[len(d)-1].count > 0 {
			st[s] = d
		}
	}
	return c, st
}

// baseline averages the "none" runs phase by phase.
type baseline struct {
	rps, p50, p90, p99 [numPhases]float64
	svc50, svc99       [numPhases]float64 // service time from the actual send
	// spread: the largest difference between two baseline runs, per phase
	// (throughput as a fraction, p50/p99 in µs).
	rpsSpread, p50Spread, p99Spread [numPhases]float64
	runs                            int
}

func baselineOf(runs []*modeRun) baseline {
	var bl baseline
	var n [numPhases][]load
	for _, r := range runs {
		if r.name != "none" {
			continue
		}
		bl.runs++
		for ph := range numPhases {
			n[ph] = append(n[ph], r.phase[ph])
		}
	}
	for ph := range numPhases {
		ls := n[ph]
		if len(ls) == 0 {
			continue
		}
		var lo, hi [4]float64
		for i, l := range ls {
			v := [4]float64{l.RPS, float64(l.P50Us), float64(l.P90Us), float64(l.P99Us)}
			for k := range v {
				if i == 0 || v[k] < lo[k] {
					lo[k] = v[k]
				}
				if i == 0 || v[k] > hi[k] {
					hi[k] = v[k]
				}
			}
			bl.rps[ph] += v[0] / float64(len(ls))
			bl.p50[ph] += v[1] / float64(len(ls))
			bl.p90[ph] += v[2] / float64(len(ls))
			bl.p99[ph] += v[3] / float64(len(ls))
			bl.svc50[ph] += float64(l.SvcP50Us) / float64(len(ls))
			bl.svc99[ph] += float64(l.SvcP99Us) / float64(len(ls))
		}
		if bl.rps[ph] > 0 {
			bl.rpsSpread[ph] = (hi[0] - lo[0]) / bl.rps[ph]
		}
		bl.p50Spread[ph], bl.p99Spread[ph] = hi[1]-lo[1], hi[3]-lo[3]
	}
	return bl
}

var modeLabels = map[string]string{
	"none":    "(a) no agent",
	"monitor": "(b) agent, monitor mode",
	"protect": "(c) agent, protect mode (hold point)",
	"coraza":  "(d) Coraza + CRS proxy, no agent",
}

// compareReport renders the comparison as markdown.
func (b *bench) compareReport(server string, runs []*modeRun, rates [numPhases]float64, took time.Duration) string {
	bl := baselineOf(runs)
	var o strings.Builder
	fmt.Fprintf(&o, "\n## %s: %s, %d x %v per phase, %d saturation / %d fixed-rate connections (run took %v)\n\n",
		server, strings.Join(modeNames(runs), " → "), numPhases, b.cfg.window, b.cfg.conns, b.cfg.latConns, took.Round(time.Second))
	if bl.runs > 1 {
		fmt.Fprintf(&o, "Baseline (a) is the mean of %d no-agent runs (first and last); their spread is the noise floor: "+
			"throughput %.0f %% / %.0f %%, fixed-rate p50 %s / %s µs, p99 %s / %s µs (keep-alive / new-conn).\n\n",
			bl.runs, bl.rpsSpread[phSatKA]*100, bl.rpsSpread[phSatNC]*100,
			fmtUs(bl.p50Spread[phLatKA]), fmtUs(bl.p50Spread[phLatNC]), fmtUs(bl.p99Spread[phLatKA]), fmtUs(bl.p99Spread[phLatNC]))
	}
	o.WriteString("### Saturation throughput (closed loop)\n\n")
	var rows [][]string
	for i, r := range runs {
		extra := "-"
		if r.name == "monitor" || r.name == "protect" || r.name == "coraza" {
			extra = fmt.Sprintf("%s / %s", fmtUs(r.extraCPU[phSatKA]), fmtUs(r.extraCPU[phSatNC]))
		}
		rows = append(rows, []string{runLabel(runs, i),
			fmt.Sprintf("%.0f", r.phase[phSatKA].RPS), fmtRatio(ratio(r.phase[phSatKA].RPS, bl.rps[phSatKA])),
			fmt.Sprintf("%.0f", r.phase[phSatNC].RPS), fmtRatio(ratio(r.phase[phSatNC].RPS, bl.rps[phSatNC])),
			fmt.Sprintf("%s / %s", fmtUs(r.srvCPU[phSatKA]), fmtUs(r.srvCPU[phSatNC])), extra,
			fmt.Sprint(r.phase[phSatKA].Errors + r.phase[phSatNC].Errors)})
	}
	o.WriteString(markdownTable([]string{"mode", "keep-alive rps", "vs (a)", "new-conn rps", "vs (a)",
		"server CPU µs/req (ka / nc)", "agent or proxy CPU µs/req (ka / nc)", "errors"}, rows))
	for _, ph := range []int{phLatKA, phLatNC} {
		fmt.Fprintf(&o, "\n### Latency at a fixed rate, %s: %.0f req/s (%.0f %% of (a)'s saturation), open loop, from the scheduled send time\n\n",
			strings.TrimPrefix(phaseNames[ph], "fixed-rate "), rates[ph], b.cfg.frac*100)
		rows = rows[:0]
		for i, r := range runs {
			l := r.phase[ph]
			rows = append(rows, latRow(runLabel(runs, i), l, bl, ph))
			if r.own[ph] != nil {
				rows = append(rows, latRow(fmt.Sprintf("%s at %.0f req/s (50 %% of its own saturation)", r.name, r.ownRate[ph]), *r.own[ph], bl, ph))
			}
		}
		o.WriteString(markdownTable([]string{"mode", "p50 µs", "p90 µs", "p99 µs", "added p50", "added p99",
			"p50 vs (a)", "p99 vs (a)", "svc p50 / p99 µs", "added svc p50 / p99", "errors", "unsent"}, rows))
	}
	for _, r := range runs {
		if r.name != "protect" && r.name != "monitor" {
			continue
		}
		o.WriteString(holdReport(r))
	}
	for _, r := range runs {
		if r.note != "" {
			fmt.Fprintf(&o, "\nNote (%s): %s\n", r.name, r.note)
		}
	}
	return o.String()
}

// latRow is one row of a fixed-rate table: latency from the scheduled
// send time (what a client sees, generator lateness included) and service
// time from the actual send ("svc", without the generator's own delays).
func latRow(label string, l load, bl baseline, ph int) []string {
	return []string{label,
		fmt.Sprint(l.P50Us), fmt.Sprint(l.P90Us), fmt.Sprint(l.P99Us),
		fmtSigned(added(float64(l.P50Us), bl.p50[ph])), fmtSigned(added(float64(l.P99Us), bl.p99[ph])),
		fmtRatio(ratio(float64(l.P50Us), bl.p50[ph])), fmtRatio(ratio(float64(l.P99Us), bl.p99[ph])),
		fmt.Sprintf("%d / %d", l.SvcP50Us, l.SvcP99Us),
		fmt.Sprintf("%s / %s", fmtSigned(added(float64(l.SvcP50Us), bl.svc50[ph])), fmtSigned(added(float64(l.SvcP99Us), bl.svc99[ph]))),
		fmt.Sprint(l.Errors), fmt.Sprint(l.Missed)}
}

// holdReport prints the hold outcomes and verdict-path stage timings of an
// agent run.
func holdReport(r *modeRun) string {
	var o strings.Builder
	var rows [][]string
	any := false
	for ph := range numPhases {
		h := r.hold[ph]
		if h == nil {
			continue
		}
		row := []string{phaseNames[ph], fmt.Sprint(r.phase[ph].Requests)}
		for _, n := range holdCounters {
			row = append(row, fmt.Sprintf("%.0f", h[n]))
			if h[n] > 0 {
				any = true
			}
		}
		rows = append(rows, row)
	}
	if len(rows) == 0 {
		return ""
	}
	fmt.Fprintf(&o, "\n### %s: hold point outcomes per phase (apiwarden_hold_*_total deltas)\n\n", modeLabels[r.name])
	if !any {
		o.WriteString("Nothing was held (as expected in monitor mode).\n")
	} else {
		o.WriteString(markdownTable(append([]string{"phase", "requests"}, holdCounters...), rows))
	}
	rows = rows[:0]
	for ph := range numPhases {
		for _, s := range stageNames {
			bs := r.stages[ph][s]
			if len(bs) == 0 {
				continue
			}
			rows = append(rows, []string{phaseNames[ph], s, fmt.Sprintf("%.0f", bs[len(bs)-1].count),
				fmtUs(bucketQuantile(0.5, bs) * 1e6), fmtUs(bucketQuantile(0.9, bs) * 1e6), fmtUs(bucketQuantile(0.99, bs) * 1e6)})
		}
	}
	if len(rows) > 0 {
		fmt.Fprintf(&o, "\nVerdict-path stage timings per phase (apiwarden_hold_stage_seconds deltas; buckets double from 1 µs, "+
			"quantiles interpolated inside a bucket, so read them as ±50 %%):\n\n")
		o.WriteString(markdownTable([]string{"phase", "stage", "count", "p50 µs", "p90 µs", "p99 µs"}, rows))
	}
	if len(r.status) > 0 {
		rows = rows[:0]
		for _, s := range stageNames {
			c := r.status["hold_stage_"+s+"_count"]
			if c == 0 {
				continue
			}
			rows = append(rows, []string{s, fmt.Sprint(c),
				fmtUs(float64(r.status["hold_stage_"+s+"_p50_ns"]) / 1e3), fmtUs(float64(r.status["hold_stage_"+s+"_p99_ns"]) / 1e3),
				fmtUs(float64(r.status["hold_stage_"+s+"_max_ns"]) / 1e3)})
		}
		if len(rows) > 0 {
			o.WriteString("\nSame stages over the agent's whole run, exact (HDR histograms of /v1/status, all phases and the warm-up):\n\n")
			o.WriteString(markdownTable([]string{"stage", "count", "p50 µs", "p99 µs", "max µs"}, rows))
		}
	}
	return o.String()
}

func modeNames(runs []*modeRun) []string {
	var s []string
	for _, r := range runs {
		s = append(s, r.name)
	}
	return s
}

// runLabel names run i; a repeated baseline is marked as such.
func runLabel(runs []*modeRun, i int) string {
	l := modeLabels[runs[i].name]
	if runs[i].name == "none" {
		n := 0
		for _, r := range runs[:i] {
			if r.name == "none" {
				n++
			}
		}
		if n > 0 {
			l += ", again (noise)"
		}
	}
	return l
}

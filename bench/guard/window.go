package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// snapshot is every counter a window differences.
type snapshot struct {
	at          time.Time
	cpu         map[int]cpuTimes
	rx          uint64 // host-side attacker veth rx_packets: what reached its ingress
	backlogDrop uint64 // softnet_stat drops: offered but never queued
	srvTx       uint64 // host-side server veth tx_packets: what was forwarded to the server
	dropped     uint64 // the variant's own drop counter
	haveDropped bool
}

func (b *bench) snap(v variant) (snapshot, error) {
	s := snapshot{at: time.Now()}
	stat, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s, fmt.Errorf("read /proc/stat: %w", err)
	}
	if s.cpu, err = parseProcStat(string(stat)); err != nil {
		return s, err
	}
	if s.rx, err = readUint("/sys/class/net/" + b.topo.Att.Host + "/statistics/rx_packets"); err != nil {
		return s, err
	}
	if s.srvTx, err = readUint("/sys/class/net/" + b.topo.Srv.Host + "/statistics/tx_packets"); err != nil {
		return s, err
	}
	softnet, err := os.ReadFile("/proc/net/softnet_stat")
	if err != nil {
		return s, fmt.Errorf("read softnet_stat: %w", err)
	}
	if s.backlogDrop, err = parseSoftnetDrops(string(softnet)); err != nil {
		return s, err
	}
	s.dropped, s.haveDropped = v.Dropped()
	return s, nil
}

// phase is the difference of two snapshots.
type phase struct {
	dt                         time.Duration
	rx, backlogDrop            uint64
	leaked                     uint64 // forwarded to the server: not dropped
	dropped                    uint64
	haveDropped                bool
	softirq, busy, floodCPUBsy uint64 // clock ticks over all CPUs / the flood CPU
}

func diff(a, b snapshot, floodCPU int) phase {
	p := phase{dt: b.at.Sub(a.at), rx: b.rx - a.rx,
		backlogDrop: b.backlogDrop - a.backlogDrop, leaked: b.srvTx - a.srvTx, dropped: b.dropped - a.dropped,
		haveDropped: a.haveDropped && b.haveDropped}
	for n, c := range b.cpu {
		d := c.sub(a.cpu[n])
		p.softirq += d.SoftIRQ
		p.busy += d.busy()
		if n == floodCPU {
			p.floodCPUBsy = d.busy()
		}
	}
	return p
}

func (p phase) pps() float64 { return float64(p.rx) / p.dt.Seconds() }

// leakFrac is the share of the flood that got through to the server; a
// drop variant with a visible share is failing open.
func (p phase) leakFrac() float64 {
	if p.rx == 0 {
		return 0
	}
	return float64(p.leaked) / float64(p.rx)
}

// nsPer spreads ticks of CPU time over the packets that reached the veth.
func (p phase) nsPer(ticks uint64) float64 {
	if p.rx == 0 {
		return 0
	}
	return float64(ticks) * float64(clockTick.Nanoseconds()) / float64(p.rx)
}

// windowResult is one variant's window: the flood alone, then flood + wrk.
type windowResult struct {
	mode      string
	alone     phase
	loaded    phase
	goodput   wrkResult
	floodCPU  int
	countStop bool   // trafgen ended before the window did
	floodLog  string // trafgen's output when it ended early
	wrkErr    string // the client failed: no goodput for this window
}

func (w windowResult) String() string {
	drop := "-"
	if w.alone.haveDropped {
		drop = fmt.Sprintf("%.0f", float64(w.alone.dropped)/w.alone.dt.Seconds())
	}
	s := fmt.Sprintf("rx %8.0f pps (counter %s, leaked %.1f%%, backlog drops %d) softirq %4.0f ns/pkt busy %4.0f ns/pkt (flood cpu%d %4.0f) | with wrk: rx %8.0f pps, goodput %7.0f rps (%d err)",
		w.alone.pps(), drop, 100*w.alone.leakFrac(), w.alone.backlogDrop,
		w.alone.nsPer(w.alone.softirq), w.alone.nsPer(w.alone.busy), w.floodCPU, w.alone.nsPer(w.alone.floodCPUBsy),
		w.loaded.pps(), w.goodput.RPS, w.goodput.Errors)
	if w.wrkErr != "" {
		s += " [wrk failed: " + w.wrkErr + "]"
	}
	if w.countStop {
		s += " [flood ended early, wrk phase partly unflooded: " + w.floodLog + "]"
	}
	return s
}

// window runs the flood against one variant: warm-up, the flood alone, the
// flood with the legitimate client. trafgen is bounded by a packet count
// and by a deadline, whichever comes first.
func (b *bench) window(ctx context.Context, v variant, srvAddr string) (w windowResult, err error) {
	if err := b.topo.forward(); err != nil {
		return w, err
	}
	if w.mode, err = v.Attach(); err != nil {
		return w, err
	}
	defer func() {
		if derr := v.Detach(); derr != nil {
			err = errors.Join(err, fmt.Errorf("detach %s: %w", v.Name(), derr))
		}
	}()
	total := b.cfg.warmup + 2*b.cfg.window + 10*time.Second // wrk start-up and slack on a loaded machine
	limit := uint64(float64(b.cfg.maxPPS) * total.Seconds())
	tctx, cancel := context.WithTimeout(ctx, total)
	defer cancel()
	// RLIMIT_CPU bounds the flood by time even if this process is killed
	// before it can stop it: trafgen's sender is a forked child that
	// outlives its parent, and it spins on a CPU, so CPU time is wall time.
	cpuSecs := int(total.Seconds()) + 1
	argv := []string{"prlimit", fmt.Sprintf("--cpu=%d:%d", cpuSecs, cpuSecs+1), "trafgen", "--dev", "eth0", "--conf", b.trafConf, "--num", strconv.FormatUint(limit, 10),
		"--cpus", "1", "--no-sock-mem", "--notouch-irq", "--no-cpu-stats"}
	if b.cfg.flood == "sendto" {
		// A zero gap switches trafgen from its TX ring to one sendto per
		// packet, whose skbs are linear.
		argv = append(argv, "--gap", "0")
	}
	flood, err := startInNS(b.topo.Att.NS, filepath.Join(b.dir, "trafgen.log"), nil, argv...)
	if err != nil {
		return w, err
	}
	// The deadline bounds the flood even if this goroutine is stuck in a
	// measurement.
	go func() {
		select {
		case <-tctx.Done():
			flood.stop()
		case <-flood.done:
		}
	}()
	defer flood.stop()

	if !sleepCtx(tctx, b.cfg.warmup) {
		return w, ctx.Err()
	}
	select {
	case <-flood.done:
		log, _ := os.ReadFile(filepath.Join(b.dir, "trafgen.log"))
		return w, fmt.Errorf("trafgen ended during warm-up: %s", strings.TrimSpace(string(log)))
	default:
	}
	w.floodCPU = floodCPU(flood.cmd.Process.Pid)
	s0, err := b.snap(v)
	if err != nil {
		return w, err
	}
	if !sleepCtx(tctx, b.cfg.window) {
		return w, ctx.Err()
	}
	s1, err := b.snap(v)
	if err != nil {
		return w, err
	}
	if w.goodput, err = b.wrk(ctx, srvAddr); err != nil {
		if ctx.Err() != nil {
			return w, ctx.Err()
		}
		// One failed client window (e.g. a forwarding flag reset under us)
		// should not lose the whole run: it is left out of the medians.
		w.wrkErr = err.Error()
	}
	s2, err := b.snap(v)
	if err != nil {
		return w, err
	}
	select {
	case <-flood.done:
		// Ended before the window did: by its packet count, or by the
		// deadline when measuring was slow. Either way the wrk phase was
		// partly without flood.
		w.countStop = true
		log, _ := os.ReadFile(filepath.Join(b.dir, "trafgen.log"))
		w.floodLog = strings.Join(strings.Fields(string(log)), " ")
	default:
	}
	w.alone = diff(s0, s1, w.floodCPU)
	w.loaded = diff(s1, s2, w.floodCPU)
	return w, nil
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// floodCPU finds the CPU trafgen's sending child last ran on (trafgen forks
// one pinned sender per --cpus); -1 if unknown.
func floodCPU(parent int) int {
	kids, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", parent, parent))
	if err != nil {
		return -1
	}
	f := strings.Fields(string(kids))
	if len(f) == 0 {
		return -1
	}
	stat, err := os.ReadFile("/proc/" + f[0] + "/stat")
	if err != nil {
		return -1
	}
	cpu, err := statCPU(string(stat))
	if err != nil {
		return -1
	}
	return cpu
}

// statCPU reads field 39 ("processor") of /proc/PID/stat. The command name
// in parentheses may hold spaces, so fields are counted after the last ')'.
func statCPU(stat string) (int, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("parse pid stat: no ')'")
	}
	f := strings.Fields(stat[i+1:]) // f[0] is field 3 (state)
	const processor = 39 - 3
	if len(f) <= processor {
		return 0, errors.New("parse pid stat: short")
	}
	return strconv.Atoi(f[processor])
}

// report prints the median table.
func report(out io.Writer, cfg config, base wrkResult, order []variant, modes map[string]string, res map[string][]windowResult) {
	type row struct {
		pps, soft, busy, good, loadedPPS, lo, hi, leak float64
	}
	rows := map[string]row{}
	for name, ws := range res {
		var pps, soft, busy, good, lp, leak []float64
		for _, w := range ws {
			pps = append(pps, w.alone.pps())
			soft = append(soft, w.alone.nsPer(w.alone.softirq))
			busy = append(busy, w.alone.nsPer(w.alone.busy))
			if w.wrkErr == "" {
				good = append(good, w.goodput.RPS)
				lp = append(lp, w.loaded.pps())
			}
			leak = append(leak, w.alone.leakFrac())
		}
		r := row{pps: median(pps), soft: median(soft), busy: median(busy), good: median(good), loadedPPS: median(lp), leak: median(leak), lo: pps[0], hi: pps[0]}
		for _, x := range pps {
			r.lo, r.hi = min(r.lo, x), max(r.hi, x)
		}
		rows[name] = r
	}
	ratio := func(x float64, ref string) string {
		r, ok := rows[ref]
		if !ok || r.pps == 0 {
			return "-"
		}
		return fmt.Sprintf("%.3f", x/r.pps)
	}
	fmt.Fprintf(out, "\nflood: 64-byte UDP frames from a blocked source, trafgen 1 sender (%s); medians of %d windows of %s (flood alone) + %s (flood + wrk -t1 -c%d)\n",
		cfg.flood, cfg.rounds, cfg.window, cfg.window, cfg.conns)
	fmt.Fprintf(out, "goodput without flood: %.0f rps\n\n", base.RPS)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "variant\tattach\tpps\tmin..max\tleaked\tsoftirq ns/pkt\tbusy ns/pkt\tgoodput rps\tpps w/ wrk\tpps/trivial\tpps/nft\t")
	for _, v := range order {
		r, ok := rows[v.Name()]
		if !ok {
			continue
		}
		leak := fmt.Sprintf("%.1f%%", 100*r.leak)
		if v.Name() != "none" && r.leak > 0.01 {
			leak += " FAIL-OPEN"
		}
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.0f..%.0f\t%s\t%.0f\t%.0f\t%.0f\t%.0f\t%s\t%s\t\n", v.Name(), modes[v.Name()],
			r.pps, r.lo, r.hi, leak, r.soft, r.busy, r.good, r.loadedPPS,
			ratio(r.pps, "trivial-tcx"), ratio(r.pps, "nft-netdev"))
	}
	tw.Flush()
	fmt.Fprintln(out, "\npps: packets per second reaching the attacker's host-side veth (rx_packets) - dropped there by every variant but none.")
	fmt.Fprintln(out, "leaked: share of those packets forwarded on to the server namespace (should be 0 for a drop variant).")
	fmt.Fprintln(out, "softirq/busy ns/pkt: /proc/stat softirq (incl. ksoftirqd) / all non-idle CPU time, all CPUs, over the packets; tick-sampled.")
}

// Command guard is the flood benchmark of apiwarden's source guard (issue 4):
// an attacker namespace floods a server namespace with 64-byte UDP frames
// from a blocked source while a legitimate client namespace keeps making HTTP
// requests, all routed through the root namespace. Each variant drops the
// flood at the attacker's host-side veth - nothing, a trivial tcx drop
// program (the floor), the guard as tcx, the guard as XDP, and an nftables
// netdev ingress rule (the incumbent) - in interleaved rounds so drift of
// the shared machine spreads over all of them. A window first measures the
// flood alone (packets dropped per second, softirq CPU per packet), then
// the flood with wrk running (goodput the client keeps).
//
// Run as root from the module root: go run ./bench/guard [-window 4s -rounds 3].
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/apiwarden/apiwarden/datapath/guard"
)

const serverPort = 8080

type config struct {
	window   time.Duration
	warmup   time.Duration
	rounds   int
	conns    int
	maxPPS   uint64
	variants string
	extra    int
	flood    string
	obj      string
}

func main() {
	var cfg config
	serve := flag.String("serve", "", "internal: run the HTTP server on this address")
	cleanup := flag.Bool("cleanup", false, "only remove namespaces, links and nft tables left by killed runs, then exit")
	flag.DurationVar(&cfg.window, "window", 4*time.Second, "length of each of the two phases of a window (flood alone, flood + wrk)")
	flag.DurationVar(&cfg.warmup, "warmup", time.Second, "flood time before a window starts measuring")
	flag.IntVar(&cfg.rounds, "rounds", 3, "rounds; each runs every variant once (median over rounds)")
	flag.IntVar(&cfg.conns, "conns", 8, "wrk connections of the legitimate client")
	flag.Uint64Var(&cfg.maxPPS, "max-pps", 3_000_000, "packet bound per window: trafgen stops after max-pps * window length packets")
	flag.StringVar(&cfg.variants, "variants", "none,trivial-tcx,guard-tcx,guard-xdp,nft-netdev", "variants to run, in round order")
	flag.IntVar(&cfg.extra, "extra-prefixes", 0, "unrelated prefixes added to the guard blocklist (LPM trie depth), never sent from")
	flag.StringVar(&cfg.flood, "flood", "ring", "trafgen send path: ring (TX ring: headers past Ethernet land in page fragments, the fastest flood) or sendto (one syscall per packet, linear skbs)")
	flag.StringVar(&cfg.obj, "guard-obj", "", "a candidate guard ELF (built from a changed bpf/guard.c); adds variants obj-tcx and obj-xdp")
	flag.Parse()
	if *serve != "" {
		runServer(*serve)
		return
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "bench-guard")
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "bench/guard needs root (namespaces, BPF, nftables)")
		os.Exit(2)
	}
	if cfg.rounds < 1 || cfg.window < time.Second || (cfg.flood != "ring" && cfg.flood != "sendto") {
		fmt.Fprintln(os.Stderr, "need -rounds >= 1, -window >= 1s, -flood ring|sendto")
		os.Exit(2)
	}
	if *cleanup {
		cleanupStale()
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, log); err != nil {
		log.Error("benchmark failed", "err", err)
		os.Exit(1)
	}
}

// runServer is the server namespace's HTTP server: a tiny fixed response,
// so the client's goodput measures the network path, not the handler.
func runServer(addr string) {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":true}` + "\n"))
	})
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, "serve:", err)
		os.Exit(1)
	}
}

// bench holds what every window uses.
type bench struct {
	cfg      config
	log      *slog.Logger
	topo     *topology
	dir      string
	trafConf string
	attIdx   int
}

func run(ctx context.Context, cfg config, log *slog.Logger) (err error) {
	cleanupStale()
	topo, err := newTopology()
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, topo.close()) }()
	dir, err := os.MkdirTemp("", prefix+"-")
	if err != nil {
		return fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(dir)

	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("own executable: %w", err)
	}
	srvAddr := net.JoinHostPort(topo.Srv.IP, fmt.Sprint(serverPort))
	srv, err := startInNS(topo.Srv.NS, filepath.Join(dir, "server.log"), []string{"GOMAXPROCS=1"}, self, "-serve", srvAddr)
	if err != nil {
		return err
	}
	defer srv.stop()
	if err := waitReach(ctx, topo.Cli.NS, srvAddr, 5*time.Second); err != nil {
		return err
	}

	att, err := net.InterfaceByName(topo.Att.Host)
	if err != nil {
		return fmt.Errorf("attacker veth: %w", err)
	}
	// sysfs under `ip netns exec` is the namespace's own.
	attMAC, err := nsOutput(topo.Att.NS, "cat", "/sys/class/net/eth0/address")
	if err != nil {
		return err
	}
	b := &bench{cfg: cfg, log: log, topo: topo, dir: dir, attIdx: att.Index,
		trafConf: filepath.Join(dir, "flood.cfg")}
	conf := trafgenConf(att.HardwareAddr.String(), strings.TrimSpace(attMAC),
		netip.MustParseAddr(topo.Att.IP), netip.MustParseAddr(topo.Srv.IP))
	if err := os.WriteFile(b.trafConf, []byte(conf), 0o644); err != nil {
		return fmt.Errorf("write trafgen config: %w", err)
	}

	g, err := guard.New(guard.Config{}, log)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, g.Close()) }()
	attPrefix := netip.PrefixFrom(netip.MustParseAddr(topo.Att.IP), 32)
	if err := g.Block(attPrefix, time.Hour, guard.ReasonManual); err != nil {
		return err
	}
	for i := 0; i < cfg.extra; i++ {
		// 198.18.0.0/15 is the benchmarking range (RFC 2544); nothing here
		// sends from it, the entries only deepen the trie.
		a := netip.AddrFrom4([4]byte{198, 18 + byte(i>>16&1), byte(i >> 8), byte(i)})
		if err := g.Block(netip.PrefixFrom(a, 32-(i%9)).Masked(), time.Hour, guard.ReasonManual); err != nil {
			return err
		}
	}
	trivial, err := newTrivial(att.Index)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, trivial.close()) }()
	nft := &nftVariant{table: prefix + "_" + topo.ID, dev: topo.Att.Host, src: attPrefix.Addr()}
	defer func() { err = errors.Join(err, nft.Detach()) }()
	all := map[string]variant{
		"none":        noneVariant{},
		"trivial-tcx": trivial,
		"guard-tcx":   &guardVariant{g: g, ifindex: att.Index},
		"guard-xdp":   &guardVariant{g: g, ifindex: att.Index, xdp: true},
		"nft-netdev":  nft,
	}
	if cfg.obj != "" {
		coll, err := loadObj(cfg.obj, att.Index, attPrefix.Addr())
		if err != nil {
			return err
		}
		defer coll.Close()
		all["obj-tcx"] = &objVariant{coll: coll, ifindex: att.Index}
		all["obj-xdp"] = &objVariant{coll: coll, ifindex: att.Index, xdp: true}
		if !strings.Contains(cfg.variants, "obj-") {
			cfg.variants += ",obj-tcx"
		}
	}
	var order []variant
	for _, name := range strings.Split(cfg.variants, ",") {
		v, ok := all[strings.TrimSpace(name)]
		if !ok {
			return fmt.Errorf("unknown variant %q", name)
		}
		order = append(order, v)
	}

	fmt.Fprintf(os.Stderr, "topology %s: attacker %s (%s) -> server %s, client %s; %d rounds x %d variants x 2 x %s\n",
		topo.ID, topo.Att.IP, topo.Att.Host, srvAddr, topo.Cli.IP, cfg.rounds, len(order), cfg.window)
	base, err := b.wrk(ctx, srvAddr)
	if err != nil {
		return fmt.Errorf("baseline goodput: %w", err)
	}
	fmt.Fprintf(os.Stderr, "goodput without flood: %.0f rps\n", base.RPS)

	// Someone else switching the global ip_forward rewrites every device's
	// flag, which would cut the client off mid-window: keep ours on.
	wctx, wstop := context.WithCancel(ctx)
	defer wstop()
	go func() {
		for sleepCtx(wctx, 200*time.Millisecond) {
			_ = topo.forward()
		}
	}()

	results := map[string][]windowResult{}
	modes := map[string]string{}
	for r := 0; r < cfg.rounds; r++ {
		// Rotating the start spreads slow drift of the machine (other work on
		// it) over every variant instead of always hitting the same one.
		for i := range order {
			v := order[(i+r)%len(order)]
			if ctx.Err() != nil {
				return ctx.Err()
			}
			w, err := b.window(ctx, v, srvAddr)
			if err != nil {
				return fmt.Errorf("round %d %s: %w", r+1, v.Name(), err)
			}
			modes[v.Name()] = w.mode
			results[v.Name()] = append(results[v.Name()], w)
			fmt.Fprintf(os.Stderr, "round %d %-12s %-12s %s\n", r+1, v.Name(), w.mode, w)
		}
	}
	report(os.Stdout, cfg, base, order, modes, results)
	return nil
}

// proc is a process started in a namespace; done closes when it is reaped.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// startInNS runs argv in namespace ns in its own process group, killed with
// this process if it dies.
func startInNS(ns, logFile string, env []string, argv ...string) (*proc, error) {
	f, err := os.Create(logFile)
	if err != nil {
		return nil, fmt.Errorf("create log: %w", err)
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); f.Close(); close(p.done) }()
	return p, nil
}

// stop asks the process group to stop, kills it after a grace time, and
// waits until it is reaped.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
}

func nsOutput(ns string, argv ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...).Output()
	if err != nil {
		return "", fmt.Errorf("%s in %s: %w", strings.Join(argv, " "), ns, err)
	}
	return string(out), nil
}

// waitReach waits until ns can open a TCP connection to addr.
func waitReach(ctx context.Context, ns, addr string, timeout time.Duration) error {
	host, port, _ := net.SplitHostPort(addr)
	deadline := time.Now().Add(timeout)
	for {
		err := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "timeout", "2", "bash", "-c",
			fmt.Sprintf("exec 3<>/dev/tcp/%s/%s", host, port)).Run()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s cannot reach %s: %w", ns, addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// wrk runs the legitimate client for one window.
func (b *bench) wrk(ctx context.Context, addr string) (wrkResult, error) {
	secs := int((b.cfg.window + time.Second - 1) / time.Second)
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", b.topo.Cli.NS, "wrk", "-t1",
		fmt.Sprintf("-c%d", b.cfg.conns), fmt.Sprintf("-d%ds", secs), "--timeout", "2s", "http://"+addr+"/").CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return parseWrk(string(out))
}

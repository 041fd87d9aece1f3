// Command apiwarden is the node agent: it attaches apiwarden's eBPF programs,
// rebuilds API calls, keeps the inventory and serves the API.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/apiwarden/apiwarden/agent"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func usage(w io.Writer) {
	fmt.Fprintf(w, `apiwarden - runtime API protection agent (eBPF)

Usage:
  apiwarden agent [flags]   run the node agent (needs root or CAP_BPF+CAP_NET_ADMIN+CAP_PERFMON)
  apiwarden version         print the version

Run 'apiwarden agent -h' for the agent's flags.
`)
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "agent":
		return runAgent(args[1:], stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, version)
		return 0
	case "help", "-h", "--help":
		usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "apiwarden: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

// stringList is a repeatable string flag (also accepts comma lists).
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*s = append(*s, p)
		}
	}
	return nil
}

// portList is a repeatable TCP port flag.
type portList []uint16

func (p *portList) String() string { return fmt.Sprint(*p) }
func (p *portList) Set(v string) error {
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.ParseUint(strings.TrimSpace(f), 10, 16)
		if err != nil || n == 0 {
			return fmt.Errorf("invalid port %q", f)
		}
		*p = append(*p, uint16(n))
	}
	return nil
}

func runAgent(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("apiwarden agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		configPath = fs.String("config", "", "YAML config file (flags override it)")
		ifaces     stringList
		ports      portList
		mode       = fs.String("mode", "", "monitor (default) or protect")
		dataDir    = fs.String("data-dir", "", "directory of the embedded store (default /var/lib/apiwarden)")
		apiAddr    = fs.String("api-addr", "", "address of the gRPC/REST API, /metrics and /healthz (default 127.0.0.1:9464)")
		xdsAddr    = fs.String("xds-addr", "", "address of the Envoy xDS server (default: off)")
		tokenFile  = fs.String("api-token-file", "", "file holding the bearer token the API requires (needed when --api-addr is not loopback)")
		tls        = fs.String("tls", "", "attach TLS library uprobes: true or false (default true)")
		tlsScope   = fs.String("tls-probe-scope", "", "process (default: only watched servers, PID-filtered probes) or host (every process mapping a TLS library)")
		logLevel   = fs.String("log-level", "", "debug, info, warn or error")
		pprof      = fs.Bool("pprof", false, "serve Go's profiler under /debug/pprof/ on the API address")
	)
	fs.Var(&ifaces, "interface", "interface to watch (repeatable; default: every up interface and new ones)")
	fs.Var(&ports, "port", "capture only these TCP ports (repeatable; default: all)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "apiwarden agent: unexpected argument %q\n", fs.Arg(0))
		return 2
	}

	cfg := agent.Default()
	if *configPath != "" {
		if err := cfg.LoadFile(*configPath); err != nil {
			fmt.Fprintf(stderr, "apiwarden: %v\n", err)
			return 2
		}
	}
	if len(ifaces) > 0 {
		cfg.Interfaces = ifaces
	}
	if len(ports) > 0 {
		cfg.Ports = ports
	}
	if *mode != "" {
		cfg.Mode = agent.Mode(*mode)
	}
	if *dataDir != "" {
		cfg.DataDir = *dataDir
	}
	if *apiAddr != "" {
		cfg.APIAddr = *apiAddr
	}
	if *xdsAddr != "" {
		cfg.XDSAddr = *xdsAddr
	}
	if *tokenFile != "" {
		cfg.APITokenFile = *tokenFile
	}
	if *tls != "" {
		b, err := strconv.ParseBool(*tls)
		if err != nil {
			fmt.Fprintf(stderr, "apiwarden: -tls %q: must be true or false\n", *tls)
			return 2
		}
		cfg.TLS = b
	}
	if *tlsScope != "" {
		cfg.TLSProbeScope = *tlsScope
	}
	if *pprof {
		cfg.Pprof = true
	}
	if *logLevel != "" {
		cfg.LogLevel = *logLevel
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "apiwarden: %v\n", err)
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		fmt.Fprintf(stderr, "apiwarden: log-level %q: must be debug, info, warn or error\n", cfg.LogLevel)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	if err := agent.Preflight(); err != nil {
		fmt.Fprintf(stderr, "apiwarden: %v\n", err)
		return 1
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	a, err := agent.New(cfg, version, log)
	if err != nil {
		fmt.Fprintf(stderr, "apiwarden: %v\n", err)
		return 1
	}
	start := time.Now()
	err = a.Run(ctx)
	log.Info("agent stopped", "uptime", time.Since(start).Round(time.Second))
	if err != nil {
		fmt.Fprintf(stderr, "apiwarden: %v\n", err)
		return 1
	}
	return 0
}

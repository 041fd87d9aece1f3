package e2e

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiwarden/apiwarden/e2e/harness"
)

var (
	flagIdle  = flag.Int("e2e.idle", 2000, "idle connections opened by TestAgentSurvivesBadInput")
	flagAgent = flag.String("e2e.agent", "", "prebuilt apiwarden binary (default: build ./cmd/apiwarden into bin/)")
	flagNoGSO = flag.Bool("e2e.nogso", false, "turn off TSO/GSO on the namespace veths (wire-sized segments)")
	flagWait  = flag.Duration("e2e.wait", 20*time.Second, "how long to wait for the inventory to settle")
)

// world is one topology with the three servers and the clients.
type world struct {
	dir     string
	topo    *harness.Topology
	goapi   *harness.Server
	py      *harness.Server
	nginx   *harness.Server
	clients *harness.Clients
	log     *slog.Logger
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, BPF)")
	}
	for _, bin := range []string{"ip", "nginx", "python3", "curl", "go", "bash"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("needs %s in PATH", bin)
		}
	}
}

// newWorld builds the namespaces and starts the servers. Everything is torn
// down by t.Cleanup, also when the test fails or panics.
func newWorld(t *testing.T) *world {
	t.Helper()
	requireRoot(t)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	harness.CleanupStale(log)
	bins, err := binaries()
	if err != nil {
		t.Fatalf("build test programs: %v", err)
	}
	w := &world{dir: t.TempDir(), log: log}
	topo, err := harness.NewTopology(harness.TopologyConfig{DisableOffload: *flagNoGSO}, log)
	if err != nil {
		t.Fatalf("topology: %v", err)
	}
	w.topo = topo
	t.Cleanup(func() {
		if t.Failed() {
			// A full accept queue drops handshakes silently: the client
			// sees a timeout that looks like the agent holding traffic.
			out, _ := exec.Command("ip", "netns", "exec", topo.SrvNS, "nstat", "-az",
				"TcpExtListenOverflows", "TcpExtListenDrops", "TcpRetransSegs").CombinedOutput()
			t.Logf("server namespace TCP counters:\n%s", out)
		}
		if err := topo.Close(); err != nil {
			t.Errorf("topology cleanup: %v", err)
		}
	})
	if w.goapi, err = topo.StartGoAPI(bins.GoAPI, w.dir, true); err != nil {
		t.Fatalf("goapi: %v", err)
	}
	t.Cleanup(w.goapi.Kill)
	if w.py, err = topo.StartPyServer(w.dir); err != nil {
		t.Fatalf("pyserver: %v", err)
	}
	t.Cleanup(w.py.Kill)
	if w.nginx, err = topo.StartNginx(w.dir); err != nil {
		t.Fatalf("nginx: %v", err)
	}
	t.Cleanup(w.nginx.Kill)
	for _, s := range []*harness.Server{w.goapi, w.py, w.nginx} {
		if err := topo.CheckReach(s.Addr, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	w.clients = topo.NewClients(bins.GoClient, w.dir)
	return w
}

// serviceNames are the names the agent may give a server's service: the
// exe basename or the comm of its serving process.
func (w *world) serviceNames(s *harness.Server) []string {
	names := []string{s.Service, s.Exe()}
	for _, pid := range s.CPUPids {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil {
			names = append(names, strings.TrimSpace(string(b)))
		}
	}
	return names
}

// buildDir holds programs built once per test binary run; TestMain removes it.
var buildDir string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "awe2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buildDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// binaries builds goapi, goclient and awload once.
var binaries = sync.OnceValues(func() (harness.Binaries, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	return harness.BuildBinaries(ctx, buildDir)
})

// agentBinary builds bin/apiwarden once per test binary run, or skips.
var agentBinary = sync.OnceValues(func() (string, error) {
	if *flagAgent != "" {
		return *flagAgent, nil
	}
	root, err := harness.ModuleRoot()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	return harness.BuildAgent(ctx, filepath.Join(root, "bin"))
})

func needAgent(t *testing.T) string {
	t.Helper()
	requireRoot(t)
	if _, err := exec.LookPath("bpftool"); err != nil {
		t.Skip("needs bpftool to check detach")
	}
	bin, err := agentBinary()
	if err != nil {
		t.Skipf("apiwarden agent does not build yet: %v", err)
	}
	return bin
}

// startAgent runs the agent on the world's host-side veths.
func (w *world) startAgent(t *testing.T, bin, dataDir string) *harness.Agent {
	t.Helper()
	a, err := harness.StartAgent(harness.AgentConfig{Bin: bin, Ifaces: w.topo.Ifaces(), DataDir: dataDir,
		LogFile: filepath.Join(w.dir, fmt.Sprintf("agent-%d.log", time.Now().UnixNano()))})
	if err != nil {
		t.Fatalf("start agent: %v", err)
	}
	t.Cleanup(func() {
		a.Kill()
		if t.Failed() {
			t.Logf("agent log %s (tail):\n%s", a.Cfg.LogFile, tailStr(a.Output(), 4000))
		}
	})
	if err := a.WaitReady(30 * time.Second); err != nil {
		t.Fatalf("agent: %v", err)
	}
	if err := a.WaitAttached(w.topo.Ifaces(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	return a
}

// stopAgent stops it with SIGTERM and checks exit 0 and a clean detach.
func (w *world) stopAgent(t *testing.T, a *harness.Agent) {
	t.Helper()
	code, err := a.Stop(15 * time.Second)
	if code != 0 {
		t.Errorf("agent exit code %d (%v); log tail:\n%s", code, err, tailStr(a.Output(), 3000))
	}
	for _, ifc := range w.topo.Ifaces() {
		progs, err := harness.AttachedPrograms(ifc)
		if err != nil {
			t.Errorf("check detach: %v", err)
		} else if len(progs) > 0 {
			t.Errorf("programs still attached to %s after stop: %v", ifc, progs)
		}
	}
}

func tailStr(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// waitInventory polls until the total count reaches want and stays put.
func waitInventory(t *testing.T, a *harness.Agent, want uint64) []harness.Endpoint {
	t.Helper()
	deadline := time.Now().Add(*flagWait)
	var last []harness.Endpoint
	var lastTotal uint64
	stable := 0
	for time.Now().Before(deadline) {
		eps, err := a.Inventory()
		if err != nil {
			t.Logf("inventory: %v", err)
		} else {
			total := totalCount(eps)
			if total == lastTotal && total >= want {
				stable++
			} else {
				stable = 0
			}
			last, lastTotal = eps, total
			if stable >= 2 {
				return eps
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("inventory did not settle at %d requests within %v (last total %d)", want, *flagWait, lastTotal)
	return last
}

func totalRequests(steps []step) uint64 {
	var n uint64
	for _, s := range steps {
		n += uint64(len(s.reqs))
	}
	return n
}

// TestWorkloadWithoutAgent proves the harness itself: every scripted request
// gets its scripted status and reaches the server's handler exactly once.
func TestWorkloadWithoutAgent(t *testing.T) {
	t0 := time.Now()
	w := newWorld(t)
	t.Logf("world ready in %v (ipv6 %v)", time.Since(t0).Round(time.Millisecond), w.topo.IPv6)
	t0 = time.Now()
	steps := workload(w.topo.IPv6)
	runWorkload(context.Background(), t, w, steps)
	t.Logf("workload ran in %v", time.Since(t0).Round(time.Millisecond))
	time.Sleep(200 * time.Millisecond) // python and nginx log after sending
	checkServerLogs(t, w, steps)
	want := expectedInventory(w, steps)
	if len(want) < 20 {
		t.Errorf("workload covers %d endpoints, want >= 20", len(want))
	}
	t.Logf("workload: %d requests, %d endpoints\n%s", totalRequests(steps), len(want), formatWant(want))
}

// TestInventoryE2E runs the workload under the agent and demands the exact inventory.
func TestInventoryE2E(t *testing.T) {
	bin := needAgent(t)
	w := newWorld(t)
	a := w.startAgent(t, bin, filepath.Join(w.dir, "data"))
	steps := workload(w.topo.IPv6)
	runWorkload(context.Background(), t, w, steps)
	want := expectedInventory(w, steps)
	got := waitInventory(t, a, totalRequests(steps))
	assertInventory(t, got, want)
	checkServerLogs(t, w, steps)
	t.Logf("inventory: %d endpoints, %d requests (want %d, %d)", len(got), totalCount(got), len(want), totalRequests(steps))
	if testing.Verbose() {
		for _, e := range got {
			t.Logf("  %-10s %5d %-6s %-40s n=%d %v auth=%v", e.Service.Name, e.Service.Port, e.Method, e.PathTemplate,
				e.RequestCount, e.StatusCodes, e.AuthSchemes)
		}
	}

	var doc map[string]any
	if err := a.GetJSON("/v1/inventory/openapi", &doc); err != nil {
		t.Errorf("openapi: %v", err)
	} else if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.") {
		t.Errorf("openapi document version %q", v)
	}
	var procs map[string]any
	if err := a.GetJSON("/v1/processes", &procs); err != nil {
		t.Errorf("processes: %v", err)
	}
	w.stopAgent(t, a)
}

// TestRestartKeepsInventory stops the agent and starts it on the same data dir.
func TestRestartKeepsInventory(t *testing.T) {
	bin := needAgent(t)
	w := newWorld(t)
	data := filepath.Join(w.dir, "data")
	a := w.startAgent(t, bin, data)
	steps := workload(w.topo.IPv6)[:6]
	runWorkload(context.Background(), t, w, steps)
	want := expectedInventory(w, steps)
	assertInventory(t, waitInventory(t, a, totalRequests(steps)), want)
	w.stopAgent(t, a)

	a2 := w.startAgent(t, bin, data)
	got, err := a2.Inventory()
	if err != nil {
		t.Fatalf("inventory after restart: %v", err)
	}
	assertInventory(t, got, want)
	w.stopAgent(t, a2)
}

// badInput is a list of hostile connections for one server.
func badInput(seed uint64) []harness.ClientRaw {
	r := rand.New(rand.NewPCG(seed, seed))
	garbage := make([]byte, 4096)
	for i := range garbage {
		garbage[i] = byte(r.Uint32())
	}
	raw := func(s string) harness.ClientRaw { return harness.ClientRaw{Data: []byte(s), CloseWrite: true} }
	return []harness.ClientRaw{
		{Data: garbage, CloseWrite: true},
		raw("GARBAGE\r\n\r\n"),
		raw("GET /api/v1/users HTTP/1.1\r\nHost x\r\n\r\n"),
		raw("GET / HTTP/9.9\r\nHost: x\r\n\r\n"),
		raw("POST /api/v1/users HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n"),
		raw("POST /api/v1/upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZZZ\r\nabc\r\n"),
		raw("GET /api/v1/users HTTP/1.1\r\nHost: x\r\n\r\n\x00\x01\x02\xff\xfe garbage after a valid request\r\n\r\n"),
		raw("GET /" + strings.Repeat("a", 16000) + " HTTP/1.1\r\nHost: x\r\n\r\n"),
		raw("GET /api/v1/users HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
		raw("\r\n\r\n\r\nGET /api/v1/users HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
		// Half-open: a request that never ends, left unread until the job ends.
		{Data: []byte("GET /api/v1/users HTTP/1.1\r\nHost: x\r\nX-Slow: "), NoRead: true},
		{Data: []byte("POST /api/v1/users HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{\"a\":"), NoRead: true},
	}
}

var dateRE = regexp.MustCompile(`(?m)^(Date|date): .*\r\n`)

// hostileRound sends the bad input to every server and returns the responses
// with Date headers removed.
func hostileRound(ctx context.Context, t *testing.T, w *world) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, s := range []*harness.Server{w.goapi, w.py, w.nginx} {
		res, err := w.clients.Go(ctx, harness.ClientJob{Mode: "raw", Addr: s.Addr, Raws: badInput(7), Hold: 500 * time.Millisecond})
		if err != nil {
			t.Fatalf("bad input to %s: %v", s.Name, err)
		}
		for _, r := range res.Raw {
			out[s.Name] = append(out[s.Name], dateRE.ReplaceAllString(r, ""))
		}
	}
	return out
}

// TestAgentSurvivesBadInput: hostile bytes must not hurt the agent nor change
// what the servers answer, and the agent must count what it could not parse.
func TestAgentSurvivesBadInput(t *testing.T) {
	bin := needAgent(t)
	w := newWorld(t)
	ctx := context.Background()
	baseline := hostileRound(ctx, t, w)

	a := w.startAgent(t, bin, filepath.Join(w.dir, "data"))
	withAgent := hostileRound(ctx, t, w)
	if !reflect.DeepEqual(baseline, withAgent) {
		for svc := range baseline {
			for i := range baseline[svc] {
				if i < len(withAgent[svc]) && baseline[svc][i] != withAgent[svc][i] {
					t.Errorf("%s input %d: response changed by the agent:\nwithout: %q\nwith:    %q", svc, i,
						tailStr(baseline[svc][i], 300), tailStr(withAgent[svc][i], 300))
				}
			}
		}
	}

	// Many idle connections while the agent must stay responsive.
	idleDone := make(chan error, 1)
	go func() {
		res, err := w.clients.Go(ctx, harness.ClientJob{Mode: "idle", Addr: w.goapi.Addr, Idle: *flagIdle, Hold: 3 * time.Second})
		if err == nil && res.Opened != *flagIdle {
			err = fmt.Errorf("opened %d of %d", res.Opened, *flagIdle)
		}
		idleDone <- err
	}()
	for i := 0; i < 10; i++ {
		if _, err := a.Status(); err != nil {
			t.Errorf("agent unhealthy under idle connections: %v", err)
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	if err := <-idleDone; err != nil {
		t.Errorf("idle connections: %v", err)
	}
	if err := a.WaitReady(5 * time.Second); err != nil {
		t.Fatalf("agent after bad input: %v", err)
	}
	steps := workload(w.topo.IPv6)[:3]
	runWorkload(ctx, t, w, steps)

	st, err := a.Status()
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	if n, keys := parseErrorCount(st, ""); n == 0 {
		t.Errorf("no parse error counter > 0 in /v1/status (looked at %v): %v", keys, st)
	} else {
		t.Logf("parse error counters: %v", keys)
	}
	w.stopAgent(t, a)
}

// parseErrorCount sums every counter in a JSON tree whose path mentions a
// parse error ("parse" together with "error", "invalid" or "fail").
func parseErrorCount(v any, path string) (float64, []string) {
	var sum float64
	var keys []string
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			n, ks := parseErrorCount(c, path+"."+k)
			sum += n
			keys = append(keys, ks...)
		}
	case []any:
		for i, c := range x {
			n, ks := parseErrorCount(c, fmt.Sprintf("%s[%d]", path, i))
			sum += n
			keys = append(keys, ks...)
		}
	default:
		p := strings.ToLower(path)
		if !strings.Contains(p, "pars") || !(strings.Contains(p, "err") || strings.Contains(p, "invalid") || strings.Contains(p, "fail")) {
			return 0, nil
		}
		var f float64
		switch y := x.(type) {
		case float64:
			f = y
		case string:
			fmt.Sscan(y, &f)
		}
		return f, []string{fmt.Sprintf("%s=%v", path, f)}
	}
	return sum, keys
}

// TestBadInputWithoutAgent proves the hostile round is deterministic (so a
// difference under the agent means the agent changed something) and that the
// idle connections can be opened at all.
func TestBadInputWithoutAgent(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	first := hostileRound(ctx, t, w)
	second := hostileRound(ctx, t, w)
	if !reflect.DeepEqual(first, second) {
		t.Errorf("hostile round is not deterministic:\n%q\n%q", first, second)
	}
	for svc, rs := range first {
		answered := 0
		for _, r := range rs {
			if r != "" {
				answered++
			}
		}
		t.Logf("%s answered %d of %d hostile connections", svc, answered, len(rs))
	}
	res, err := w.clients.Go(ctx, harness.ClientJob{Mode: "idle", Addr: w.goapi.Addr, Idle: *flagIdle, Hold: time.Second})
	if err != nil || res.Opened != *flagIdle {
		t.Errorf("idle connections: opened %d of %d: %v", res.Opened, *flagIdle, err)
	}
}

func TestDiffLines(t *testing.T) {
	got := diffLines([]string{"a", "b", "b", "c"}, []string{"b", "c", "d"})
	if got != "-a\n-b\n+d\n" {
		t.Fatalf("diffLines = %q", got)
	}
}

// TestAgentPlumbingWithFake drives the harness's agent control (start,
// readiness, REST decoding, SIGTERM exit code) against a stand-in agent.
func TestAgentPlumbingWithFake(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("needs python3")
	}
	td, err := harness.Testdata()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	a, err := harness.StartAgent(harness.AgentConfig{Bin: filepath.Join(td, "fakeagent.py"),
		Ifaces: []string{"awe2e-sx", "awe2e-cx"}, DataDir: filepath.Join(dir, "data")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Kill)
	if err := a.WaitReady(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := a.WaitAttached([]string{"awe2e-sx", "awe2e-cx"}, 2*time.Second); err != nil {
		t.Error(err)
	}
	if err := a.WaitAttached([]string{"awe2e-zz"}, 200*time.Millisecond); err == nil {
		t.Error("WaitAttached accepted an interface the agent does not list")
	}
	st, err := a.Status()
	if err != nil {
		t.Errorf("status %v: %v", st, err)
	}
	if n, keys := parseErrorCount(st, ""); n != 0 || len(keys) != 1 {
		t.Errorf("parseErrorCount = %v %v", n, keys)
	}
	if eps, err := a.Inventory(); err != nil || len(eps) != 0 {
		t.Errorf("inventory %v: %v", eps, err)
	}
	if code, err := a.Stop(5 * time.Second); code != 0 {
		t.Errorf("exit %d: %v", code, err)
	}
}

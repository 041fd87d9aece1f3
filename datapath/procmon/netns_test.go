package procmon

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apiwarden/apiwarden/apimodel/capture"
)

// testNet is two network namespaces joined by a veth pair:
// client 10.213.<n>.1 <-> server 10.213.<n>.2.
type testNet struct {
	client, server     string // netns names
	clientIP, serverIP netip.Addr
	clientNS, serverNS uint32 // netns inodes
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	for _, bin := range []string{"ip", "curl", "python3"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("needs %s", bin)
		}
	}
}

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func newTestNet(t *testing.T) *testNet {
	t.Helper()
	n := os.Getpid()%200 + 20
	tn := &testNet{
		client:   fmt.Sprintf("awproc-c%d", n),
		server:   fmt.Sprintf("awproc-s%d", n),
		clientIP: netip.AddrFrom4([4]byte{10, 213, byte(n), 1}),
		serverIP: netip.AddrFrom4([4]byte{10, 213, byte(n), 2}),
	}
	for _, ns := range []string{tn.client, tn.server} {
		exec.Command("ip", "netns", "del", ns).Run() // leftovers of a killed run
		run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	vc, vs := fmt.Sprintf("awproc-vc%d", n), fmt.Sprintf("awproc-vs%d", n)
	run(t, "ip", "link", "add", vc, "netns", tn.client, "type", "veth", "peer", "name", vs, "netns", tn.server)
	run(t, "ip", "-n", tn.client, "addr", "add", tn.clientIP.String()+"/24", "dev", vc)
	run(t, "ip", "-n", tn.server, "addr", "add", tn.serverIP.String()+"/24", "dev", vs)
	run(t, "ip", "-n", tn.client, "link", "set", vc, "up")
	run(t, "ip", "-n", tn.server, "link", "set", vs, "up")
	tn.clientNS = nsInode(t, tn.client)
	tn.serverNS = nsInode(t, tn.server)
	return tn
}

func nsInode(t *testing.T, name string) uint32 {
	t.Helper()
	st, err := os.Stat(filepath.Join("/run/netns", name))
	if err != nil {
		t.Fatal(err)
	}
	return uint32(st.Sys().(*syscall.Stat_t).Ino)
}

// pythonBin avoids version-manager shims that exec several times.
func pythonBin() string {
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		return "/usr/bin/python3"
	}
	p, _ := exec.LookPath("python3")
	return p
}

// startServer runs python's http.server in the server namespace and waits
// until it accepts connections. `ip netns exec` execs in place, so the
// returned pid is the server's.
func (tn *testNet) startServer(t *testing.T, port int) int {
	t.Helper()
	pid, _ := tn.startServerOn(t, "0.0.0.0", port)
	return pid
}

// startServerOn is startServer bound to addr ("::" is dual-stack); it also
// returns the command so a test can stop the server.
func (tn *testNet) startServerOn(t *testing.T, addr string, port int) (int, *exec.Cmd) {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", tn.server, pythonBin(), "-m", "http.server",
		fmt.Sprint(port), "--bind", addr, "--directory", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for range 100 {
		if exec.Command("ip", "netns", "exec", tn.server, "curl", "-s", "-o", "/dev/null",
			fmt.Sprintf("http://127.0.0.1:%d/", port)).Run() == nil {
			return cmd.Process.Pid, cmd
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("http.server did not start")
	return 0, nil
}

// curl fetches from the server out of the client namespace and returns the
// curl pid once it exited.
func (tn *testNet) curl(t *testing.T, port int) int {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", tn.client, "curl", "-sf", "-o", "/dev/null",
		fmt.Sprintf("http://%s:%d/", tn.serverIP, port))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("curl: %v\n%s", err, out)
	}
	return cmd.Process.Pid
}

// recorder collects events from a running Monitor.
type recorder struct {
	mu    sync.Mutex
	procs []capture.ProcEvent
	socks []capture.SockEvent
}

func (r *recorder) onProc(e capture.ProcEvent) {
	r.mu.Lock()
	r.procs = append(r.procs, e)
	r.mu.Unlock()
}
func (r *recorder) onSock(e capture.SockEvent) {
	r.mu.Lock()
	r.socks = append(r.socks, e)
	r.mu.Unlock()
}

// waitSock polls until an event matching f arrived.
func (r *recorder) waitSock(t *testing.T, what string, f func(capture.SockEvent) bool) capture.SockEvent {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		r.mu.Lock()
		for _, e := range r.socks {
			if f(e) {
				r.mu.Unlock()
				return e
			}
		}
		r.mu.Unlock()
	}
	t.Fatalf("no %s event", what)
	return capture.SockEvent{}
}

func (r *recorder) waitProc(t *testing.T, what string, f func(capture.ProcEvent) bool) capture.ProcEvent {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		r.mu.Lock()
		for _, e := range r.procs {
			if f(e) {
				r.mu.Unlock()
				return e
			}
		}
		r.mu.Unlock()
	}
	t.Fatalf("no %s event", what)
	return capture.ProcEvent{}
}

// startMonitor loads the programs and runs them until the test ends.
func startMonitor(t *testing.T, onProc func(capture.ProcEvent), onSock func(capture.SockEvent)) *Monitor {
	t.Helper()
	m, err := New(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, onProc, onSock) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		m.Close()
	})
	return m
}

// startNginx runs nginx (master + 2 workers) in the server namespace and
// returns the master's pid once it serves.
func (tn *testNet) startNginx(t *testing.T, port int) int {
	t.Helper()
	if _, err := exec.LookPath("nginx"); err != nil {
		t.Skip("needs nginx")
	}
	dir := t.TempDir()
	conf := fmt.Sprintf(`worker_processes 2;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 64; }
http {
	access_log off;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	server { listen %[2]d; location / { return 200 "ok\n"; } }
}
`, dir, port)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", tn.server, "nginx", "-p", dir, "-c", path)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGQUIT); cmd.Wait() })
	for range 100 {
		if exec.Command("ip", "netns", "exec", tn.server, "curl", "-sf", "-o", "/dev/null",
			fmt.Sprintf("http://127.0.0.1:%d/", port)).Run() == nil {
			return cmd.Process.Pid
		}
		time.Sleep(50 * time.Millisecond)
	}
	log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
	t.Fatalf("nginx did not start:\n%s", log)
	return 0
}

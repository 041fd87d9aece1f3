package procmon

import (
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/apiwarden/apiwarden/apimodel/attrib"
	"github.com/apiwarden/apiwarden/apimodel/capture"
	"github.com/apiwarden/apiwarden/procfs"
)

// TestAttribEndToEnd feeds a real Monitor into an attrib.Table and checks
// that flows between two namespaces resolve to the python server (started
// before the agent, found by Scan, or after it, seen exec'ing) and to curl,
// after curl exited.
func TestAttribEndToEnd(t *testing.T) {
	requireRoot(t)
	tn := newTestNet(t)
	const early, late = 18770, 18771
	earlyPID := uint32(tn.startServer(t, early))

	tb := attrib.New(attrib.Config{ProcFS: procfs.New("")}, nil)
	var rec recorder
	startMonitor(t, tb.OnProc, func(e capture.SockEvent) { tb.OnSock(e); rec.onSock(e) })
	if err := tb.Scan(); err != nil {
		t.Fatal(err)
	}
	latePID := uint32(tn.startServer(t, late))

	pyExe, err := filepath.EvalSymlinks(pythonBin())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		port int
		pid  uint32
	}{{early, earlyPID}, {late, latePID}} {
		cli := uint32(tn.curl(t, c.port))
		con := rec.waitSock(t, "connect", func(e capture.SockEvent) bool {
			return e.Kind == capture.SockConnect && e.TGID == cli
		})
		serverAP := netip.AddrPortFrom(tn.serverIP, uint16(c.port))
		rec.waitSock(t, "server close", func(e capture.SockEvent) bool {
			return e.Kind == capture.SockClose && e.Local == serverAP && e.Remote == con.Local
		})
		time.Sleep(100 * time.Millisecond) // let curl's exit event through too

		sp, cp := tb.Resolve(con.Local, serverAP)
		if sp == nil || sp.PID != c.pid || sp.Exe != pyExe {
			t.Errorf("port %d: server = %+v, want pid %d exe %s", c.port, sp, c.pid, pyExe)
		}
		if cp == nil || cp.PID != cli || cp.Exe != "/usr/bin/curl" || cp.Comm != "curl" {
			t.Errorf("port %d: client = %+v, want curl pid %d", c.port, cp, cli)
		}
	}

	// A flow never accepted (say, only seen on the wire) falls back to the
	// listener; the early one is known only from Scan.
	sp, _ := tb.Resolve(netip.AddrPortFrom(tn.clientIP, 1), netip.AddrPortFrom(tn.serverIP, early))
	if sp == nil || sp.PID != earlyPID || sp.Exe != pyExe {
		t.Errorf("scanned listener: server = %+v, want pid %d", sp, earlyPID)
	}

	ps := tb.Processes()
	for _, want := range []struct {
		pid  uint32
		port uint16
	}{{earlyPID, early}, {latePID, late}} {
		i := slices.IndexFunc(ps, func(p attrib.ProcessInfo) bool { return p.PID == want.pid })
		if i < 0 || !slices.Contains(ps[i].ListenPorts, want.port) || ps[i].NetNS != tn.serverNS || ps[i].Connections == 0 {
			t.Errorf("Processes misses server %d on %d: %+v", want.pid, want.port, ps)
		}
	}
	t.Logf("table stats %+v", tb.Stats())
}

// TestAttribNginxWorker checks that an nginx flow resolves to the worker
// that accepted it, not to the master that listens.
func TestAttribNginxWorker(t *testing.T) {
	requireRoot(t)
	tn := newTestNet(t)
	const port = 18780
	tb := attrib.New(attrib.Config{ProcFS: procfs.New("")}, nil)
	var rec recorder
	startMonitor(t, tb.OnProc, func(e capture.SockEvent) { tb.OnSock(e); rec.onSock(e) })
	master := uint32(tn.startNginx(t, port))

	cli := uint32(tn.curl(t, port))
	con := rec.waitSock(t, "connect", func(e capture.SockEvent) bool {
		return e.Kind == capture.SockConnect && e.TGID == cli
	})
	serverAP := netip.AddrPortFrom(tn.serverIP, port)
	rec.waitSock(t, "accept", func(e capture.SockEvent) bool {
		return e.Kind == capture.SockAccept && e.Remote == con.Local
	})
	sp, _ := tb.Resolve(con.Local, serverAP)
	if sp == nil || sp.PID == master || sp.Exe != "/usr/sbin/nginx" {
		t.Fatalf("server = %+v, want an nginx worker (master %d)", sp, master)
	}
	ps := tb.Processes()
	i := slices.IndexFunc(ps, func(p attrib.ProcessInfo) bool { return p.PID == sp.PID })
	if i < 0 || ps[i].PPID != master {
		t.Errorf("worker %d: parent %+v, want %d", sp.PID, ps[i], master)
	}
	// The master listens; the listener fallback names it.
	if lp, _ := tb.Resolve(netip.AddrPortFrom(tn.clientIP, 1), serverAP); lp == nil || lp.PID != master {
		t.Errorf("listener = %+v, want master %d", lp, master)
	}
}

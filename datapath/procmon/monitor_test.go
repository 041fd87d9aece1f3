package procmon

import (
	"errors"
	"fmt"
	"golang.org/x/sys/unix"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/apiwarden/apiwarden/apimodel/capture"
)

// TestMonitorEvents runs a server in one netns and curl in another and
// checks every event kind with its process, tuple and namespace.
func TestMonitorEvents(t *testing.T) {
	requireRoot(t)
	tn := newTestNet(t)
	var rec recorder
	m := startMonitor(t, rec.onProc, rec.onSock)

	const port = 18765
	srv := uint32(tn.startServer(t, port))
	cli := uint32(tn.curl(t, port))
	serverAP := netip.AddrPortFrom(tn.serverIP, port)

	lis := rec.waitSock(t, "listen", func(e capture.SockEvent) bool {
		return e.Kind == capture.SockListen && e.TGID == srv
	})
	if lis.Local.Port() != port || !lis.Local.Addr().IsUnspecified() || lis.NetNS != tn.serverNS || lis.Comm == "" {
		t.Errorf("listen = %+v, want *:%d in netns %d", lis, port, tn.serverNS)
	}
	con := rec.waitSock(t, "connect", func(e capture.SockEvent) bool {
		return e.Kind == capture.SockConnect && e.TGID == cli
	})
	if con.Remote != serverAP || con.Local.Addr() != tn.clientIP || con.Local.Port() == 0 || con.NetNS != tn.clientNS || con.Comm != "curl" {
		t.Errorf("connect = %+v, want %s -> %s in netns %d", con, tn.clientIP, serverAP, tn.clientNS)
	}
	acc := rec.waitSock(t, "accept", func(e capture.SockEvent) bool {
		return e.Kind == capture.SockAccept && e.Remote == con.Local
	})
	if acc.TGID != srv || acc.Local != serverAP || acc.NetNS != tn.serverNS {
		t.Errorf("accept = %+v, want pid %d %s <- %s", acc, srv, serverAP, con.Local)
	}
	rec.waitSock(t, "client close", func(e capture.SockEvent) bool {
		return e.Kind == capture.SockClose && e.Local == con.Local && e.Remote == serverAP && e.NetNS == tn.clientNS
	})
	rec.waitSock(t, "server close", func(e capture.SockEvent) bool {
		return e.Kind == capture.SockClose && e.Local == serverAP && e.Remote == con.Local && e.NetNS == tn.serverNS
	})
	ex := rec.waitProc(t, "curl exec", func(e capture.ProcEvent) bool {
		return e.Kind == capture.ProcExec && e.TGID == cli && strings.HasSuffix(e.Filename, "/curl")
	})
	if ex.Comm != "curl" || ex.PPID == 0 || ex.CgroupID == 0 {
		t.Errorf("exec = %+v", ex)
	}
	rec.waitProc(t, "curl exit", func(e capture.ProcEvent) bool {
		return e.Kind == capture.ProcExit && e.TGID == cli
	})

	// No syscall tracepoint: attached at all, one sends every syscall of
	// every task on the host through the syscall-trace path.
	if m.acceptVia != "sock/sock_recv_length" {
		t.Errorf("accepting processes named via %q, want the sock_recv_length tracepoint (Linux >= 6.3)", m.acceptVia)
	}
	st, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.ProcEvents == 0 || st.SockEvents == 0 || st.DecodeErrors != 0 {
		t.Errorf("Stats = %+v", st)
	}
	t.Logf("stats %+v", st)
}

// TestMonitorLostAtBound fills a one-page ring buffer that nobody reads and
// checks that the kernel counts the records it had to drop.
func TestMonitorLostAtBound(t *testing.T) {
	requireRoot(t)
	m, err := New(Config{RingBufferBytes: os.Getpagesize()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	// Each exec+exit writes two ~320-byte records: 40 overflow 4 KiB.
	for range 40 {
		exec.Command("true").Run()
	}
	st, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Lost == 0 {
		t.Errorf("Stats = %+v, want lost records", st)
	}
}

func TestPermissionError(t *testing.T) {
	err := wrapPerm(fmt.Errorf("load: %w", unix.EPERM))
	if !errors.Is(err, ErrPermission) || !errors.Is(err, unix.EPERM) {
		t.Errorf("wrapPerm(EPERM) = %v", err)
	}
	if err := wrapPerm(unix.EINVAL); errors.Is(err, ErrPermission) {
		t.Errorf("wrapPerm(EINVAL) = %v", err)
	}
}

// TestMonitorDualStack checks the IPv6 accept path: a dual-stack listener
// serving an IPv4 client reports plain IPv4 tuples; stopping the server
// reports the listener's close.
func TestMonitorDualStack(t *testing.T) {
	requireRoot(t)
	tn := newTestNet(t)
	var rec recorder
	startMonitor(t, rec.onProc, rec.onSock)

	const port = 18766
	pid, cmd := tn.startServerOn(t, "::", port)
	srv := uint32(pid)
	cli := uint32(tn.curl(t, port))
	serverAP := netip.AddrPortFrom(tn.serverIP, port)

	lis := rec.waitSock(t, "listen", func(e capture.SockEvent) bool {
		return e.Kind == capture.SockListen && e.TGID == srv
	})
	if lis.Local != netip.MustParseAddrPort(fmt.Sprintf("[::]:%d", port)) {
		t.Errorf("listen = %+v, want [::]:%d", lis, port)
	}
	con := rec.waitSock(t, "connect", func(e capture.SockEvent) bool {
		return e.Kind == capture.SockConnect && e.TGID == cli
	})
	acc := rec.waitSock(t, "accept", func(e capture.SockEvent) bool {
		return e.Kind == capture.SockAccept && e.Remote == con.Local
	})
	if acc.Local != serverAP || acc.TGID != srv {
		t.Errorf("accept = %+v, want %s <- %s (unmapped)", acc, serverAP, con.Local)
	}

	cmd.Process.Kill()
	cmd.Wait()
	rec.waitSock(t, "listener close", func(e capture.SockEvent) bool {
		return e.Kind == capture.SockClose && e.Local == lis.Local && e.NetNS == tn.serverNS &&
			e.Remote.Port() == 0 && e.Remote.Addr().IsUnspecified()
	})
	rec.waitProc(t, "server exit", func(e capture.ProcEvent) bool {
		return e.Kind == capture.ProcExit && e.TGID == srv
	})
}

// TestSeenSocksAtBound fills the table of sockets already reported to its
// bound with addresses no socket has, then checks that the first receive
// on a newly accepted connection is still reported: the LRU evicts an old
// entry instead of refusing the new one, so a host with more open sockets
// than the table holds loses only repeats (a socket whose entry was
// evicted is reported again at its next receive), never a new socket.
func TestSeenSocksAtBound(t *testing.T) {
	requireRoot(t)
	tn := newTestNet(t)
	var rec recorder
	m := startMonitor(t, rec.onProc, rec.onSock)

	seen := m.objs.SeenSocks
	if got := seen.MaxEntries(); got != 65536 {
		t.Fatalf("seen_socks max_entries = %d, want 65536 (MAX_SEEN_SOCKS)", got)
	}
	one := uint8(1)
	// Kernel addresses are above 0xffff800000000000; these are not.
	for i := uint64(1); i <= uint64(seen.MaxEntries()); i++ {
		if err := seen.Update(i<<6, one, 0); err != nil {
			t.Fatalf("filling seen_socks, entry %d: %v", i, err)
		}
	}
	var n int
	var k uint64
	var v uint8
	for it := seen.Iterate(); it.Next(&k, &v); {
		n++
	}
	if n < int(seen.MaxEntries())*9/10 {
		t.Fatalf("seen_socks holds %d entries after filling, want about %d", n, seen.MaxEntries())
	}

	const port = 18767
	srv := uint32(tn.startServer(t, port))
	cli := uint32(tn.curl(t, port))
	con := rec.waitSock(t, "connect", func(e capture.SockEvent) bool {
		return e.Kind == capture.SockConnect && e.TGID == cli
	})
	acc := rec.waitSock(t, "accept with a full seen_socks", func(e capture.SockEvent) bool {
		return e.Kind == capture.SockAccept && e.Remote == con.Local
	})
	if acc.TGID != srv {
		t.Errorf("accept = %+v, want pid %d", acc, srv)
	}
}

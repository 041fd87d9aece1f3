package attrib

import (
	"errors"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/apiwarden/apiwarden/apimodel/call"
	"github.com/apiwarden/apiwarden/apimodel/capture"
	"github.com/apiwarden/apiwarden/procfs"
)

const containerID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// fakeFS is an in-memory /proc.
type fakeFS struct {
	procs  map[uint32]procfs.Process
	inodes map[uint32][]uint64
	socks  map[uint32][]procfs.Socket // by netns
	reads  int
}

func (f *fakeFS) PIDs() ([]uint32, error) {
	var out []uint32
	for pid := range f.procs {
		out = append(out, pid)
	}
	return out, nil
}

func (f *fakeFS) Process(pid uint32) (procfs.Process, error) {
	f.reads++
	p, ok := f.procs[pid]
	if !ok {
		return p, os.ErrNotExist
	}
	return p, nil
}

func (f *fakeFS) Exe(pid uint32) (string, error) {
	p, err := f.Process(pid)
	return p.Exe, err
}

func (f *fakeFS) Cgroup(pid uint32) (string, error) {
	p, err := f.Process(pid)
	return p.Cgroup, err
}

func (f *fakeFS) SocketInodes(pid uint32) ([]uint64, error) { return f.inodes[pid], nil }

func (f *fakeFS) TCPSockets(pid uint32) ([]procfs.Socket, error) {
	p, ok := f.procs[pid]
	if !ok {
		return nil, errors.New("gone")
	}
	return f.socks[p.NetNS], nil
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func ap(s string) netip.AddrPort         { return netip.MustParseAddrPort(s) }
func exec(pid, ppid uint32, comm, file string) capture.ProcEvent {
	return capture.ProcEvent{Kind: capture.ProcExec, TGID: pid, PPID: ppid, Comm: comm, Filename: file}
}
func exit(pid uint32) capture.ProcEvent { return capture.ProcEvent{Kind: capture.ProcExit, TGID: pid} }
func sock(kind capture.SockEventKind, pid uint32, netns uint32, local, remote string) capture.SockEvent {
	ev := capture.SockEvent{Kind: kind, TGID: pid, PID: pid, NetNS: netns, Local: ap(local), Comm: "c"}
	if remote != "" {
		ev.Remote = ap(remote)
	} else {
		ev.Remote = netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
	}
	return ev
}

func newTable(t *testing.T, fs *fakeFS, cfg Config) (*Table, *fakeClock) {
	t.Helper()
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	if fs != nil {
		cfg.ProcFS = fs
	}
	cfg.Now = clk.now
	return New(cfg, nil), clk
}

func pidOf(p *call.Process) uint32 {
	if p == nil {
		return 0
	}
	return p.PID
}

// step is one input to the table: an event or a clock advance.
type step struct {
	proc    *capture.ProcEvent
	sock    *capture.SockEvent
	advance time.Duration
}

func P(ev capture.ProcEvent) step { return step{proc: &ev} }
func S(ev capture.SockEvent) step { return step{sock: &ev} }
func wait(d time.Duration) step   { return step{advance: d} }

func TestResolve(t *testing.T) {
	const hostNS, ctrNS = 4026531840, 4026532000
	cases := []struct {
		name           string
		steps          []step
		client, server string
		wantServer     uint32
		wantClient     uint32
	}{{
		name: "accepting worker beats listening master",
		steps: []step{
			P(exec(10, 1, "nginx", "/usr/sbin/nginx")),
			S(sock(capture.SockListen, 10, hostNS, "0.0.0.0:80", "")),
			S(sock(capture.SockAccept, 11, hostNS, "10.0.0.1:80", "10.0.0.9:40000")),
		},
		client: "10.0.0.9:40000", server: "10.0.0.1:80", wantServer: 11,
	}, {
		// The kernel reports a client socket it never saw connect()
		// (open since before the agent) as accepted at its first
		// receive: the connect it knows stands.
		name: "accept event does not turn a connected socket around",
		steps: []step{
			S(sock(capture.SockConnect, 30, hostNS, "10.0.0.9:40000", "10.0.0.1:80")),
			S(sock(capture.SockAccept, 30, hostNS, "10.0.0.9:40000", "10.0.0.1:80")),
		},
		client: "10.0.0.9:40000", server: "10.0.0.1:80", wantClient: 30,
	}, {
		name: "listener fallback without accept",
		steps: []step{
			S(sock(capture.SockListen, 10, hostNS, "0.0.0.0:80", "")),
		},
		client: "10.0.0.9:40000", server: "10.0.0.1:80", wantServer: 10,
	}, {
		name: "exact address beats wildcard",
		steps: []step{
			S(sock(capture.SockListen, 10, hostNS, "127.0.0.1:8080", "")),
			S(sock(capture.SockListen, 20, ctrNS, "0.0.0.0:8080", "")),
		},
		client: "127.0.0.1:40000", server: "127.0.0.1:8080", wantServer: 10,
	}, {
		name: "wildcard in the namespace owning the address",
		steps: []step{
			S(sock(capture.SockListen, 20, ctrNS, "0.0.0.0:8080", "")),
			S(sock(capture.SockListen, 10, hostNS, "0.0.0.0:8080", "")),
			// An earlier connection taught us that 10.1.0.2 is in ctrNS.
			S(sock(capture.SockAccept, 20, ctrNS, "10.1.0.2:8080", "10.1.0.1:1111")),
		},
		client: "10.1.0.1:2222", server: "10.1.0.2:8080", wantServer: 20,
	}, {
		name: "ipv4 listener does not serve ipv6",
		steps: []step{
			S(sock(capture.SockListen, 10, hostNS, "0.0.0.0:80", "")),
		},
		client: "[fd00::9]:40000", server: "[fd00::1]:80", wantServer: 0,
	}, {
		name: "dual-stack listener serves ipv4 (mapped addresses unmapped)",
		steps: []step{
			S(sock(capture.SockListen, 10, hostNS, "[::]:80", "")),
		},
		client: "[::ffff:10.0.0.9]:40000", server: "10.0.0.1:80", wantServer: 10,
	}, {
		name: "server in another netns seen from the host veth",
		steps: []step{
			P(exec(30, 1, "python3", "/usr/bin/python3")),
			S(sock(capture.SockListen, 30, ctrNS, "0.0.0.0:8000", "")),
		},
		client: "10.200.0.1:50000", server: "10.200.0.2:8000", wantServer: 30,
	}, {
		name: "short-lived client resolved after exit and close",
		steps: []step{
			S(sock(capture.SockListen, 10, hostNS, "0.0.0.0:80", "")),
			P(exec(40, 2, "curl", "/usr/bin/curl")),
			S(sock(capture.SockConnect, 40, hostNS, "127.0.0.1:40000", "127.0.0.1:80")),
			S(sock(capture.SockAccept, 10, hostNS, "127.0.0.1:80", "127.0.0.1:40000")),
			S(sock(capture.SockClose, 0, hostNS, "127.0.0.1:40000", "127.0.0.1:80")),
			S(sock(capture.SockClose, 0, hostNS, "127.0.0.1:80", "127.0.0.1:40000")),
			P(exit(40)),
			wait(50 * time.Second),
		},
		client: "127.0.0.1:40000", server: "127.0.0.1:80", wantServer: 10, wantClient: 40,
	}, {
		name: "closed connection forgotten after grace, listener remains",
		steps: []step{
			S(sock(capture.SockListen, 10, hostNS, "0.0.0.0:80", "")),
			S(sock(capture.SockConnect, 40, hostNS, "127.0.0.1:40000", "127.0.0.1:80")),
			S(sock(capture.SockAccept, 11, hostNS, "127.0.0.1:80", "127.0.0.1:40000")),
			S(sock(capture.SockClose, 0, hostNS, "127.0.0.1:40000", "127.0.0.1:80")),
			S(sock(capture.SockClose, 0, hostNS, "127.0.0.1:80", "127.0.0.1:40000")),
			wait(DefaultCloseGrace + time.Second),
		},
		client: "127.0.0.1:40000", server: "127.0.0.1:80", wantServer: 10, wantClient: 0,
	}, {
		name: "closed listener no longer resolves",
		steps: []step{
			S(sock(capture.SockListen, 10, hostNS, "0.0.0.0:80", "")),
			S(sock(capture.SockClose, 0, hostNS, "0.0.0.0:80", "")),
		},
		client: "10.0.0.9:1", server: "10.0.0.1:80", wantServer: 0,
	}, {
		name: "reuseport listener survives one close",
		steps: []step{
			S(sock(capture.SockListen, 10, hostNS, "0.0.0.0:80", "")),
			S(sock(capture.SockListen, 11, hostNS, "0.0.0.0:80", "")),
			S(sock(capture.SockClose, 0, hostNS, "0.0.0.0:80", "")),
		},
		client: "10.0.0.9:1", server: "10.0.0.1:80", wantServer: 11,
	}, {
		name: "connect of the same tuple is not the server",
		steps: []step{
			S(sock(capture.SockConnect, 40, hostNS, "10.0.0.1:80", "10.0.0.9:1")),
		},
		client: "10.0.0.9:1", server: "10.0.0.1:80", wantServer: 0,
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tb, clk := newTable(t, nil, Config{})
			for _, s := range c.steps {
				switch {
				case s.proc != nil:
					tb.OnProc(*s.proc)
				case s.sock != nil:
					tb.OnSock(*s.sock)
				default:
					clk.add(s.advance)
				}
			}
			sp, cp := tb.Resolve(ap(c.client), ap(c.server))
			if pidOf(sp) != c.wantServer || pidOf(cp) != c.wantClient {
				t.Errorf("Resolve = server %d client %d, want %d %d", pidOf(sp), pidOf(cp), c.wantServer, c.wantClient)
			}
		})
	}
}

func TestEnrichAtExecKeepsShortLivedClient(t *testing.T) {
	fs := &fakeFS{procs: map[uint32]procfs.Process{
		40: {PID: 40, Comm: "curl", Exe: "/usr/bin/curl", Cgroup: "/system.slice/docker-" + containerID + ".scope"},
	}}
	tb, clk := newTable(t, fs, Config{})
	tb.OnProc(exec(40, 1, "curl", "curl"))
	delete(fs.procs, 40) // the process is gone before the call is resolved
	tb.OnSock(sock(capture.SockConnect, 40, 1, "127.0.0.1:5000", "127.0.0.1:80"))
	tb.OnProc(exit(40))
	clk.add(time.Minute)
	_, cp := tb.Resolve(ap("127.0.0.1:5000"), ap("127.0.0.1:80"))
	want := call.Process{PID: 40, Comm: "curl", Exe: "/usr/bin/curl", Cgroup: "/system.slice/docker-" + containerID + ".scope", ContainerID: containerID}
	if cp == nil || *cp != want {
		t.Fatalf("client = %+v, want %+v", cp, want)
	}
	if ps := tb.Processes(); len(ps) != 1 || !ps[0].Exited || ps[0].Connections != 1 {
		t.Errorf("Processes = %+v", ps)
	}
	clk.add(DefaultExitGrace)
	if ps := tb.Processes(); len(ps) != 0 {
		t.Errorf("exited process kept past grace: %+v", ps)
	}
}

func TestExecFilenameWhenProcGone(t *testing.T) {
	tb, _ := newTable(t, &fakeFS{}, Config{})
	tb.OnProc(exec(50, 1, "true", "/usr/bin/true"))
	ps := tb.Processes()
	if len(ps) != 1 || ps[0].Exe != "/usr/bin/true" {
		t.Fatalf("Processes = %+v", ps)
	}
	if s := tb.Stats(); s.ProcFSErrors != 1 {
		t.Errorf("ProcFSErrors = %d, want 1", s.ProcFSErrors)
	}
}

func TestPIDReuseKeepsOldIdentity(t *testing.T) {
	tb, _ := newTable(t, nil, Config{})
	tb.OnProc(exec(60, 1, "old", "/bin/old"))
	tb.OnSock(sock(capture.SockConnect, 60, 1, "127.0.0.1:5000", "127.0.0.1:80"))
	tb.OnProc(exit(60))
	tb.OnProc(exec(60, 1, "new", "/bin/new"))
	_, cp := tb.Resolve(ap("127.0.0.1:5000"), ap("127.0.0.1:80"))
	if cp == nil || cp.Exe != "/bin/old" {
		t.Fatalf("client = %+v, want the old image", cp)
	}
	if ps := tb.Processes(); len(ps) != 1 || ps[0].Exe != "/bin/new" || ps[0].Exited {
		t.Errorf("Processes = %+v", ps)
	}
}

func TestProcessesListsPortsAndConnections(t *testing.T) {
	fs := &fakeFS{procs: map[uint32]procfs.Process{
		10: {PID: 10, PPID: 1, Comm: "nginx", Exe: "/usr/sbin/nginx", NetNS: 7},
	}}
	tb, _ := newTable(t, fs, Config{})
	tb.OnSock(sock(capture.SockListen, 10, 7, "0.0.0.0:443", ""))
	tb.OnSock(sock(capture.SockListen, 10, 7, "0.0.0.0:80", ""))
	tb.OnSock(sock(capture.SockListen, 10, 7, "[::]:80", ""))
	tb.OnSock(sock(capture.SockAccept, 10, 7, "10.0.0.1:80", "10.0.0.2:1"))
	tb.OnSock(sock(capture.SockAccept, 10, 7, "10.0.0.1:80", "10.0.0.2:2"))
	ps := tb.Processes()
	if len(ps) != 1 {
		t.Fatalf("Processes = %+v", ps)
	}
	p := ps[0]
	if p.Exe != "/usr/sbin/nginx" || p.PPID != 1 || !slices.Equal(p.ListenPorts, []uint16{80, 443}) || p.Connections != 2 {
		t.Errorf("Processes()[0] = %+v", p)
	}
}

func TestScan(t *testing.T) {
	const hostNS, ctrNS = 1, 2
	fs := &fakeFS{
		procs: map[uint32]procfs.Process{
			100: {PID: 100, Comm: "nginx", Exe: "/usr/sbin/nginx", NetNS: hostNS},
			101: {PID: 101, PPID: 100, Comm: "nginx", Exe: "/usr/sbin/nginx", NetNS: hostNS},
			200: {PID: 200, Comm: "app", Exe: "/app", NetNS: ctrNS, Cgroup: "/kubepods/besteffort/podx/" + containerID},
			300: {PID: 300, Comm: "kthreadd"},
		},
		inodes: map[uint32][]uint64{
			100: {1},    // listener, shared with the worker
			101: {1, 2}, // worker holds an accepted connection
			200: {3, 4}, // container app: listener + outbound connection
		},
		socks: map[uint32][]procfs.Socket{
			hostNS: {
				{Local: ap("0.0.0.0:80"), Remote: ap("0.0.0.0:0"), State: procfs.TCPListen, Inode: 1},
				{Local: ap("10.0.0.1:80"), Remote: ap("10.0.0.9:5555"), State: procfs.TCPEstablished, Inode: 2},
				{Local: ap("10.0.0.1:81"), Remote: ap("10.0.0.9:5556"), State: procfs.TCPEstablished, Inode: 99}, // owner unknown
			},
			ctrNS: {
				{Local: ap("0.0.0.0:9000"), Remote: ap("0.0.0.0:0"), State: procfs.TCPListen, Inode: 3},
				{Local: ap("10.1.0.2:41000"), Remote: ap("10.0.0.1:80"), State: procfs.TCPEstablished, Inode: 4},
			},
		},
	}
	tb, _ := newTable(t, fs, Config{})
	if err := tb.Scan(); err != nil {
		t.Fatal(err)
	}
	sp, cp := tb.Resolve(ap("10.0.0.9:5555"), ap("10.0.0.1:80"))
	if pidOf(sp) != 101 || cp != nil {
		t.Errorf("accepted conn: server %d client %v, want worker 101", pidOf(sp), cp)
	}
	sp, cp = tb.Resolve(ap("10.1.0.2:41000"), ap("10.0.0.1:80"))
	if pidOf(sp) != 100 || pidOf(cp) != 200 || cp.ContainerID != containerID {
		t.Errorf("container client: server %d client %+v", pidOf(sp), cp)
	}
	sp, _ = tb.Resolve(ap("10.200.0.1:1"), ap("10.1.0.2:9000"))
	if pidOf(sp) != 200 {
		t.Errorf("container listener: server %d, want 200", pidOf(sp))
	}
	s := tb.Stats()
	if s.ScannedProcesses != 3 || s.ScannedSockets != 4 || s.Listeners != 2 || s.Conns != 2 {
		t.Errorf("Stats = %+v", s)
	}
}

func TestBounds(t *testing.T) {
	t.Run("MaxProcesses", func(t *testing.T) {
		tb, _ := newTable(t, nil, Config{MaxProcesses: 3})
		for pid := uint32(1); pid <= 4; pid++ {
			tb.OnProc(exec(pid, 0, "p", "/p"))
		}
		s := tb.Stats()
		if s.Processes != 3 || s.ProcessesEvicted != 1 {
			t.Errorf("Stats = %+v", s)
		}
		if ps := tb.Processes(); ps[0].PID != 2 {
			t.Errorf("least recent not evicted: %+v", ps)
		}
	})
	t.Run("MaxExited", func(t *testing.T) {
		tb, _ := newTable(t, nil, Config{MaxExited: 2})
		for pid := uint32(1); pid <= 3; pid++ {
			tb.OnProc(exec(pid, 0, "p", "/p"))
			tb.OnProc(exit(pid))
		}
		s := tb.Stats()
		if s.Exited != 2 || s.Processes != 2 || s.ExitedEvicted != 1 {
			t.Errorf("Stats = %+v", s)
		}
	})
	t.Run("MaxListeners", func(t *testing.T) {
		tb, _ := newTable(t, nil, Config{MaxListeners: 2})
		tb.OnSock(sock(capture.SockListen, 1, 1, "0.0.0.0:1", ""))
		tb.OnSock(sock(capture.SockListen, 1, 1, "0.0.0.0:2", ""))
		tb.OnSock(sock(capture.SockListen, 1, 1, "0.0.0.0:3", ""))
		s := tb.Stats()
		if s.Listeners != 2 || s.ListenersDropped != 1 {
			t.Errorf("Stats = %+v", s)
		}
		if sp, _ := tb.Resolve(ap("10.0.0.2:9"), ap("10.0.0.1:1")); sp == nil {
			t.Error("old listener lost when full")
		}
	})
	t.Run("MaxConns", func(t *testing.T) {
		tb, _ := newTable(t, nil, Config{MaxConns: 2})
		tb.OnSock(sock(capture.SockConnect, 1, 1, "127.0.0.1:1", "127.0.0.1:80"))
		tb.OnSock(sock(capture.SockConnect, 1, 1, "127.0.0.1:2", "127.0.0.1:80"))
		tb.Resolve(ap("127.0.0.1:1"), ap("127.0.0.1:80")) // lookups do not refresh; events do
		tb.OnSock(sock(capture.SockConnect, 1, 1, "127.0.0.1:3", "127.0.0.1:80"))
		s := tb.Stats()
		if s.Conns != 2 || s.ConnsEvicted != 1 {
			t.Errorf("Stats = %+v", s)
		}
		if _, cp := tb.Resolve(ap("127.0.0.1:1"), ap("127.0.0.1:80")); cp != nil {
			t.Error("oldest connection not evicted")
		}
		if _, cp := tb.Resolve(ap("127.0.0.1:3"), ap("127.0.0.1:80")); cp == nil {
			t.Error("newest connection missing")
		}
	})
	t.Run("MaxCgroups", func(t *testing.T) {
		fs := &fakeFS{procs: map[uint32]procfs.Process{
			1: {PID: 1, Exe: "/a", Cgroup: "/a"}, 2: {PID: 2, Exe: "/b", Cgroup: "/b"},
			3: {PID: 3, Exe: "/c", Cgroup: "/a"}, 4: {PID: 4, Exe: "/d", Cgroup: "/"},
		}}
		tb, _ := newTable(t, fs, Config{MaxCgroups: 1})
		for _, e := range []struct {
			pid uint32
			cg  uint64
		}{{1, 10}, {2, 20}, {3, 10}, {4, 1}} {
			ev := exec(e.pid, 0, "p", "")
			ev.CgroupID = e.cg
			tb.OnProc(ev)
		}
		s := tb.Stats()
		// pid 3 hits the cache (2 exe reads + 1 cgroup read saved), root id 1 never cached.
		if s.Cgroups != 1 || s.CgroupsDropped != 1 || fs.reads != 4+3 {
			t.Errorf("Stats = %+v, procfs reads %d", s, fs.reads)
		}
	})
	t.Run("MaxAddrs", func(t *testing.T) {
		tb, _ := newTable(t, nil, Config{MaxAddrs: 1})
		tb.OnSock(sock(capture.SockAccept, 1, 1, "10.0.0.1:80", "10.0.0.9:1"))
		tb.OnSock(sock(capture.SockAccept, 1, 2, "10.0.0.2:80", "10.0.0.9:2"))
		tb.OnSock(sock(capture.SockAccept, 1, 1, "127.0.0.1:80", "127.0.0.1:2")) // loopback never learned
		s := tb.Stats()
		if s.Addrs != 1 || s.AddrsDropped != 1 {
			t.Errorf("Stats = %+v", s)
		}
	})
}

func BenchmarkResolve(b *testing.B) {
	tb := New(Config{}, nil)
	for i := range 1000 {
		tb.OnSock(sock(capture.SockListen, uint32(i), 1, netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(1000+i)).String(), ""))
		tb.OnSock(sock(capture.SockAccept, uint32(i), 1, netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), uint16(1000+i)).String(), "10.0.0.9:5000"))
	}
	b.ReportAllocs()
	for b.Loop() {
		tb.Resolve(ap("10.0.0.9:5000"), ap("10.0.0.1:1500"))
	}
}

// TestConcurrentUse runs the event feed and lookups at once (go test -race).
func TestConcurrentUse(t *testing.T) {
	tb := New(Config{MaxConns: 64}, nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 2000 {
			port := uint16(1000 + i%200)
			local := netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), 80)
			remote := netip.AddrPortFrom(netip.MustParseAddr("10.0.0.2"), port)
			tb.OnSock(capture.SockEvent{Kind: capture.SockAccept, TGID: uint32(i % 7), Local: local, Remote: remote})
			tb.OnSock(capture.SockEvent{Kind: capture.SockClose, Local: local, Remote: remote})
			tb.OnProc(exec(uint32(i%7), 1, "p", "/p"))
		}
	}()
	for range 2000 {
		tb.Resolve(ap("10.0.0.2:1001"), ap("10.0.0.1:80"))
		tb.Processes()
	}
	<-done
}

func TestProcessByPIDWithinGrace(t *testing.T) {
	fs := &fakeFS{procs: map[uint32]procfs.Process{
		41: {PID: 41, Comm: "node", Exe: "/usr/bin/node"},
	}}
	tb, clk := newTable(t, fs, Config{})
	tb.OnProc(exec(41, 1, "node", "node"))
	if p := tb.Process(41); p == nil || p.Exe != "/usr/bin/node" {
		t.Fatalf("Process(41) = %+v", p)
	}
	tb.OnProc(exit(41))
	if p := tb.Process(41); p == nil {
		t.Fatal("exited process forgotten before the grace period")
	}
	clk.add(DefaultExitGrace + time.Second)
	tb.Processes() // sweeps
	if p := tb.Process(41); p != nil {
		t.Fatalf("Process(41) after grace = %+v", p)
	}
	if tb.Process(999) != nil {
		t.Fatal("unknown pid resolved")
	}
}

// The exported process is shared while its identity holds, and a changed
// identity (an exec under the same pid) gets a new copy without touching
// the one callers already keep.
func TestExportSharedUntilIdentityChanges(t *testing.T) {
	fs := &fakeFS{procs: map[uint32]procfs.Process{
		41: {PID: 41, Comm: "node", Exe: "/usr/bin/node"},
	}}
	tb, _ := newTable(t, fs, Config{})
	tb.OnProc(exec(41, 1, "node", "node"))
	tb.OnSock(sock(capture.SockListen, 41, 1, "0.0.0.0:80", ""))
	p1 := tb.Process(41)
	srv, _ := tb.Resolve(ap("10.0.0.9:40000"), ap("10.0.0.1:80"))
	if p1 == nil || srv != p1 || tb.Process(41) != p1 {
		t.Fatalf("Process/Resolve copies differ: %p %p", p1, srv)
	}
	fs.procs[41] = procfs.Process{PID: 41, Comm: "python3", Exe: "/usr/bin/python3"}
	tb.OnProc(exec(41, 1, "python3", "python3"))
	p2 := tb.Process(41)
	if p2 == nil || p2 == p1 || p2.Exe != "/usr/bin/python3" {
		t.Fatalf("after exec: %+v (old %p new %p)", p2, p1, p2)
	}
	if p1.Exe != "/usr/bin/node" || p1.Comm != "node" {
		t.Fatalf("kept copy changed: %+v", p1)
	}
}

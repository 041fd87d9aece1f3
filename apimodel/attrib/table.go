// Package attrib binds TCP flows to the processes at both ends. It keeps a
// bounded table of processes, listening sockets and connections, fed by
// capture.ProcEvent / capture.SockEvent values and seeded from /proc at
// startup, and answers "which process serves this flow, which one is the
// client" for every observed call.
package attrib

import (
	"container/list"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/apiwarden/apiwarden/apimodel/call"
	"github.com/apiwarden/apiwarden/apimodel/capture"
	"github.com/apiwarden/apiwarden/procfs"
)

// Defaults of Config.
const (
	DefaultMaxProcesses = 32768
	DefaultMaxExited    = 4096
	DefaultMaxListeners = 16384
	DefaultMaxConns     = 65536
	DefaultMaxAddrs     = 4096
	DefaultMaxCgroups   = 4096
	DefaultExitGrace    = 2 * time.Minute
	DefaultCloseGrace   = time.Minute
)

// ProcFS is the view of /proc the table needs; *procfs.FS implements it and
// tests use a fake.
type ProcFS interface {
	PIDs() ([]uint32, error)
	Process(pid uint32) (procfs.Process, error)
	Exe(pid uint32) (string, error)
	Cgroup(pid uint32) (string, error)
	SocketInodes(pid uint32) ([]uint64, error)
	TCPSockets(pid uint32) ([]procfs.Socket, error)
}

// Config bounds and tunes a Table. Zero values take the defaults.
type Config struct {
	// ProcFS enriches processes (exe, cgroup) and seeds the table in Scan;
	// nil means events only.
	ProcFS ProcFS
	// MaxProcesses bounds process entries, live and exited; the least
	// recently active one is evicted when full.
	MaxProcesses int
	// MaxExited bounds exited processes kept for ExitGrace; the oldest exit
	// is forgotten first.
	MaxExited int
	// MaxListeners bounds listening sockets; new ones are dropped when full
	// (listeners are long-lived, so the old ones are the valuable ones).
	MaxListeners int
	// MaxConns bounds connections; the least recently active is evicted.
	MaxConns int
	// MaxAddrs bounds the learned address -> network namespace map.
	MaxAddrs int
	// MaxCgroups bounds the cgroup id -> path cache.
	MaxCgroups int
	// ExitGrace keeps an exited process resolvable: calls are resolved when
	// they complete, often after a short-lived client such as curl exited.
	ExitGrace time.Duration
	// CloseGrace keeps a closed connection resolvable for the same reason.
	CloseGrace time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Stats are the table's sizes and limit counters.
type Stats struct {
	// Current sizes.
	Processes, Exited, Listeners, Conns, Addrs, Cgroups int

	ProcessesEvicted    uint64 // MaxProcesses hit
	ExitedEvicted       uint64 // MaxExited hit
	ListenersDropped    uint64 // MaxListeners hit
	ConnsEvicted        uint64 // MaxConns hit
	AcceptIgnored       uint64 // accept event for a socket known to be connected
	AddrsDropped        uint64 // MaxAddrs hit
	CgroupsDropped      uint64 // MaxCgroups hit
	ProcFSErrors        uint64 // /proc reads that failed for a live process
	ResolvedServer      uint64 // Resolve found the server process
	ResolvedClient      uint64 // Resolve found the client process
	UnresolvedServer    uint64 // Resolve found no server process
	ScannedProcesses    uint64 // processes read by Scan
	ScannedSockets      uint64 // listeners and connections read by Scan
	ListenerCloseOrphan uint64 // close of a listener we did not know
}

// ProcessInfo is one row of GET /v1/processes.
type ProcessInfo struct {
	call.Process
	PPID        uint32
	NetNS       uint32
	ListenPorts []uint16 // sorted, unique
	Connections uint64   // connections accepted or made since first seen
	Exited      bool
}

type connKind uint8

const (
	connAccepted connKind = iota + 1
	connConnected
)

type proc struct {
	pid, ppid   uint32
	comm, exe   string
	cgroup      string
	containerID string
	cgroupID    uint64
	netns       uint32
	exited      time.Time // zero while alive
	enriched    bool      // ProcFS was asked
	conns       uint64
	lru         *list.Element
	// view is the last exported copy, handed out again while the fields
	// it copies are unchanged: a TLS call resolves its process twice,
	// and a copy per call was 2 allocations of every call's path.
	view *call.Process
}

type listenKey struct {
	addr  netip.AddrPort
	netns uint32
}

type listener struct {
	key  listenKey
	proc *proc
	refs int    // SO_REUSEPORT sockets on the same address share an entry
	seq  uint64 // newer wins among equally good matches
}

type connKey struct{ local, remote netip.AddrPort }

type conn struct {
	key    connKey
	kind   connKind
	proc   *proc
	netns  uint32
	closed time.Time
	lru    *list.Element
}

type expiry[T any] struct {
	at time.Time
	v  T
}

// Table is the process and connection table. It is safe for concurrent use:
// the event reader feeds it while the call pipeline resolves against it.
type Table struct {
	cfg Config
	log *slog.Logger

	mu        sync.Mutex
	procs     map[uint32]*proc
	procLRU   list.List // of *proc, front = most recent
	exitedQ   []expiry[*proc]
	listeners map[listenKey]*listener
	byPort    map[uint16][]*listener
	conns     map[connKey]*conn
	connLRU   list.List // of *conn
	closedQ   []expiry[*conn]
	addrNS    map[netip.Addr]uint32
	cgroups   map[uint64]string // cgroup v2 id -> path
	nExited   int               // exited entries still in procs
	seq       uint64
	stats     Stats
}

// New returns an empty table; call Scan to seed it from /proc.
func New(cfg Config, log *slog.Logger) *Table {
	if log == nil {
		log = slog.Default()
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&cfg.MaxProcesses, DefaultMaxProcesses)
	def(&cfg.MaxExited, DefaultMaxExited)
	def(&cfg.MaxListeners, DefaultMaxListeners)
	def(&cfg.MaxConns, DefaultMaxConns)
	def(&cfg.MaxAddrs, DefaultMaxAddrs)
	def(&cfg.MaxCgroups, DefaultMaxCgroups)
	if cfg.ExitGrace <= 0 {
		cfg.ExitGrace = DefaultExitGrace
	}
	if cfg.CloseGrace <= 0 {
		cfg.CloseGrace = DefaultCloseGrace
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Table{
		cfg:       cfg,
		log:       log.With("component", "attrib"),
		procs:     make(map[uint32]*proc),
		listeners: make(map[listenKey]*listener),
		byPort:    make(map[uint16][]*listener),
		conns:     make(map[connKey]*conn),
		addrNS:    make(map[netip.Addr]uint32),
		cgroups:   make(map[uint64]string),
	}
}

// OnProc applies a process exec or exit.
func (t *Table) OnProc(ev capture.ProcEvent) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.cfg.Now()
	t.sweep(now)
	switch ev.Kind {
	case capture.ProcExec:
		// A new image is a new identity even under the same pid: keep the
		// old entry reachable from its connections, start a fresh one.
		if old := t.procs[ev.TGID]; old != nil {
			t.dropProc(old)
		}
		p := t.addProc(&proc{pid: ev.TGID, ppid: ev.PPID, comm: ev.Comm, cgroupID: ev.CgroupID})
		// Read /proc now: a short-lived client may be gone by the time its
		// call is resolved. The event already names comm and parent, and
		// the cgroup is usually cached, so this is one readlink per exec.
		t.enrichExec(p)
		if p.exe == "" {
			p.exe = ev.Filename
		}
	case capture.ProcExit:
		p := t.procs[ev.TGID]
		if p == nil || !p.exited.IsZero() {
			return // never seen doing anything network-related: nothing to keep
		}
		p.exited = now
		t.nExited++
		t.exitedQ = append(t.exitedQ, expiry[*proc]{at: now.Add(t.cfg.ExitGrace), v: p})
		if n := t.exitedCount(); n > t.cfg.MaxExited {
			t.evictOldestExited()
		}
	}
}

// OnSock applies a socket life-cycle event.
func (t *Table) OnSock(ev capture.SockEvent) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.cfg.Now()
	t.sweep(now)
	local := unmap(ev.Local)
	remote := unmap(ev.Remote)
	if ev.TGID == 0 && ev.Kind != capture.SockClose {
		return // kernel-initiated socket (no process to name)
	}
	switch ev.Kind {
	case capture.SockListen:
		t.addListener(listenKey{addr: local, netns: ev.NetNS}, t.procFor(ev))
	case capture.SockAccept:
		// The kernel names an accepted socket at its first receive and
		// takes every TCP socket it did not see connect() for accepted:
		// a client socket open since before the agent started is one,
		// and what the scan of /proc found for it stands.
		if c := t.conns[connKey{local, remote}]; c != nil && c.kind == connConnected && c.closed.IsZero() {
			t.stats.AcceptIgnored++
			return
		}
		t.addConn(connKey{local, remote}, connAccepted, ev.NetNS, t.procFor(ev))
	case capture.SockConnect:
		t.addConn(connKey{local, remote}, connConnected, ev.NetNS, t.procFor(ev))
	case capture.SockClose:
		if remote.Port() == 0 && (!remote.Addr().IsValid() || remote.Addr().IsUnspecified()) {
			t.closeListener(listenKey{addr: local, netns: ev.NetNS})
			return
		}
		if c := t.conns[connKey{local, remote}]; c != nil && c.closed.IsZero() {
			c.closed = now
			t.closedQ = append(t.closedQ, expiry[*conn]{at: now.Add(t.cfg.CloseGrace), v: c})
		}
	}
}

// Resolve names the processes of an observed flow: the server (the process
// that accepted it, else the one listening on the server port) and the
// client (the process that connected, when it is on this host). Either may
// be nil. The results are shared and read-only: the same pointer is
// returned while the process's identity is unchanged.
func (t *Table) Resolve(client, server netip.AddrPort) (serverProc, clientProc *call.Process) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweep(t.cfg.Now())
	client, server = unmap(client), unmap(server)
	var sp, cp *proc
	if c := t.conns[connKey{server, client}]; c != nil && c.kind == connAccepted {
		sp = c.proc
	} else if l := t.listenerFor(server); l != nil {
		sp = l.proc
	}
	if c := t.conns[connKey{client, server}]; c != nil && c.kind == connConnected {
		cp = c.proc
	}
	if sp != nil {
		t.stats.ResolvedServer++
		serverProc = t.export(sp)
	} else {
		t.stats.UnresolvedServer++
	}
	if cp != nil {
		t.stats.ResolvedClient++
		clientProc = t.export(cp)
	}
	return serverProc, clientProc
}

// Process returns the process with this pid (live, or exited within the
// grace period), or nil (shared and read-only, like Resolve's). TLS
// chunks name their process directly.
func (t *Table) Process(pid uint32) *call.Process {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p := t.procs[pid]; p != nil {
		return t.export(p)
	}
	return nil
}

// Processes lists the known processes (live, and exited within the grace
// period), sorted by pid.
func (t *Table) Processes() []ProcessInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweep(t.cfg.Now())
	ports := make(map[*proc][]uint16)
	for _, l := range t.listeners {
		ports[l.proc] = append(ports[l.proc], l.key.addr.Port())
	}
	out := make([]ProcessInfo, 0, len(t.procs))
	for _, p := range t.procs {
		lp := ports[p]
		slices.Sort(lp)
		out = append(out, ProcessInfo{
			Process:     *t.export(p),
			PPID:        p.ppid,
			NetNS:       p.netns,
			ListenPorts: slices.Compact(lp),
			Connections: p.conns,
			Exited:      !p.exited.IsZero(),
		})
	}
	slices.SortFunc(out, func(a, b ProcessInfo) int { return int(a.PID) - int(b.PID) })
	return out
}

// Stats returns the table's sizes and counters.
func (t *Table) Stats() Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.stats
	s.Processes = len(t.procs)
	s.Exited = t.exitedCount()
	s.Listeners = len(t.listeners)
	s.Conns = len(t.conns)
	s.Addrs = len(t.addrNS)
	s.Cgroups = len(t.cgroups)
	return s
}

// ---- internals (t.mu held) ----

func unmap(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// export copies a process, enriching it first if that never happened.
func (t *Table) export(p *proc) *call.Process {
	if !p.enriched && p.exited.IsZero() {
		t.enrich(p)
	}
	if v := p.view; v != nil && v.Comm == p.comm && v.Exe == p.exe && v.Cgroup == p.cgroup && v.ContainerID == p.containerID {
		return v
	}
	p.view = &call.Process{PID: p.pid, Comm: p.comm, Exe: p.exe, Cgroup: p.cgroup, ContainerID: p.containerID}
	return p.view
}

// enrich fills exe and cgroup from /proc, once.
func (t *Table) enrich(p *proc) {
	if t.cfg.ProcFS == nil || p.enriched {
		return
	}
	p.enriched = true
	info, err := t.cfg.ProcFS.Process(p.pid)
	if err != nil {
		t.stats.ProcFSErrors++
		return
	}
	t.fill(p, info)
}

// enrichExec is enrich for a process that just exec'd.
func (t *Table) enrichExec(p *proc) {
	if t.cfg.ProcFS == nil {
		return
	}
	p.enriched = true
	exe, err := t.cfg.ProcFS.Exe(p.pid)
	if err != nil {
		t.stats.ProcFSErrors++
		return
	}
	p.exe = exe
	cg, ok := t.cgroups[p.cgroupID]
	if !ok {
		if cg, err = t.cfg.ProcFS.Cgroup(p.pid); err != nil {
			t.stats.ProcFSErrors++
			return
		}
		t.cacheCgroup(p.cgroupID, cg)
	}
	p.cgroup, p.containerID = cg, procfs.ContainerID(cg)
}

// cacheCgroup remembers a cgroup path by id. Id 1 is the root of the
// unified hierarchy, which is also what every process reports on a
// v1-only host: it names no single path, so it is never cached.
func (t *Table) cacheCgroup(id uint64, path string) {
	if id <= 1 || path == "" {
		return
	}
	if _, ok := t.cgroups[id]; !ok && len(t.cgroups) >= t.cfg.MaxCgroups {
		t.stats.CgroupsDropped++
		return
	}
	t.cgroups[id] = path
}

func (t *Table) fill(p *proc, info procfs.Process) {
	if info.Exe != "" {
		p.exe = info.Exe
	}
	if p.comm == "" {
		p.comm = info.Comm
	}
	if p.ppid == 0 {
		p.ppid = info.PPID
	}
	if p.netns == 0 {
		p.netns = info.NetNS
	}
	if info.Cgroup != "" {
		p.cgroup = info.Cgroup
		p.containerID = procfs.ContainerID(info.Cgroup)
		t.cacheCgroup(p.cgroupID, info.Cgroup)
	}
}

// procFor returns the live entry of the event's process, creating one for
// processes not seen exec'ing (forked workers, started before the agent).
func (t *Table) procFor(ev capture.SockEvent) *proc {
	p := t.procs[ev.TGID]
	if p != nil && p.exited.IsZero() {
		t.procLRU.MoveToFront(p.lru)
		if p.netns == 0 {
			p.netns = ev.NetNS
		}
		return p
	}
	if p != nil {
		t.dropProc(p) // pid reused after exit
	}
	p = t.addProc(&proc{pid: ev.TGID, comm: ev.Comm, cgroupID: ev.CgroupID, netns: ev.NetNS})
	t.enrich(p)
	return p
}

func (t *Table) addProc(p *proc) *proc {
	if len(t.procs) >= t.cfg.MaxProcesses {
		if back := t.procLRU.Back(); back != nil {
			t.dropProc(back.Value.(*proc))
			t.stats.ProcessesEvicted++
		}
	}
	p.lru = t.procLRU.PushFront(p)
	t.procs[p.pid] = p
	return p
}

// dropProc forgets a process; connections and listeners that point to it
// keep their copy, so flows still resolve to the right identity.
func (t *Table) dropProc(p *proc) {
	if t.procs[p.pid] == p {
		delete(t.procs, p.pid)
		if !p.exited.IsZero() {
			t.nExited--
		}
	}
	if p.lru != nil {
		t.procLRU.Remove(p.lru)
		p.lru = nil
	}
}

func (t *Table) exitedCount() int { return t.nExited }

func (t *Table) evictOldestExited() {
	for len(t.exitedQ) > 0 {
		e := t.exitedQ[0]
		t.exitedQ = t.exitedQ[1:]
		if t.procs[e.v.pid] == e.v {
			t.dropProc(e.v)
			t.stats.ExitedEvicted++
			return
		}
	}
}

// sweep expires exited processes and closed connections past their grace.
// Queues are in expiry order, so this costs only what it removes.
func (t *Table) sweep(now time.Time) {
	for len(t.exitedQ) > 0 && !t.exitedQ[0].at.After(now) {
		t.dropProc(t.exitedQ[0].v)
		t.exitedQ = t.exitedQ[1:]
	}
	for len(t.closedQ) > 0 && !t.closedQ[0].at.After(now) {
		c := t.closedQ[0].v
		if t.conns[c.key] == c && !c.closed.IsZero() {
			t.dropConn(c)
		}
		t.closedQ = t.closedQ[1:]
	}
	// Slices that only shrink from the front would keep their array forever.
	if cap(t.exitedQ) > 1024 && len(t.exitedQ) < cap(t.exitedQ)/4 {
		t.exitedQ = slices.Clone(t.exitedQ)
	}
	if cap(t.closedQ) > 1024 && len(t.closedQ) < cap(t.closedQ)/4 {
		t.closedQ = slices.Clone(t.closedQ)
	}
}

func (t *Table) addListener(k listenKey, p *proc) {
	t.seq++
	if l := t.listeners[k]; l != nil {
		l.refs++
		l.proc = p
		l.seq = t.seq
		return
	}
	if len(t.listeners) >= t.cfg.MaxListeners {
		t.stats.ListenersDropped++
		return
	}
	l := &listener{key: k, proc: p, refs: 1, seq: t.seq}
	t.listeners[k] = l
	t.byPort[k.addr.Port()] = append(t.byPort[k.addr.Port()], l)
}

func (t *Table) closeListener(k listenKey) {
	l := t.listeners[k]
	if l == nil {
		t.stats.ListenerCloseOrphan++
		return
	}
	if l.refs--; l.refs > 0 {
		return
	}
	delete(t.listeners, k)
	port := k.addr.Port()
	t.byPort[port] = slices.DeleteFunc(t.byPort[port], func(x *listener) bool { return x == l })
	if len(t.byPort[port]) == 0 {
		delete(t.byPort, port)
	}
}

// listenerFor picks the listener serving addr: one bound to exactly that
// address beats a wildcard one; among wildcards, one in the network
// namespace known to own the address beats the rest; ties go to the newest.
// Namespaces are not required to match: a flow seen on a host-side veth
// carries the container's addresses while the listener lives in the
// container's namespace.
func (t *Table) listenerFor(addr netip.AddrPort) *listener {
	ns, nsKnown := t.addrNS[addr.Addr()]
	var best *listener
	bestScore := 0
	for _, l := range t.byPort[addr.Port()] {
		la := l.key.addr.Addr()
		score := 0
		switch {
		case la == addr.Addr():
			score = 3
		case la.IsUnspecified() && (la.Is6() || addr.Addr().Is4()):
			score = 1
			if nsKnown && l.key.netns == ns {
				score = 2
			}
		}
		if score > bestScore || (score == bestScore && score > 0 && l.seq > best.seq) {
			best, bestScore = l, score
		}
	}
	return best
}

func (t *Table) addConn(k connKey, kind connKind, netns uint32, p *proc) {
	p.conns++
	t.learnAddr(k.local.Addr(), netns)
	if c := t.conns[k]; c != nil {
		// Same tuple again: a new connection reusing the ports.
		c.kind, c.proc, c.netns, c.closed = kind, p, netns, time.Time{}
		t.connLRU.MoveToFront(c.lru)
		return
	}
	if len(t.conns) >= t.cfg.MaxConns {
		if back := t.connLRU.Back(); back != nil {
			t.dropConn(back.Value.(*conn))
			t.stats.ConnsEvicted++
		}
	}
	c := &conn{key: k, kind: kind, proc: p, netns: netns}
	c.lru = t.connLRU.PushFront(c)
	t.conns[k] = c
}

func (t *Table) dropConn(c *conn) {
	delete(t.conns, c.key)
	if c.lru != nil {
		t.connLRU.Remove(c.lru)
		c.lru = nil
	}
}

// learnAddr remembers which network namespace owns a local address, to
// choose among wildcard listeners of several namespaces. Loopback and
// unspecified addresses exist in every namespace and say nothing.
func (t *Table) learnAddr(a netip.Addr, netns uint32) {
	if netns == 0 || !a.IsValid() || a.IsLoopback() || a.IsUnspecified() {
		return
	}
	if _, ok := t.addrNS[a]; !ok && len(t.addrNS) >= t.cfg.MaxAddrs {
		t.stats.AddrsDropped++
		return
	}
	t.addrNS[a] = netns
}

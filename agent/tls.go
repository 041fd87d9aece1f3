package agent

import (
	"context"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/apiwarden/apiwarden/apimodel/assemble"
	"github.com/apiwarden/apiwarden/apimodel/call"
	"github.com/apiwarden/apiwarden/apimodel/capture"
	dptls "github.com/apiwarden/apiwarden/datapath/tls"
	"github.com/apiwarden/apiwarden/procfs"
)

// attachQueueLen bounds the processes waiting for TLS analysis; a burst of
// execs beyond it is counted and those processes are picked up by the
// sensor's own rescans of running processes only if they later map a
// library already probed.
const attachQueueLen = 4096

// maxTLSConns bounds the per-connection bookkeeping of TLS streams.
const maxTLSConns = 65536

// tlsBinder binds the TLS sensor to processes as they start and end, and
// turns its chunks into the shared call pipeline.
type tlsBinder struct {
	sensor *dptls.Sensor
	// queue carries exec (pid) and exit (-pid) events to one worker, in
	// order: analysing a binary can take a while under the sensor's lock,
	// and the process-event reader must never wait for it.
	queue   chan int
	dropped atomic.Uint64 // process events not handled: queue full

	mu sync.Mutex
	// conns maps (pid, fd) to the connection it carries now, oriented
	// local -> remote as the process sees it, and the library that
	// carried it (named when the first chunk arrived, so a client that
	// exits before its call is rebuilt keeps its label). byKey is the
	// reverse, to end a stream when its socket closes and to tell whether
	// the server's own view of a connection was captured.
	conns map[[2]uint32]*tlsConn
	byKey map[capture.FlowKey][2]uint32
	// libs names the library of each process the attach worker bound,
	// read on the chunk path without touching the sensor's lock (which an
	// attach in progress may hold for a while).
	libs map[uint32]string
	// closing lists connections whose socket closed, ended after
	// closeDelay (bounded by maxTLSConns).
	closing []closingConn
	// closedEarly remembers closes of sockets whose TLS chunks have not
	// arrived yet, for closedEarlyTTL.
	closedEarly map[capture.FlowKey]time.Time
	// seen holds every connection whose stream was read (oriented as its
	// process sees it), for seenTTL; bounded by maxTLSConns.
	seen map[capture.FlowKey]time.Time
}

const closedEarlyTTL = 10 * time.Second

// seenTTL is how long the agent remembers that it read a connection's
// stream, to drop the other end's view of it; calls are rebuilt well
// within it (idle flows are evicted sooner).
const seenTTL = 2 * time.Minute

type tlsConn struct {
	key capture.FlowKey
	lib string
}

// startTLS loads the TLS probes. Failing to load them is not fatal: the
// agent keeps seeing plaintext and reports TLS processes as not visible.
func (a *Agent) startTLS(ctx context.Context, run func(string, func() error)) {
	if !a.cfg.TLS {
		return
	}
	// With the enforcer's maps shared, the TLS read probes run the kernel
	// rules on decrypted requests and flag flows before the read returns.
	s, err := dptls.New(dptls.Config{ChunkMax: uint32(a.cfg.ChunkMax), Enforce: a.enforcer, PerProcess: a.tlsPerProcess()}, a.base)
	if err != nil {
		a.log.Warn("TLS probes unavailable; encrypted traffic will not be seen", "err", err)
		return
	}
	b := &tlsBinder{sensor: s, queue: make(chan int, attachQueueLen),
		conns: map[[2]uint32]*tlsConn{}, byKey: map[capture.FlowKey][2]uint32{}, libs: map[uint32]string{},
		closedEarly: map[capture.FlowKey]time.Time{}, seen: map[capture.FlowKey]time.Time{}}
	a.tls = b
	run("tls", func() error { return s.Run(ctx, a.addTLSChunk) })
	// The attach worker is not waited for at shutdown: analysing a large
	// binary takes a while and must not hold the agent's exit up (the
	// probes go with the process anyway).
	// Processes already running are bound off the start-up path, beside
	// the worker: a server that execs or listens while the scan runs
	// (seconds on a busy host) must not wait for it, or its first
	// requests go unseen.
	go a.scanTLS(ctx)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case pid := <-b.queue:
				if pid < 0 {
					s.OnExit(-pid)
					b.setLib(uint32(-pid), "")
					continue
				}
				// Errors are counted by the sensor per reason (not ELF,
				// exited, no symbols...); one process is never fatal.
				_ = s.AttachPID(pid)
				b.setLib(uint32(pid), a.tlsLibrary(uint32(pid)))
			}
		}
	}()
}

// scanTLS binds the probes to the processes running at start, stopping
// early when the agent stops.
func (a *Agent) scanTLS(ctx context.Context) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		a.log.Warn("scan processes for TLS", "err", err)
		return
	}
	ls := newListenScan(procfs.New(""))
	for _, e := range ents {
		if ctx.Err() != nil {
			return
		}
		pid, err := strconv.Atoi(e.Name())
		if err != nil || uint32(pid) == a.self || !a.tlsScanWants(pid, ls) {
			continue
		}
		_ = a.tls.sensor.AttachPID(pid)
		a.tls.setLib(uint32(pid), a.tlsLibrary(uint32(pid)))
	}
}

// onProc feeds process events to the attribution table and binds the TLS
// probes to new processes as they exec.
func (a *Agent) onProc(ev capture.ProcEvent) {
	a.procs.OnProc(ev)
	b := a.tls
	if b == nil {
		return
	}
	var item int
	switch ev.Kind {
	case capture.ProcExec:
		if !a.tlsAttachOnExec() {
			return
		}
		item = int(ev.TGID)
	case capture.ProcExit:
		// The process's streams are kept (bounded) until their sockets
		// close: its last chunks may still be on their way.
		item = -int(ev.TGID)
	default:
		return
	}
	select {
	case b.queue <- item:
	default:
		b.dropped.Add(1)
	}
}

// addTLSChunk hands a decrypted chunk to the assembler. TLS streams are
// keyed by process and fd, and fds are reused: when the same fd now carries
// another connection, the old stream is ended first so the new one starts
// clean, with its own addresses.
func (a *Agent) addTLSChunk(c capture.Chunk) {
	b := a.tls
	k := [2]uint32{c.PID, c.ConnID}
	key := c.Key
	if c.Source == capture.SourceTLSRead {
		key = key.Reverse() // local -> remote, one orientation per connection
	}
	b.mu.Lock()
	prev, seen := b.conns[k]
	reused := seen && prev.key != key
	if !seen || reused {
		if len(b.conns) >= maxTLSConns {
			clear(b.conns)
			clear(b.byKey)
		}
		if reused {
			delete(b.byKey, prev.key)
		}
		lib := b.libs[c.PID]
		if lib == "" {
			// Not bound through an exec we saw (running at start, or its
			// library mapped after exec): ask the sensor, never waiting.
			if kind, detail, ok := b.sensor.VisibilityNow(int(c.PID)); ok && tlsVisible(kind) {
				lib = libName(kind, detail)
			}
		}
		b.conns[k] = &tlsConn{key: key, lib: lib}
		b.byKey[key] = k
		if len(b.seen) < maxTLSConns {
			b.seen[key] = time.Now()
		}
		// The close event may have overtaken the chunks (they travel
		// through another ring buffer): end the stream after the delay.
		if _, closed := b.closedEarly[key]; closed {
			delete(b.closedEarly, key)
			b.closing = append(b.closing, closingConn{k: k, key: key, at: time.Now().Add(closeDelay)})
		}
	}
	b.mu.Unlock()
	a.withAssembler(func(asm *assemble.Assembler) {
		if reused {
			asm.EndConn(c.PID, c.ConnID, c.Time)
		}
		asm.Add(c)
	})
	// The detector has run on every request the chunk completed: held
	// responses of the flow may go.
	a.judged(c)
}

// setLib records (or, with "", forgets) the library of a process. Exits
// are forgotten only here, after the attach worker saw them, and the
// connections keep their own copy.
func (b *tlsBinder) setLib(pid uint32, lib string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if lib == "" || lib == "unknown" || lib == "plaintext" {
		delete(b.libs, pid)
		return
	}
	if len(b.libs) >= maxTLSConns {
		clear(b.libs)
	}
	b.libs[pid] = lib
}

// closeDelay is how long a closed TLS connection's stream stays open: its
// last chunks travel through another ring buffer than the close event and
// may still be on their way.
const closeDelay = time.Second

// onSock feeds socket events to attribution and schedules the end of the
// decrypted stream of a TLS connection whose socket closed: a response
// delimited by the close (HTTP/1.0 style) completes only then.
func (a *Agent) onSock(ev capture.SockEvent) {
	a.procs.OnSock(ev)
	a.onTLSListen(ev)
	b := a.tls
	if b == nil || ev.Kind != capture.SockClose {
		return
	}
	key := capture.FlowKey{Src: ev.Local, Dst: ev.Remote}
	b.mu.Lock()
	k, ok := b.byKey[key]
	switch {
	case ok && len(b.closing) < maxTLSConns:
		b.closing = append(b.closing, closingConn{k: k, key: key, at: time.Now().Add(closeDelay)})
	case !ok && len(b.closedEarly) < maxTLSConns:
		b.closedEarly[key] = time.Now()
	}
	b.mu.Unlock()
}

type closingConn struct {
	k   [2]uint32
	key capture.FlowKey
	at  time.Time
}

// endClosed ends the streams of connections closed at least closeDelay ago
// (from housekeeping).
func (a *Agent) endClosed(now time.Time) {
	b := a.tls
	if b == nil {
		return
	}
	var due []closingConn
	var closed []capture.FlowKey
	b.mu.Lock()
	keep := b.closing[:0]
	for _, c := range b.closing {
		if c.at.After(now) {
			keep = append(keep, c)
			continue
		}
		// Only if the fd still carries that connection.
		if cur, ok := b.conns[c.k]; ok && cur.key == c.key {
			delete(b.conns, c.k)
			delete(b.byKey, c.key)
			due = append(due, c)
		}
		closed = append(closed, c.key)
	}
	b.closing = keep
	for key, t := range b.closedEarly {
		if now.Sub(t) > closedEarlyTTL {
			delete(b.closedEarly, key)
		}
	}
	for key, t := range b.seen {
		if now.Sub(t) > seenTTL {
			delete(b.seen, key)
		}
	}
	b.mu.Unlock()
	// closeDelay after the close nothing of the connection is on its way
	// any more: its hold offsets go too.
	for _, k := range closed {
		a.holdForgetTLS(k)
	}
	if len(due) > 0 {
		a.withAssembler(func(asm *assemble.Assembler) {
			for _, c := range due {
				asm.EndConn(c.k[0], c.k[1], now)
			}
		})
	}
}

// lib returns the library recorded for a process's TLS connection, or "".
func (b *tlsBinder) lib(pid uint32, key capture.FlowKey) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if k, ok := b.byKey[key]; ok && k[0] == pid {
		return b.conns[k].lib
	}
	return ""
}

// serverSideSeen reports whether the server end of the connection
// client -> server was read by the probes (its stream is keyed server ->
// client, as that process sees it).
func (b *tlsBinder) serverSideSeen(client, server netip.AddrPort) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.seen[capture.FlowKey{Src: server, Dst: client}]
	return ok
}

// tlsCall completes a call rebuilt from decrypted bytes: the process that
// made the TLS calls gets its full identity, the other end is resolved as
// for plaintext, and the marker becomes the library's name. It reports
// false for a call to drop: the client's view of a call whose server this
// agent also reads (both ends on this host), which would count it twice.
func (a *Agent) tlsCall(c *call.Call) bool {
	if c.TLS != assemble.TLSMarker || a.tls == nil {
		return true
	}
	var pid uint32
	serverSide := c.ServerProcess != nil
	if serverSide {
		pid = c.ServerProcess.PID
		c.ServerProcess = a.fullProcess(pid)
	} else if c.ClientProcess != nil {
		pid = c.ClientProcess.PID
		c.ClientProcess = a.fullProcess(pid)
	}
	local := capture.FlowKey{Src: c.Client, Dst: c.Server}
	if serverSide {
		local = local.Reverse()
	}
	if c.TLS = a.tls.lib(pid, local); c.TLS == "" {
		if kind, detail, ok := a.tls.sensor.VisibilityNow(int(pid)); ok && tlsVisible(kind) {
			c.TLS = libName(kind, detail)
		} else {
			c.TLS = "tls" // decrypted, library not identified
		}
	}
	srv, cli := a.procs.Resolve(c.Client, c.Server)
	if serverSide {
		if c.ClientProcess == nil {
			c.ClientProcess = cli
		}
		return true
	}
	// The client's view counts only when the server's own view of this
	// connection was not captured (remote server, or probes attached late).
	if a.tls.serverSideSeen(c.Client, c.Server) {
		return false
	}
	c.ServerProcess = srv
	return true
}

// fullProcess returns what attribution knows of pid, or just the pid.
func (a *Agent) fullProcess(pid uint32) *call.Process {
	if p := a.procs.Process(pid); p != nil {
		return p
	}
	return &call.Process{PID: pid}
}

// tlsLibrary names the library a process's TLS traffic went through.
func (a *Agent) tlsLibrary(pid uint32) string {
	return libName(a.tls.sensor.Visibility(int(pid)))
}

// libName is the inventory's label of a TLS library, without the probe
// diagnostics the sensor appends in parentheses.
func libName(kind, detail string) string {
	detail, _, _ = strings.Cut(detail, " (")
	if detail == "" {
		return kind
	}
	return kind + " " + detail
}

func tlsVisible(kind string) bool {
	switch kind {
	case "openssl", "gnutls", "go-tls":
		return true
	}
	return false
}

// visibility says whether the agent can read a process's traffic, and how.
func (a *Agent) visibility(pid uint32) (string, string) {
	if a.tls == nil {
		if !a.cfg.TLS {
			return "plaintext", "TLS probes disabled (--tls=false): encrypted traffic not visible"
		}
		return "plaintext", "TLS probes failed to load: encrypted traffic not visible"
	}
	kind, detail := a.tls.sensor.Visibility(int(pid))
	switch kind {
	case "openssl", "gnutls", "go-tls":
		return strings.TrimSpace(kind + " " + detail), "TLS plaintext read by uprobes"
	case "not-visible":
		return "not visible: " + detail, "TLS library without probes; only ciphertext is seen"
	}
	return "plaintext", "no TLS library found; TCP payload captured at TC"
}

// visibilityCollector exports how many processes with sockets the agent
// can read, by kind: the blind spots, as a metric.
type visibilityCollector struct {
	a    *Agent
	desc *prometheus.Desc
}

func newVisibilityCollector(a *Agent) *visibilityCollector {
	return &visibilityCollector{a: a, desc: prometheus.NewDesc("apiwarden_processes_visibility",
		"Processes with TCP sockets, by what the agent can read of their traffic (plaintext, openssl, go-tls, gnutls, not-visible).",
		[]string{"visibility"}, nil)}
}

func (v *visibilityCollector) Describe(ch chan<- *prometheus.Desc) { ch <- v.desc }

func (v *visibilityCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[string]float64{}
	ps, _ := backend{v.a}.Processes()
	for _, p := range ps {
		kind, _, _ := strings.Cut(p.Visibility, " ")
		if strings.HasPrefix(p.Visibility, "not visible") {
			kind = "not-visible"
		}
		counts[kind]++
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(v.desc, prometheus.GaugeValue, n, k)
	}
}

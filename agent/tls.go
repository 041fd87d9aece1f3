package agent

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/apiwarden/apiwarden/apimodel/assemble"
	"github.com/apiwarden/apiwarden/apimodel/call"
	"github.com/apiwarden/apiwarden/apimodel/capture"
	dptls "github.com/apiwarden/apiwarden/datapath/tls"
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

	mu    sync.Mutex
	conns map[[2]uint32]capture.FlowKey // (pid, fd) -> the connection it carries now
}

// startTLS loads the TLS probes. Failing to load them is not fatal: the
// agent keeps seeing plaintext and reports TLS processes as not visible.
func (a *Agent) startTLS(ctx context.Context, run func(string, func() error)) {
	if !a.cfg.TLS {
		return
	}
	s, err := dptls.New(dptls.Config{ChunkMax: uint32(a.cfg.ChunkMax)}, a.base)
	if err != nil {
		a.log.Warn("TLS probes unavailable; encrypted traffic will not be seen", "err", err)
		return
	}
	b := &tlsBinder{sensor: s, queue: make(chan int, attachQueueLen), conns: map[[2]uint32]capture.FlowKey{}}
	a.tls = b
	run("tls", func() error { return s.Run(ctx, a.addTLSChunk) })
	run("tls-attach", func() error {
		// Processes already running first, off the start-up path.
		s.ScanAll()
		for {
			select {
			case <-ctx.Done():
				return nil
			case pid := <-b.queue:
				if pid < 0 {
					s.OnExit(-pid)
					continue
				}
				// Errors are counted by the sensor per reason (not ELF,
				// exited, no symbols...); one process is never fatal.
				_ = s.AttachPID(pid)
			}
		}
	})
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
		item = int(ev.TGID)
	case capture.ProcExit:
		item = -int(ev.TGID)
		b.forget(ev.TGID)
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
		key = key.Reverse() // one orientation per connection
	}
	b.mu.Lock()
	prev, seen := b.conns[k]
	if !seen || prev != key {
		if len(b.conns) >= maxTLSConns {
			clear(b.conns)
		}
		b.conns[k] = key
	}
	b.mu.Unlock()
	a.withAssembler(func(asm *assemble.Assembler) {
		if seen && prev != key {
			asm.EndConn(c.PID, c.ConnID, c.Time)
		}
		asm.Add(c)
	})
}

func (b *tlsBinder) forget(pid uint32) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for k := range b.conns {
		if k[0] == pid {
			delete(b.conns, k)
		}
	}
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
	c.TLS = a.tlsLibrary(pid)
	srv, cli := a.procs.Resolve(c.Client, c.Server)
	if serverSide {
		if c.ClientProcess == nil {
			c.ClientProcess = cli
		}
		return true
	}
	if srv != nil {
		if kind, _ := a.tls.sensor.Visibility(int(srv.PID)); tlsVisible(kind) {
			return false
		}
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
	kind, detail := a.tls.sensor.Visibility(int(pid))
	detail, _, _ = strings.Cut(detail, " (") // drop probe diagnostics
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

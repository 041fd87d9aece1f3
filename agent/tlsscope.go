package agent

import (
	"fmt"

	"github.com/apiwarden/apiwarden/apimodel/capture"
	"github.com/apiwarden/apiwarden/procfs"
)

// TLS probe scopes (Config.TLSProbeScope).
const (
	// TLSScopeHost probes each TLS library file for every process that maps
	// it (the kernel places the breakpoint in every address space): every
	// process is seen from its first call, and every process pays. Opt-in.
	TLSScopeHost = "host"
	// TLSScopeProcess (the default) probes only the processes the agent watches, with
	// PID-filtered attachments: servers when they start listening (and
	// those listening at start), clients only with TLSProbeClients (at
	// exec). Processes not watched pay nothing. A server's first request
	// is seen when the attach (one listen event, a few perf_event_open
	// calls) finishes before its first TLS read, which it does unless a
	// client connects within about a millisecond of the listen.
	TLSScopeProcess = "process"
)

const tcpListen = 0x0a // TCP_LISTEN in /proc/net/tcp

func validTLSScope(s string) error {
	switch s {
	case "", TLSScopeHost, TLSScopeProcess:
		return nil
	}
	return fmt.Errorf("tlsProbeScope %q: must be %s or %s", s, TLSScopeHost, TLSScopeProcess)
}

// tlsPerProcess: process scope is the default (issue #8: processes the
// agent does not watch pay nothing); "host" must be asked for.
func (a *Agent) tlsPerProcess() bool { return a.cfg.TLSProbeScope != TLSScopeHost }

// tlsAttachOnExec: whether an exec binds the TLS probes to the process.
func (a *Agent) tlsAttachOnExec() bool { return !a.tlsPerProcess() || a.cfg.TLSProbeClients }

// tlsScanWants: whether the start-up scan binds the probes to pid: every
// process in host scope; in process scope, those that own a listening TCP
// socket. /proc/PID/net/tcp lists the whole network namespace's sockets, so
// ownership is the process's socket inodes against the namespace's
// listening ones (tables read once per namespace and cached in ls).
func (a *Agent) tlsScanWants(pid int, ls *listenScan) bool {
	if a.tlsAttachOnExec() {
		return true
	}
	return ls.ownsListener(uint32(pid))
}

// listenScan caches the listening socket inodes of each network namespace
// during one start-up scan.
type listenScan struct {
	fs   procfs.FS
	byNS map[uint32]map[uint64]bool
}

func newListenScan(fs procfs.FS) *listenScan {
	return &listenScan{fs: fs, byNS: map[uint32]map[uint64]bool{}}
}

func (ls *listenScan) ownsListener(pid uint32) bool {
	ns, err := ls.fs.NetNS(pid)
	if err != nil {
		return false
	}
	listening, ok := ls.byNS[ns]
	if !ok {
		listening = map[uint64]bool{}
		if socks, err := ls.fs.TCPSockets(pid); err == nil {
			for _, s := range socks {
				if s.State == tcpListen {
					listening[s.Inode] = true
				}
			}
		}
		ls.byNS[ns] = listening
	}
	if len(listening) == 0 {
		return false
	}
	inodes, err := ls.fs.SocketInodes(pid)
	if err != nil {
		return false
	}
	for _, ino := range inodes {
		if listening[ino] {
			return true
		}
	}
	return false
}

// onTLSListen binds the probes to a process when it starts listening
// (process scope). Repeated listens of one process are cheap: the sensor
// attaches each file once per process.
func (a *Agent) onTLSListen(ev capture.SockEvent) {
	b := a.tls
	if b == nil || !a.tlsPerProcess() || ev.Kind != capture.SockListen || ev.TGID == a.self || ev.TGID == 0 {
		return
	}
	select {
	case b.queue <- int(ev.TGID):
	default:
		b.dropped.Add(1)
	}
}

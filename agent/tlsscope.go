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
	// process is seen from its first call, and every process pays.
	TLSScopeHost = "host"
	// TLSScopeProcess probes only the processes the agent watches, with
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

func (a *Agent) tlsPerProcess() bool { return a.cfg.TLSProbeScope == TLSScopeProcess }

// tlsAttachOnExec: whether an exec binds the TLS probes to the process.
func (a *Agent) tlsAttachOnExec() bool { return !a.tlsPerProcess() || a.cfg.TLSProbeClients }

// tlsScanWants: whether the start-up scan binds the probes to pid.
func (a *Agent) tlsScanWants(pid int) bool {
	if a.tlsAttachOnExec() {
		return true
	}
	socks, err := procfs.New("").TCPSockets(uint32(pid))
	if err != nil {
		return false
	}
	for _, s := range socks {
		if s.State == tcpListen {
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

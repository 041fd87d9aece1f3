package agent

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"strconv"

	"github.com/apiwarden/apiwarden/apimodel/call"
	"github.com/apiwarden/apiwarden/apiserver"
	"github.com/apiwarden/apiwarden/datapath/enforce"
	"github.com/apiwarden/apiwarden/datapath/reset"
)

// onEnforceEvent handles a kernel rule match: record it and, for a drop,
// abort the connection so the client is not left retransmitting into a
// flow that TC now drops.
func (a *Agent) onEnforceEvent(ev enforce.Event) {
	action := "monitor"
	if ev.Action == enforce.ActionDrop {
		action = "blocked"
		if err := a.cut(ev.Client, ev.Server); err != nil {
			a.log.Warn("reset after kernel drop", "client", ev.Client, "server", ev.Server, "err", err)
		}
	}
	srv, _ := a.procs.Resolve(ev.Client, ev.Server)
	service := "unknown"
	if srv != nil && srv.Exe != "" {
		service = baseName(srv.Exe)
	}
	name, ok := a.kernelRuleNames[ev.RuleID]
	if !ok {
		name = kernelRuleName{rule: strconv.FormatUint(uint64(ev.RuleID), 10), class: "kernel-rule"}
	}
	a.metrics.attack(name.class, action)
	a.events.Record(apiserver.Event{
		Time:     ev.Time,
		Service:  service,
		Endpoint: requestLine(ev.Evidence),
		Client:   ev.Client.String(),
		Class:    name.class,
		RuleID:   name.rule,
		Severity: "high",
		Part:     "request (kernel)",
		Excerpt:  excerpt(ev.Evidence),
		Action:   action,
	})
	// A kernel drop is a finding like any other: a source spraying probes
	// that the kernel drops must reach the auto-block threshold too. A
	// counted (monitor) match is not noted here: the request goes on to the
	// userspace detector, which notes it, and it must not count twice.
	if ev.Action == enforce.ActionDrop {
		a.noteFinding(ev.Client.Addr(), service, true)
	}
}

// cut makes the connection stop: TC drops its packets both ways from now on,
// and both sockets (where they live on this host) are destroyed, which
// resets the peer. The flag is set here, at once; the resets (a socket
// iterator run in each end's network namespace, milliseconds) go to the
// reset worker when it runs, so the call pipeline, and every request held
// behind it, does not wait for them.
func (a *Agent) cut(client, server netip.AddrPort) error {
	if a.enforcer == nil || a.resetter == nil {
		return fmt.Errorf("enforcement not loaded")
	}
	if !a.enforcer.IsFlagged(client, server) {
		if err := a.enforcer.Flag(client, server, enforce.ReasonUserspace, 0); err != nil {
			return err
		}
	}
	if a.resets != nil {
		select {
		case a.resets <- [2]netip.AddrPort{client, server}:
			return nil
		default: // worker busy: reset inline rather than not at all
		}
	}
	return a.resetEnds(client, server)
}

// maxPendingResets bounds the cuts waiting for the reset worker.
const maxPendingResets = 1024

// resetWorker destroys the sockets of cut connections until ctx ends.
func (a *Agent) resetWorker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-a.resets:
			if err := a.resetEnds(c[0], c[1]); err != nil {
				a.log.Warn("reset cut connection", "client", c[0], "server", c[1], "err", err)
			}
		}
	}
}

// resetEnds destroys both sockets of a connection.
func (a *Agent) resetEnds(client, server netip.AddrPort) error {
	srv, cli := a.procs.Resolve(client, server)
	var n int
	for _, end := range []struct {
		pid  uint32
		conn reset.Conn
	}{
		{pidOf(srv), reset.Conn{Local: server, Remote: client}},
		{pidOf(cli), reset.Conn{Local: client, Remote: server}},
	} {
		ns := ""
		if end.pid != 0 {
			ns = fmt.Sprintf("/proc/%d/ns/net", end.pid)
		}
		k, err := a.resetter.Destroy(ns, []reset.Conn{end.conn})
		if err != nil && ns != "" {
			// The process may be gone; try the agent's own namespace.
			k, err = a.resetter.Destroy("", []reset.Conn{end.conn})
		}
		if err != nil {
			return err
		}
		n += k
	}
	a.log.Info("connection cut", "client", client, "server", server, "sockets_destroyed", n)
	return nil
}

func pidOf(p *call.Process) uint32 {
	if p == nil {
		return 0
	}
	return p.PID
}

// excerpt makes kernel evidence printable and bounded.
func excerpt(b []byte) string {
	const max = 200
	out := make([]rune, 0, len(b))
	for _, c := range b {
		if len(out) >= max {
			break
		}
		if c == '\r' || c == '\n' {
			out = append(out, ' ')
		} else if c < 0x20 || c > 0x7e {
			out = append(out, '.')
		} else {
			out = append(out, rune(c))
		}
	}
	return string(out)
}

// requestLine returns "METHOD /path" from the first bytes of a request the
// kernel dropped (never parsed by the pipeline, so there is no template).
// The query is cut: it is where attacks live, and the excerpt shows it.
func requestLine(b []byte) string {
	line, _, _ := bytes.Cut(b, []byte("\r\n"))
	method, rest, ok := bytes.Cut(line, []byte(" "))
	if !ok || len(method) == 0 || len(method) > 16 {
		return ""
	}
	target, _, _ := bytes.Cut(rest, []byte(" "))
	target, _, _ = bytes.Cut(target, []byte("?"))
	if len(target) > 200 {
		target = target[:200]
	}
	return excerpt(method) + " " + excerpt(target)
}

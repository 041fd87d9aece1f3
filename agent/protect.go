package agent

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/apiwarden/apiwarden/apimodel/assemble"
	"github.com/apiwarden/apiwarden/apimodel/call"
	"github.com/apiwarden/apiwarden/apimodel/capture"
	"github.com/apiwarden/apiwarden/apimodel/detect"
	"github.com/apiwarden/apiwarden/apimodel/http1"
	"github.com/apiwarden/apiwarden/apimodel/verdict"
	"github.com/apiwarden/apiwarden/apiserver"
	"github.com/apiwarden/apiwarden/datapath/enforce"
	"github.com/apiwarden/apiwarden/datapath/guard"
)

// kernelRules compiles the deny rules and the detector's high-confidence
// literals into the kernel rule set. The action follows the global mode:
// in monitor mode the kernel only reports what it would drop. Rules beyond
// the kernel's capacity are left to userspace detection (and logged).
func (a *Agent) kernelRules() []enforce.Rule {
	action := enforce.ActionCount
	if a.cfg.Mode == ModeProtect {
		action = enforce.ActionDrop
	}
	var rules []enforce.Rule
	a.kernelRuleNames = map[uint32]kernelRuleName{}
	add := func(r enforce.Rule, name kernelRuleName) {
		if len(rules) >= enforce.MaxRules || r.Validate() != nil {
			a.log.Debug("kernel rule left to userspace", "rule", name.rule, "pattern", r.Pattern)
			return
		}
		r.ID = uint32(len(rules) + 1)
		rules = append(rules, r)
		a.kernelRuleNames[r.ID] = name
	}
	for _, d := range a.cfg.DenyRules {
		add(enforce.Rule{Kind: enforce.KindPrefix, Method: d.Method, Pattern: d.PathPrefix, Port: d.Port, Action: action},
			kernelRuleName{rule: "deny " + d.Method + " " + d.PathPrefix, class: "policy"})
	}
	// Detector literals only matter where something may be dropped: in
	// pure monitor mode the userspace detector reports the same matches.
	if a.detector != nil && a.protecting() {
		for _, s := range a.detector.KernelSignatures() {
			add(enforce.Rule{Kind: enforce.KindLiteral, Pattern: string(s.Literal), Action: action},
				kernelRuleName{rule: s.RuleID, class: s.Class})
		}
	}
	return rules
}

type kernelRuleName struct{ rule, class string }

// onRequest inspects each request as soon as it is complete, before its
// response: in protect mode a confident finding flags the flow at once, so
// TC drops the response (for TLS too, where the kernel rules cannot see the
// bytes on the wire) and both sockets are aborted.
func (a *Agent) onRequest(conn *http1.Conn, r *call.Request) {
	if a.detector == nil {
		return
	}
	var srv *call.Process
	switch {
	case conn.TLS == assemble.TLSMarker && conn.ServerProcess != nil:
		srv = a.fullProcess(conn.ServerProcess.PID)
	case conn.TLS == assemble.TLSMarker:
		// The client's view: the server's own view, when the agent reads
		// it too, is the one inspected (once).
		s, _ := a.procs.Resolve(conn.Client, conn.Server)
		if s != nil && a.tls != nil {
			if kind, _ := a.tls.sensor.Visibility(int(s.PID)); tlsVisible(kind) {
				return
			}
		}
		srv = s
	default:
		srv = a.owners(conn.Client, conn.Server, r.Start).server
	}
	if srv != nil && srv.PID == a.self {
		return
	}
	// A TLS flow the kernel already flagged (a rule matched this request in
	// the read probe) is handled, and its event recorded, once. Plaintext
	// requests a kernel rule dropped never get here, so only TLS pays the
	// map lookup.
	if conn.TLS == assemble.TLSMarker && a.enforcer != nil && a.enforcer.IsFlagged(conn.Client, conn.Server) {
		return
	}
	service := "unknown"
	if srv != nil && srv.Exe != "" {
		service = baseName(srv.Exe)
	}
	a.inspect(conn.Client, conn.Server, r, service)
}

// inspect runs the detector on a request and acts on the findings.
func (a *Agent) inspect(client, server netip.AddrPort, r *call.Request, service string) {
	t0 := time.Now()
	findings := a.detector.Inspect(r, service)
	if a.hold != nil {
		a.hold.stages.observe("detect", time.Since(t0))
	}
	endpoint := r.Method + " " + r.Path
	a.act(client, server, service, r.Start, endpoint, findings)
	a.learnShapes(client, r, service, findings)
}

// learnShapes feeds a request without a cut-grade finding to the shape
// learner (the profiler also refuses anything at or above its own
// threshold, with its lowering undone). The client is the source address:
// a class becomes usual for a parameter only from several of them.
func (a *Agent) learnShapes(client netip.AddrPort, r *call.Request, service string, findings []detect.Finding) {
	if a.shapes == nil {
		return
	}
	if _, cut := verdict.DefaultPolicy.CutGrade(findings); cut {
		return
	}
	a.shapes.LearnFrom(a.detector, r, service, client.Addr(), findings)
}

// onInvalidRequest handles a request head the parser rejected: the server
// may act on a request the agent cannot judge, which is what smuggling
// relies on (verdict.InvalidRequest).
func (a *Agent) onInvalidRequest(conn *http1.Conn, head []byte) {
	f, ok := verdict.InvalidRequest(head)
	if !ok {
		return
	}
	srv := a.owners(conn.Client, conn.Server, time.Now()).server
	if srv != nil && srv.PID == a.self {
		return
	}
	service := "unknown"
	if srv != nil && srv.Exe != "" {
		service = baseName(srv.Exe)
	}
	a.act(conn.Client, conn.Server, service, time.Now(), requestLine(head), []detect.Finding{f})
}

// act carries out verdict.DefaultPolicy's decision on a request's findings
// (cut-grade = high severity and confidence >= 85): a cut first drops what
// of the flow the hold point holds, then resets both ends.
func (a *Agent) act(client, server netip.AddrPort, service string, start time.Time, endpoint string, findings []detect.Finding) {
	if len(findings) == 0 {
		return
	}
	protect := a.modeFor(service) == ModeProtect
	act, cutGrade := verdict.DefaultPolicy.Decide(findings, protect)
	action := "monitor"
	if act == verdict.Cut {
		action = "blocked"
		a.holdBlock(capture.FlowKey{Src: client, Dst: server})
		if err := a.cut(client, server); err != nil {
			a.log.Warn("cut connection", "client", client, "server", server, "err", err)
			action = "cut-failed"
		}
	}
	if len(endpoint) > 200 {
		endpoint = endpoint[:200]
	}
	for _, f := range findings {
		a.metrics.attack(f.Class, action)
		a.events.Record(apiserver.Event{
			Time:     start,
			Service:  service,
			Endpoint: excerpt([]byte(endpoint)),
			Client:   client.String(),
			Class:    f.Class,
			RuleID:   f.RuleID,
			Severity: f.Severity.String(),
			Part:     f.Part,
			Excerpt:  f.Excerpt,
			Action:   action,
		})
	}
	// Only what would be cut counts toward auto-blocking (issue #7: a
	// benign client with occasional low-confidence matches was blocked).
	if cutGrade {
		a.noteFinding(client.Addr(), service, protect)
	}
}

// noteFinding counts one cut-grade finding of a source and blocks the
// source at the guard once AutoBlock.Threshold of them fall within
// AutoBlock.Window (protect mode; monitor mode records it).
func (a *Agent) noteFinding(src netip.Addr, service string, protect bool) {
	ab := a.cfg.AutoBlock
	if ab.Threshold == 0 || a.guard == nil {
		return
	}
	a.metrics.autoBlockFinding()
	now := time.Now()
	if !a.autoBlock.Note(src, now) {
		return
	}
	prefix := netip.PrefixFrom(src.Unmap(), src.Unmap().BitLen())
	action := "monitor"
	if protect {
		action = "blocked"
		if err := a.guard.Block(prefix, ab.TTL, guard.ReasonDetection); err != nil {
			a.log.Warn("auto-block", "source", prefix, "err", err)
			action = "block-failed"
		} else {
			a.blocks.put(prefix, blockMeta{reason: fmt.Sprintf("auto: %d cut-grade findings in %s", ab.Threshold, ab.Window), created: now, expires: now.Add(ab.TTL)})
		}
	}
	a.metrics.autoBlockTrip(action)
	a.events.Record(apiserver.Event{
		Time: now, Service: service, Client: src.String(), Class: "abuse", RuleID: "auto-block",
		Severity: "high", Part: "source",
		Excerpt: fmt.Sprintf("%d cut-grade findings within %s; block for %s", ab.Threshold, ab.Window, ab.TTL),
		Action:  action,
	})
}

// updatePortModes keeps the kernel's per-port overrides in step with the
// services whose mode differs from the global one: the rules' action is the
// global mode, and the listening ports of those services take their own.
func (a *Agent) updatePortModes() {
	svcModes := a.serviceModes()
	if a.enforcer == nil || (len(svcModes) == 0 && (a.portModes == "" || a.portModes == "map[]")) {
		return
	}
	modes := map[uint16]enforce.Action{}
	for _, p := range a.procs.Processes() {
		if p.Exited || len(p.ListenPorts) == 0 {
			continue
		}
		m, ok := svcModes[baseName(p.Exe)]
		if !ok || m == a.cfg.Mode {
			continue
		}
		act := enforce.ActionCount
		if m == ModeProtect {
			act = enforce.ActionDrop
		}
		for _, port := range p.ListenPorts {
			if len(modes) < enforce.MaxPortModes {
				modes[port] = act
			}
		}
	}
	key := fmt.Sprint(modes) // fmt sorts map keys: a stable fingerprint
	if key == a.portModes {
		return
	}
	if err := a.enforcer.SetPortModes(modes); err != nil {
		a.log.Warn("per-service kernel modes", "err", err)
		return
	}
	a.portModes = key
}

// invalidRequestHook returns onInvalidRequest when some service is
// protected (monitor mode records parse errors as counters only).
func (a *Agent) invalidRequestHook() func(*http1.Conn, []byte) {
	if !a.protecting() {
		return nil
	}
	return a.onInvalidRequest
}

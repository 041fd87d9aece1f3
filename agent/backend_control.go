package agent

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/apiwarden/apiwarden/apiserver"
)

// knownServices is every service name the agent can tell about: the
// inventory's, the configured and overridden ones, and the basenames of
// listening processes (a service that has not been called yet).
func (a *Agent) knownServices() map[string]bool {
	out := map[string]bool{}
	for svc := range a.cfg.ServiceModes {
		out[svc] = true
	}
	for svc := range a.modes.snapshot() {
		out[svc] = true
	}
	if a.inv != nil {
		for _, e := range a.inv.Snapshot() {
			out[e.Service.Name] = true
		}
	}
	if a.procs != nil {
		for _, p := range a.procs.Processes() {
			if !p.Exited && len(p.ListenPorts) > 0 && p.PID != a.self && p.Exe != "" {
				out[baseName(p.Exe)] = true
			}
		}
	}
	delete(out, "")
	delete(out, "unknown")
	return out
}

func (a *Agent) serviceMode(svc string, ov map[string]modeOverride) apiserver.ServiceMode {
	m := apiserver.ServiceMode{Service: svc, ConfiguredMode: string(a.cfg.ModeFor(svc)), Source: "default"}
	if _, ok := a.cfg.ServiceModes[svc]; ok {
		m.Source = "config"
	}
	m.Mode = m.ConfiguredMode
	if o, ok := ov[svc]; ok {
		m.Mode, m.Source, m.Updated = string(o.Mode), "runtime", o.Updated
	}
	if Mode(m.Mode) == ModeProtect {
		m.Note = a.protectNote()
	}
	return m
}

// protectNote says what protect mode lacks on this agent: pieces that are
// loaded at start only when some service is configured to protect.
func (a *Agent) protectNote() string {
	switch {
	case a.enforcer == nil:
		return "enforcement programs not loaded (the agent started with no protected service and no deny rules): " +
			"connections cannot be cut (events say cut-failed), source blocks still apply; " +
			"restart the agent to load them (the override is kept)"
	case a.hold == nil && a.cfg.Hold.Enabled:
		return "no hold point (the agent started with no protected service, or it is unavailable): " +
			"requests are cut after they reached the server; restart the agent to load it (the override is kept)"
	case a.resetter == nil:
		return "connection reset unavailable: findings are dropped in the kernel where it can, not cut"
	}
	return ""
}

func (b backend) Modes() (apiserver.Modes, error) {
	a := b.a
	ov := a.modes.snapshot()
	out := apiserver.Modes{Default: string(a.cfg.Mode)}
	for _, svc := range slices.Sorted(maps.Keys(a.knownServices())) {
		out.Services = append(out.Services, a.serviceMode(svc, ov))
	}
	return out, nil
}

func (b backend) SetMode(service, mode string) (apiserver.ServiceMode, error) {
	a := b.a
	if !a.knownServices()[service] {
		return apiserver.ServiceMode{}, fmt.Errorf("%w: service %q (see apiwardenctl modes)", apiserver.ErrNotFound, service)
	}
	var m Mode
	if mode != apiserver.ModeDefault {
		m = Mode(mode)
		if err := validMode(m); err != nil {
			return apiserver.ServiceMode{}, fmt.Errorf("%w: %v", apiserver.ErrInvalidArgument, err)
		}
	}
	ov := a.modes.set(service, m, time.Now())
	if err := a.saveModes(ov); err != nil {
		a.log.Warn("persist mode overrides", "err", err)
	}
	a.log.Info("service mode set over the API", "service", service, "mode", mode)
	// The kernel's per-port actions and held ports follow now, not at the
	// next housekeeping tick.
	a.applyModes()
	return a.serviceMode(service, ov), nil
}

func (b backend) Rules() (apiserver.Rules, error) {
	a := b.a
	out := apiserver.Rules{
		RuleFiles: slices.Clone(a.cfg.RuleFiles),
		AutoBlock: apiserver.AutoBlock{Threshold: a.cfg.AutoBlock.Threshold, Window: a.cfg.AutoBlock.Window, TTL: a.cfg.AutoBlock.TTL},
	}
	inKernel := map[string]bool{}
	literals := map[string]int{} // kernel literals by class
	for _, n := range a.kernelRuleNames {
		inKernel[n.rule] = true
		if n.class != "policy" {
			literals[n.class]++
		}
	}
	out.KernelRules = len(a.kernelRuleNames)
	action := "count"
	if a.cfg.Mode == ModeProtect {
		action = "drop"
	}
	for _, d := range a.cfg.DenyRules {
		out.Deny = append(out.Deny, apiserver.DenyRule{Method: d.Method, PathPrefix: d.PathPrefix, Port: d.Port,
			Action: action, InKernel: inKernel["deny "+d.Method+" "+d.PathPrefix]})
	}
	if a.detector == nil {
		return out, nil
	}
	fams := map[string]*apiserver.RuleFamily{}
	for _, r := range a.detector.Rules() {
		f := fams[r.Class]
		if f == nil {
			f = &apiserver.RuleFamily{Class: r.Class, Severities: map[string]int{}, KernelLiterals: literals[r.Class]}
			fams[r.Class] = f
		}
		f.Rules++
		if r.Enabled {
			f.Enabled++
		}
		f.Severities[r.Severity]++
		out.Rules = append(out.Rules, apiserver.DetectionRule{ID: r.ID, Class: r.Class, Severity: r.Severity,
			Confidence: r.Confidence, Paranoia: r.Paranoia, Enabled: r.Enabled, KernelLiterals: r.KernelLiterals,
			Description: r.Description})
	}
	for _, f := range fams {
		out.Families = append(out.Families, *f)
	}
	return out, nil
}

func (b backend) XDSStatus() (apiserver.XDSStatus, error) {
	a := b.a
	if a.xds == nil {
		return apiserver.XDSStatus{}, nil
	}
	st := a.xds.Status()
	out := apiserver.XDSStatus{Enabled: true, Addr: a.cfg.XDSAddr, Version: st.Version, Pushes: st.Pushes,
		NACKs: st.NACKs, LastError: st.LastError, LastErrorTime: st.LastErrorTime, LastUpdate: st.LastUpdate}
	for _, n := range st.Nodes {
		out.Nodes = append(out.Nodes, apiserver.XDSNode{ID: n.ID, GRPCListeners: n.GRPCListeners, Acked: n.Acked})
	}
	return out, nil
}

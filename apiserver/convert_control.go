package apiserver

import (
	"cmp"
	"maps"
	"slices"

	"google.golang.org/protobuf/types/known/durationpb"

	apiwardenv1 "github.com/apiwarden/apiwarden/api/apiwarden/v1"
)

func serviceModeToProto(m *ServiceMode) *apiwardenv1.ServiceMode {
	return &apiwardenv1.ServiceMode{
		Service:        m.Service,
		Mode:           m.Mode,
		Source:         m.Source,
		ConfiguredMode: m.ConfiguredMode,
		Updated:        timeToProto(m.Updated),
		Note:           m.Note,
	}
}

func modesToProto(m *Modes) *apiwardenv1.ListModesResponse {
	svcs := slices.Clone(m.Services)
	slices.SortFunc(svcs, func(a, b ServiceMode) int { return cmp.Compare(a.Service, b.Service) })
	out := &apiwardenv1.ListModesResponse{DefaultMode: m.Default, Services: make([]*apiwardenv1.ServiceMode, 0, len(svcs))}
	for i := range svcs {
		out.Services = append(out.Services, serviceModeToProto(&svcs[i]))
	}
	return out
}

func rulesToProto(r *Rules, detail bool) *apiwardenv1.ListRulesResponse {
	out := &apiwardenv1.ListRulesResponse{
		DenyRules:          make([]*apiwardenv1.DenyRule, 0, len(r.Deny)),
		Families:           make([]*apiwardenv1.RuleFamily, 0, len(r.Families)),
		Rules:              []*apiwardenv1.DetectionRule{},
		RuleFiles:          slices.Clone(r.RuleFiles),
		KernelRules:        uint32(r.KernelRules),
		AutoBlockThreshold: uint32(max(r.AutoBlock.Threshold, 0)),
		AutoBlockWindow:    durationpb.New(r.AutoBlock.Window),
		AutoBlockTtl:       durationpb.New(r.AutoBlock.TTL),
	}
	if out.RuleFiles == nil {
		out.RuleFiles = []string{}
	}
	for _, d := range r.Deny {
		out.DenyRules = append(out.DenyRules, &apiwardenv1.DenyRule{
			Method: d.Method, PathPrefix: d.PathPrefix, Port: uint32(d.Port), Action: d.Action, InKernel: d.InKernel,
		})
	}
	fams := slices.Clone(r.Families)
	slices.SortFunc(fams, func(a, b RuleFamily) int { return cmp.Compare(a.Class, b.Class) })
	for _, f := range fams {
		sev := make(map[string]uint32, len(f.Severities))
		for k, v := range f.Severities {
			sev[k] = uint32(v)
		}
		out.Families = append(out.Families, &apiwardenv1.RuleFamily{
			Class: f.Class, Rules: uint32(f.Rules), Enabled: uint32(f.Enabled),
			KernelLiterals: uint32(f.KernelLiterals), Severities: sev,
		})
	}
	if detail {
		rules := slices.Clone(r.Rules)
		slices.SortFunc(rules, func(a, b DetectionRule) int { return cmp.Compare(a.ID, b.ID) })
		for _, d := range rules {
			out.Rules = append(out.Rules, &apiwardenv1.DetectionRule{
				Id: d.ID, Class: d.Class, Severity: d.Severity, Confidence: uint32(max(d.Confidence, 0)),
				Paranoia: uint32(max(d.Paranoia, 0)), Enabled: d.Enabled, KernelLiterals: uint32(d.KernelLiterals),
				Description: d.Description,
			})
		}
	}
	return out
}

func xdsStatusToProto(x *XDSStatus) *apiwardenv1.XDSStatus {
	out := &apiwardenv1.XDSStatus{
		Enabled:       x.Enabled,
		Addr:          x.Addr,
		Version:       x.Version,
		Nodes:         make([]*apiwardenv1.XDSNode, 0, len(x.Nodes)),
		Pushes:        x.Pushes,
		Nacks:         x.NACKs,
		LastError:     x.LastError,
		LastErrorTime: timeToProto(x.LastErrorTime),
		LastUpdate:    timeToProto(x.LastUpdate),
	}
	nodes := slices.Clone(x.Nodes)
	slices.SortFunc(nodes, func(a, b XDSNode) int { return cmp.Compare(a.ID, b.ID) })
	for _, n := range nodes {
		ls := slices.Clone(n.GRPCListeners)
		if ls == nil {
			ls = []string{}
		}
		acked := maps.Clone(n.Acked)
		if acked == nil {
			acked = map[string]string{}
		}
		out.Nodes = append(out.Nodes, &apiwardenv1.XDSNode{Id: n.ID, GrpcListeners: ls, Acked: acked})
	}
	return out
}

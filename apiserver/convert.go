package apiserver

import (
	"cmp"
	"maps"
	"slices"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	apiwardenv1 "github.com/apiwarden/apiwarden/api/apiwarden/v1"
	"github.com/apiwarden/apiwarden/apimodel/inventory"
)

// MaxSchemaDepth bounds how deep a schema is rendered. The inventory bounds
// schema depth itself; this guard only keeps a faulty snapshot from
// recursing without end. Deeper levels are cut (counted in
// apiwarden_api_schema_truncated_total).
const MaxSchemaDepth = 64

// plaintextTLSKey replaces the inventory's "" TLS key: an empty JSON key is
// legal but unreadable in tables and jq.
const plaintextTLSKey = "plaintext"

// sortEndpoints orders a snapshot so responses are stable across calls:
// service, port, path template, then method.
func sortEndpoints(eps []inventory.Endpoint) {
	slices.SortFunc(eps, func(a, b inventory.Endpoint) int {
		return cmp.Or(
			cmp.Compare(a.Service.Name, b.Service.Name),
			cmp.Compare(a.Service.Port, b.Service.Port),
			cmp.Compare(a.PathTemplate, b.PathTemplate),
			cmp.Compare(a.Method, b.Method),
		)
	})
}

// endpointToProto converts one inventory endpoint. truncated is called once
// per schema cut at MaxSchemaDepth.
func endpointToProto(e *inventory.Endpoint, truncated func()) *apiwardenv1.Endpoint {
	out := &apiwardenv1.Endpoint{
		Service: &apiwardenv1.Service{
			Name: e.Service.Name,
			Exe:  e.Service.Exe,
			Port: uint32(e.Service.Port),
		},
		Method:               e.Method,
		PathTemplate:         e.PathTemplate,
		RequestCount:         e.RequestCount,
		StatusCodes:          intKeyed(e.StatusCodes),
		NoResponse:           e.NoResponse,
		Baseline:             maps.Clone(e.Baseline),
		QueryParams:          paramsToProto(e.QueryParams),
		PathParams:           paramsToProto(e.PathParams),
		RequestContentTypes:  cloneCounts(e.RequestContentTypes),
		ResponseContentTypes: cloneCounts(e.ResponseContentTypes),
		AuthSchemes:          cloneCounts(e.AuthSchemes),
		Sensitive:            slices.Clone(e.Sensitive),
		FirstSeen:            timeToProto(e.FirstSeen),
		LastSeen:             timeToProto(e.LastSeen),
		Protocol:             e.Protocol,
		Protocols:            cloneCounts(e.Protocols),
		GrpcStatusCodes:      intKeyed(e.GRPCStatusCodes),
		GrpcKinds:            cloneCounts(e.GRPCKinds),
		PartialCalls:         e.PartialCalls,
	}
	for _, p := range e.Processes {
		out.Processes = append(out.Processes, &apiwardenv1.Process{
			Pid:         p.PID,
			Comm:        p.Comm,
			Exe:         p.Exe,
			ContainerId: p.ContainerID,
		})
	}
	if e.RequestSchema != nil {
		out.RequestSchema = schemaToStruct(e.RequestSchema, truncated)
	}
	if len(e.ResponseSchemas) > 0 {
		out.ResponseSchemas = make(map[string]*structpb.Struct, len(e.ResponseSchemas))
		for code, s := range e.ResponseSchemas {
			if s != nil {
				out.ResponseSchemas[strconv.Itoa(code)] = schemaToStruct(s, truncated)
			}
		}
	}
	if len(e.TLS) > 0 {
		out.Tls = make(map[string]uint64, len(e.TLS))
		for lib, n := range e.TLS {
			if lib == "" {
				lib = plaintextTLSKey
			}
			out.Tls[lib] += n
		}
	}
	return out
}

func paramsToProto(ps []inventory.Param) []*apiwardenv1.Param {
	if len(ps) == 0 {
		return nil
	}
	out := make([]*apiwardenv1.Param, 0, len(ps))
	for _, p := range ps {
		out = append(out, &apiwardenv1.Param{
			Name:     p.Name,
			In:       p.In,
			Type:     p.Type,
			Format:   p.Format,
			Count:    p.Count,
			Required: p.Required,
		})
	}
	return out
}

func intKeyed(m map[int]uint64) map[string]uint64 {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]uint64, len(m))
	for k, v := range m {
		out[strconv.Itoa(k)] = v
	}
	return out
}

func cloneCounts(m map[string]uint64) map[string]uint64 {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]uint64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// schemaToStruct renders a schema as the JSON object OpenAPI would show,
// so REST clients read it as-is (keys match inventory.Schema's json tags).
func schemaToStruct(s *inventory.Schema, truncated func()) *structpb.Struct {
	return &structpb.Struct{Fields: schemaFields(s, 0, truncated)}
}

func schemaFields(s *inventory.Schema, depth int, truncated func()) map[string]*structpb.Value {
	f := make(map[string]*structpb.Value)
	if s.Type != "" {
		f["type"] = structpb.NewStringValue(s.Type)
	}
	if s.Format != "" {
		f["format"] = structpb.NewStringValue(s.Format)
	}
	if s.Nullable {
		f["nullable"] = structpb.NewBoolValue(true)
	}
	if len(s.Required) > 0 {
		req := make([]*structpb.Value, 0, len(s.Required))
		for _, r := range s.Required {
			req = append(req, structpb.NewStringValue(r))
		}
		f["required"] = structpb.NewListValue(&structpb.ListValue{Values: req})
	}
	if len(s.Enum) > 0 {
		vals := make([]*structpb.Value, 0, len(s.Enum))
		for _, e := range s.Enum {
			vals = append(vals, structpb.NewStringValue(e))
		}
		f["enum"] = structpb.NewListValue(&structpb.ListValue{Values: vals})
	}
	if len(s.Properties) == 0 && s.Items == nil {
		return f
	}
	if depth+1 >= MaxSchemaDepth {
		truncated()
		return f
	}
	if len(s.Properties) > 0 {
		props := make(map[string]*structpb.Value, len(s.Properties))
		for name, ps := range s.Properties {
			if ps == nil {
				continue
			}
			props[name] = structpb.NewStructValue(&structpb.Struct{Fields: schemaFields(ps, depth+1, truncated)})
		}
		f["properties"] = structpb.NewStructValue(&structpb.Struct{Fields: props})
	}
	if s.Items != nil {
		f["items"] = structpb.NewStructValue(&structpb.Struct{Fields: schemaFields(s.Items, depth+1, truncated)})
	}
	return f
}

func timeToProto(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func processToProto(p *ProcessStatus) *apiwardenv1.ProcessStatus {
	out := &apiwardenv1.ProcessStatus{
		Pid:         p.PID,
		Comm:        p.Comm,
		Exe:         p.Exe,
		ContainerId: p.ContainerID,
		Visibility:  p.Visibility,
		Reason:      p.Reason,
		Protocols:   p.Protocols,
		Calls:       p.Calls,
	}
	for _, port := range p.Ports {
		out.Ports = append(out.Ports, uint32(port))
	}
	return out
}

func eventToProto(e *Event) *apiwardenv1.Event {
	return &apiwardenv1.Event{
		Id:       e.ID,
		Time:     timeToProto(e.Time),
		Service:  e.Service,
		Endpoint: e.Endpoint,
		Client:   e.Client,
		Class:    e.Class,
		RuleId:   e.RuleID,
		Severity: e.Severity,
		Part:     e.Part,
		Excerpt:  e.Excerpt,
		Action:   e.Action,
	}
}

func blockToProto(b *Block) *apiwardenv1.Block {
	return &apiwardenv1.Block{
		Prefix:  b.Prefix.String(),
		Reason:  b.Reason,
		Created: timeToProto(b.Created),
		Expires: timeToProto(b.Expires),
		Hits:    b.Hits,
	}
}

func statusToProto(s *Status) *apiwardenv1.Status {
	return &apiwardenv1.Status{
		Version:    s.Version,
		Mode:       s.Mode,
		Interfaces: slices.Clone(s.Interfaces),
		Counters:   cloneCounts(s.Counters),
		Started:    timeToProto(s.Started),
	}
}

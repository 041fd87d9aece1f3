package inventory

import (
	"encoding/json"
	"testing"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

type healthDesc struct{}

func (healthDesc) Method(path string) (in, out protoreflect.MessageDescriptor, ok bool) {
	if path != "/grpc.health.v1.Health/Check" {
		return nil, nil, false
	}
	return (&healthpb.HealthCheckRequest{}).ProtoReflect().Descriptor(),
		(&healthpb.HealthCheckResponse{}).ProtoReflect().Descriptor(), true
}

func frame(m []byte) []byte { return append([]byte{0, 0, 0, 0, byte(len(m))}, m...) }

func TestGRPCDescriptorSchema(t *testing.T) {
	req, _ := proto.Marshal(&healthpb.HealthCheckRequest{Service: "shop"})
	resp, _ := proto.Marshal(&healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING})
	c := newCall("", "/grpc.health.v1.Health/Check", withGRPC(0, 1))
	c.Request.Body, c.Response.Body = frame(req), frame(resp)
	inv := New(Config{GRPCDescriptors: healthDesc{}}, nil)
	inv.Observe(c)
	e := inv.Snapshot()[0]
	if s := e.RequestSchema; s == nil || s.Properties["service"] == nil || s.Properties["service"].Type != "string" {
		b, _ := json.Marshal(s)
		t.Fatalf("request %s", b)
	}
	st := e.ResponseSchemas[200].Properties["status"]
	if st == nil || st.Type != "string" || len(st.Enum) != 4 || st.Enum[1] != "SERVING" {
		t.Fatalf("status %+v", st)
	}
}

func FuzzInferGRPCDesc(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 2, 0x08, 0x01})
	f.Add([]byte{0, 0, 0, 0, 3, 0x0a, 1, 'x'})
	in, out, _ := healthDesc{}.Method("/grpc.health.v1.Health/Check")
	f.Fuzz(func(t *testing.T, b []byte) {
		lim := inferLimits{maxDepth: 4, maxProps: 8, maxNodes: 32}
		for _, md := range []protoreflect.MessageDescriptor{in, out} {
			if r, ok := inferGRPCWith(b, md, lim); ok && schemaSize(r.schema) > 2*lim.maxNodes {
				t.Fatalf("schema of %d nodes", schemaSize(r.schema))
			}
		}
	})
}

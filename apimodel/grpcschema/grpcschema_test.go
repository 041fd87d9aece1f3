package grpcschema

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/types/descriptorpb"
)

func TestLoadHealth(t *testing.T) {
	dir := t.TempDir()
	set := &descriptorpb.FileDescriptorSet{File: []*descriptorpb.FileDescriptorProto{
		protodesc.ToFileDescriptorProto(healthpb.File_grpc_health_v1_health_proto)}}
	b, _ := proto.Marshal(set)
	p := filepath.Join(dir, "h.pb")
	os.WriteFile(p, b, 0o600)
	r, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	in, out, ok := r.Method("/grpc.health.v1.Health/Check")
	if !ok || in.Fields().ByName("service") == nil || out.Fields().ByName("status") == nil {
		t.Fatalf("method not resolved: %v", r.MethodPaths())
	}
	if _, _, ok := r.Method("/x.Y/Z"); ok {
		t.Fatal("unknown method resolved")
	}
	txt := filepath.Join(dir, "t.pb")
	os.WriteFile(txt, []byte("hello"), 0o600)
	for _, bad := range []string{filepath.Join(dir, "missing.pb"), txt, dir} {
		if _, err := Load(bad); err == nil || !strings.Contains(err.Error(), "descriptor set") {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

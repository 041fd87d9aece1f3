package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/types/descriptorpb"
)

func TestDefaultIsValid(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("default config invalid: %v", err)
	}
}

func TestValidateNamesTheBadSetting(t *testing.T) {
	cases := map[string]func(*Config){
		"mode":                   func(c *Config) { c.Mode = "block" },
		`service "shop"`:         func(c *Config) { c.ServiceModes = map[string]Mode{"shop": "enforce"} },
		"api-addr":               func(c *Config) { c.APIAddr = "9464" },
		"chunk-max":              func(c *Config) { c.ChunkMax = 1 << 20 },
		"ring-buffer-bytes":      func(c *Config) { c.RingBufferBytes = 5000 },
		"max-flows":              func(c *Config) { c.MaxFlows = 1 },
		"ports":                  func(c *Config) { c.Ports = make([]uint16, 17) },
		"denyRules[0]":           func(c *Config) { c.DenyRules = []DenyRule{{PathPrefix: "admin"}} },
		"autoBlock":              func(c *Config) { c.AutoBlock = AutoBlock{Threshold: 3} },
		"poll-interval":          func(c *Config) { c.PollInterval = time.Hour },
		"memory-limit":           func(c *Config) { c.MemoryLimitBytes = 1 },
		"tlsProbeScope":          func(c *Config) { c.TLSProbeScope = "pid" },
		"shapes.minSamples":      func(c *Config) { c.Shapes.MinSamples = 3 },
		"shapes.usualMinClients": func(c *Config) { c.Shapes.UsualMinClients = -1 },
		"shapes.maxParams":       func(c *Config) { c.Shapes.MaxParams = -1 },
	}
	for want, mutate := range cases {
		c := Default()
		mutate(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v", want, err)
		}
	}
}

func TestLoadFileOverlaysAndRejectsUnknownKeys(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("mode: protect\nserviceModes:\n  goapi: monitor\nports: [8080]\n"), 0o600)
	c := Default()
	if err := c.LoadFile(good); err != nil {
		t.Fatal(err)
	}
	if c.Mode != ModeProtect || c.ModeFor("goapi") != ModeMonitor || c.ModeFor("nginx") != ModeProtect || c.Ports[0] != 8080 {
		t.Fatalf("overlay wrong: %+v", c)
	}
	if c.APIAddr != Default().APIAddr {
		t.Fatal("unset keys must keep their defaults")
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("mdoe: protect\n"), 0o600)
	c = Default()
	if err := c.LoadFile(bad); err == nil || !strings.Contains(err.Error(), "mdoe") {
		t.Fatalf("typo not reported: %v", err)
	}
	empty := filepath.Join(dir, "empty.yaml")
	os.WriteFile(empty, nil, 0o600)
	if err := c.LoadFile(empty); err != nil {
		t.Fatalf("empty file: %v", err)
	}
	if err := c.LoadFile(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Fatal("missing file accepted")
	}
}

// TestExampleConfigLoads keeps deploy/config.example.yaml true.
func TestExampleConfigLoads(t *testing.T) {
	c := Default()
	if err := c.LoadFile("../deploy/config.example.yaml"); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestXDSEnvoyListenersLoad decodes the Envoy listener list (addresses are
// netip.AddrPort, decoded as text) and rejects a bad one.
func TestXDSEnvoyListenersLoad(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "xds.yaml")
	os.WriteFile(f, []byte(`xdsAddr: 127.0.0.1:18000
xdsEnvoyListeners:
  - name: ingress-http
    address: 0.0.0.0:10000
    upstream: 127.0.0.1:8080
xdsRateLimit: {requestsPerSecond: 50}
`), 0o600)
	c := Default()
	if err := c.LoadFile(f); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if l := c.XDSEnvoyListeners; len(l) != 1 || l[0].Address.Port() != 10000 || l[0].Upstream.String() != "127.0.0.1:8080" || c.XDSRateLimit.RequestsPerSecond != 50 {
		t.Fatalf("decoded %+v %+v", l, c.XDSRateLimit)
	}
	c.XDSEnvoyListeners[0].Name = ""
	if err := c.Validate(); err == nil {
		t.Fatal("listener without a name validated")
	}
}

func TestOTLPLogsEndpointValidated(t *testing.T) {
	c := Default()
	c.OTLPLogs.Endpoint = "collector:4318"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "otlpLogs") {
		t.Fatalf("endpoint without scheme: %v", err)
	}
	c.OTLPLogs.Endpoint = "http://collector:4318"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestGRPCDescriptorSetsConfig(t *testing.T) {
	dir := t.TempDir()
	set := &descriptorpb.FileDescriptorSet{File: []*descriptorpb.FileDescriptorProto{
		protodesc.ToFileDescriptorProto(healthpb.File_grpc_health_v1_health_proto)}}
	b, err := proto.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "health.pb")
	if err := os.WriteFile(good, b, 0o600); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "c.yaml")
	os.WriteFile(f, []byte("grpcDescriptorSets: ["+good+"]\n"), 0o600)
	c := Default()
	c.DataDir = filepath.Join(dir, "data")
	if err := c.LoadFile(f); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	// Sets dropped in <dataDir>/protos/ are found too.
	os.MkdirAll(filepath.Join(c.DataDir, "protos"), 0o700)
	os.WriteFile(filepath.Join(c.DataDir, "protos", "more.binpb"), b, 0o600)
	if files := c.grpcDescriptorFiles(); len(files) != 2 {
		t.Fatalf("descriptor files %v", files)
	}
	c.GRPCDescriptorSets = []string{filepath.Join(dir, "missing.pb")}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "grpcDescriptorSets") {
		t.Fatalf("missing descriptor set: %v", err)
	}
}

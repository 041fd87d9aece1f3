package xds

import (
	"os"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"
)

// loadYAML decodes an Envoy YAML config strictly into m and validates it.
func loadYAML(t *testing.T, path string, m interface {
	proto.Message
	ValidateAll() error
}) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	j, err := yaml.YAMLToJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := protojson.Unmarshal(j, m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if err := m.ValidateAll(); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func TestEnvoyADSBootstrapValidates(t *testing.T) {
	var b bootstrapv3.Bootstrap
	loadYAML(t, "testdata/envoy-ads-bootstrap.yaml", &b)
	if b.GetDynamicResources().GetLdsConfig().GetAds() == nil {
		t.Fatal("lds not over ADS")
	}
}

func TestEnvoyECDSListenerValidates(t *testing.T) {
	var hcm hcmv3.HttpConnectionManager
	loadYAML(t, "testdata/envoy-ecds-filter.yaml", &hcm)
	if got := hcm.GetHttpFilters()[0].GetConfigDiscovery(); got == nil || hcm.GetHttpFilters()[0].GetName() != FilterName {
		t.Fatalf("first filter is not the ECDS reference to %s", FilterName)
	}
	if err := validateHTTPFilters(hcm.GetHttpFilters()[1:]); err != nil {
		t.Fatal(err)
	}
}

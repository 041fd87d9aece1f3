package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPolicyExportFromAgent fetches inventory, blocklist and mode from a
// (fake) agent and writes each format.
func TestPolicyExportFromAgent(t *testing.T) {
	addr := startAgent(t)
	if code, _, errs := ctl(t, addr, "block", "203.0.113.7"); code != 0 {
		t.Fatal(errs)
	}
	cfg := filepath.Join(t.TempDir(), "agent.yaml")
	os.WriteFile(cfg, []byte("mode: protect\ndenyRules:\n  - {method: DELETE, pathPrefix: /items/}\nports: [8080]\n"), 0o600)

	code, out, errs := ctl(t, addr, "policy", "export", "--format", "istio", "--namespace", "shop", "--config", cfg)
	if code != 0 {
		t.Fatal(errs)
	}
	for _, want := range []string{"kind: AuthorizationPolicy", "namespace: shop", "203.0.113.7/32", "/items/*", "DELETE", "action: DENY"} {
		if !strings.Contains(out, want) {
			t.Errorf("istio export lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "dry-run") {
		t.Error("protect mode exported as dry-run")
	}

	code, out, errs = ctl(t, addr, "policy", "export", "--format", "cilium", "-o", "json")
	if code != 0 {
		t.Fatal(errs)
	}
	for _, want := range []string{`"kind": "CiliumNetworkPolicy"`, `"app": "shop"`, `"port": "8080"`, `^/items/[^/?]+(\\?.*)?$`, "203.0.113.7/32"} {
		if !strings.Contains(out, want) {
			t.Errorf("cilium export lacks %q:\n%s", want, out)
		}
	}

	code, out, errs = ctl(t, addr, "policy", "export", "--format", "xds", "--mode", "monitor")
	if code != 0 {
		t.Fatal(errs)
	}
	if !strings.Contains(out, "name: envoy.filters.http.rbac") || !strings.Contains(out, "shadow_rules:") {
		t.Errorf("xds monitor export:\n%s", out)
	}
}

// TestPolicyExportOffline needs no agent: inventory and blocklist come
// from the JSON the CLI itself prints.
func TestPolicyExportOffline(t *testing.T) {
	dir := t.TempDir()
	inv := filepath.Join(dir, "inv.json")
	blocks := filepath.Join(dir, "blocks.json")
	os.WriteFile(inv, []byte(`{"endpoints":[{"service":{"name":"api","port":9000},"method":"GET","pathTemplate":"/v1/things/{id}"}]}`), 0o600)
	os.WriteFile(blocks, []byte(`{"blocks":[{"prefix":"198.51.100.0/24"}]}`), 0o600)
	cfg := filepath.Join(dir, "agent.yaml")
	os.WriteFile(cfg, []byte("mode: monitor\nxdsEnvoyListeners:\n  - {name: edge, address: 0.0.0.0:10000, upstream: 127.0.0.1:9000}\n"), 0o600)
	code, out, errs := ctl(t, "127.0.0.1:1", "policy", "export", "--format", "xds", "--inventory", inv, "--blocklist", blocks, "--config", cfg, "--allow-inventory")
	if code != 0 {
		t.Fatal(errs)
	}
	for _, want := range []string{"static_resources:", "name: edge", "edge-upstream", "198.51.100.0", "unknown-endpoint", "shadow_rules:"} {
		if !strings.Contains(out, want) {
			t.Errorf("bootstrap lacks %q:\n%s", want, out)
		}
	}
}

func TestPolicyExportUsage(t *testing.T) {
	for _, args := range [][]string{
		{"policy"},
		{"policy", "export"},
		{"policy", "import", "--format", "xds"},
		{"policy", "export", "--format", "xds", "-o", "table"},
		{"policy", "export", "--format", "xds", "--mode", "panic"},
	} {
		if code, _, _ := ctl(t, "127.0.0.1:1", args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	if code, _, errs := ctl(t, "127.0.0.1:1", "policy", "export", "--format", "nginx", "--inventory", "/dev/null", "--blocklist", "/dev/null"); code != 2 || !strings.Contains(errs, "unknown format") {
		t.Errorf("unknown format: %d %s", code, errs)
	}
}

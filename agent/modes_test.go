package agent

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apiwarden/apiwarden/apimodel/detect"
	"github.com/apiwarden/apiwarden/apiserver"
	"github.com/apiwarden/apiwarden/store"
)

// testAgent is an agent with a store and a detector but no kernel parts.
func testAgent(t *testing.T, cfg Config) *Agent {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	a, err := New(cfg, "test", log)
	if err != nil {
		t.Fatal(err)
	}
	if a.store, err = store.Open(t.TempDir(), log); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.store.Close() })
	if a.detector, err = detect.New(detect.Config{}, log); err != nil {
		t.Fatal(err)
	}
	return a
}

func TestSetModeOverridesAndPersists(t *testing.T) {
	cfg := Default()
	cfg.ServiceModes = map[string]Mode{"shop": ModeProtect, "billing": ModeMonitor}
	a := testAgent(t, cfg)
	b := backend{a}

	m, err := b.Modes()
	if err != nil || m.Default != "monitor" || len(m.Services) != 2 || m.Services[0].Service != "billing" || m.Services[1].Source != "config" {
		t.Fatalf("modes %+v %v", m, err)
	}
	if _, err := b.SetMode("nope", "protect"); !errors.Is(err, apiserver.ErrNotFound) {
		t.Errorf("unknown service: %v", err)
	}
	sm, err := b.SetMode("billing", "protect")
	if err != nil || sm.Mode != "protect" || sm.Source != "runtime" || sm.ConfiguredMode != "monitor" || sm.Updated.IsZero() {
		t.Fatalf("set %+v %v", sm, err)
	}
	// No kernel enforcement was loaded: the note says what protect lacks.
	if !strings.Contains(sm.Note, "enforcement programs not loaded") {
		t.Errorf("note %q", sm.Note)
	}
	if a.modeFor("billing") != ModeProtect || a.modeFor("shop") != ModeProtect || a.modeFor("other") != ModeMonitor {
		t.Error("modeFor ignores the override")
	}
	if !a.protecting() || a.serviceModes()["billing"] != ModeProtect || a.cfg.ServiceModes["billing"] != ModeMonitor {
		t.Error("serviceModes must merge, not mutate the configuration")
	}
	if _, err := b.SetMode("shop", "monitor"); err != nil {
		t.Fatal(err)
	}

	// A new agent on the same store gets the overrides back.
	a2 := &Agent{cfg: cfg, log: a.log, store: a.store}
	if err := a2.restoreModes(a.store); err != nil {
		t.Fatal(err)
	}
	if a2.modeFor("billing") != ModeProtect || a2.modeFor("shop") != ModeMonitor {
		t.Errorf("restored %v", a2.modes.snapshot())
	}
	// "default" removes the override, persistently.
	if sm, err := b.SetMode("billing", apiserver.ModeDefault); err != nil || sm.Source != "config" || sm.Mode != "monitor" {
		t.Errorf("default %+v %v", sm, err)
	}
	a3 := &Agent{cfg: cfg, log: a.log, store: a.store}
	if err := a3.restoreModes(a.store); err != nil || a3.modeFor("billing") != ModeMonitor {
		t.Errorf("after default: %v %v", a3.modes.snapshot(), err)
	}
}

func TestRulesListing(t *testing.T) {
	cfg := Default()
	cfg.DenyRules = []DenyRule{{Method: "DELETE", PathPrefix: "/admin"}}
	a := testAgent(t, cfg)
	a.kernelRuleNames = map[uint32]kernelRuleName{1: {rule: "deny DELETE /admin", class: "policy"}}
	r, err := backend{a}.Rules()
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Deny) != 1 || !r.Deny[0].InKernel || r.Deny[0].Action != "count" || r.KernelRules != 1 {
		t.Errorf("deny %+v kernel %d", r.Deny, r.KernelRules)
	}
	total := 0
	classes := map[string]bool{}
	for _, f := range r.Families {
		total += f.Rules
		classes[f.Class] = true
		if f.Enabled > f.Rules {
			t.Errorf("%s: %d enabled of %d", f.Class, f.Enabled, f.Rules)
		}
	}
	if total != len(r.Rules) || total == 0 || !classes["sqli"] || !classes["xss"] {
		t.Errorf("families %v total %d rules %d", classes, total, len(r.Rules))
	}
	if r.AutoBlock.Threshold != 10 {
		t.Errorf("auto block %+v", r.AutoBlock)
	}
}

func TestXDSStatusOff(t *testing.T) {
	st, err := backend{testAgent(t, Default())}.XDSStatus()
	if err != nil || st.Enabled {
		t.Errorf("%+v %v", st, err)
	}
}

func TestAPIExposureNeedsToken(t *testing.T) {
	c := Default()
	c.APIAddr = "0.0.0.0:9464"
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "apiTokenFile") || !strings.Contains(err.Error(), "--api-token-file") {
		t.Fatalf("got %v", err)
	}
	tok := filepath.Join(t.TempDir(), "token")
	c.APITokenFile = tok
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	// The file is read when the agent is built: missing or empty fails there.
	if _, err := New(c, "test", slog.New(slog.DiscardHandler)); err == nil {
		t.Error("missing token file accepted")
	}
	if err := os.WriteFile(tok, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(c, "test", slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty token file: %v", err)
	}
	if err := os.WriteFile(tok, []byte("abc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := New(c, "test", slog.New(slog.DiscardHandler))
	if err != nil || a.apiToken != "abc" {
		t.Errorf("token %q %v", a.apiToken, err)
	}
}

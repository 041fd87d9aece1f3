package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apiwarden/apiwarden/e2e/harness"
)

// TestAPITokenAndModeRestart runs the agent with --api-token-file: calls
// without the token are refused (401, JSON), a service switched to protect
// over the API keeps that mode across a restart and then loads the
// enforcement programs, and "default" removes the override.
func TestAPITokenAndModeRestart(t *testing.T) {
	w := newWorld(t)
	bin := needAgent(t)
	tokFile := filepath.Join(w.dir, "api-token")
	if err := os.WriteFile(tokFile, []byte("e2e-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(w.dir, "data-api")
	start := func() *harness.Agent {
		t.Helper()
		a, err := harness.StartAgent(harness.AgentConfig{Bin: bin, Ifaces: w.topo.Ifaces(), DataDir: dataDir,
			TokenFile: tokFile, LogFile: filepath.Join(w.dir, fmt.Sprintf("agent-api-%d.log", time.Now().UnixNano()))})
		if err != nil {
			t.Fatalf("start agent: %v", err)
		}
		t.Cleanup(func() {
			a.Kill()
			if t.Failed() {
				t.Logf("agent log %s (tail):\n%s", a.Cfg.LogFile, tailStr(a.Output(), 4000))
			}
		})
		if err := a.WaitReady(30 * time.Second); err != nil {
			t.Fatalf("agent: %v", err)
		}
		if err := a.WaitAttached(w.topo.Ifaces(), 10*time.Second); err != nil {
			t.Fatal(err)
		}
		return a
	}
	a := start()

	// Without the token: 401 and a google.rpc.Status body.
	resp, err := http.Get(a.Base + "/v1/modes")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Code int `json:"code"`
	}
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if resp.StatusCode != 401 || err != nil || st.Code != 16 {
		t.Fatalf("no token: %d code %d %v", resp.StatusCode, st.Code, err)
	}

	// The goapi server is known by its listening process before any call.
	type modes struct {
		DefaultMode string `json:"defaultMode"`
		Services    []struct {
			Service, Mode, Source, Note string
		} `json:"services"`
	}
	svc := ""
	deadline := time.Now().Add(10 * time.Second)
	for svc == "" && time.Now().Before(deadline) {
		var m modes
		if err := a.GetJSON("/v1/modes", &m); err != nil {
			t.Fatal(err)
		}
		for _, s := range m.Services {
			for _, n := range w.serviceNames(w.goapi) {
				if s.Service == n {
					svc = n
				}
			}
		}
		if svc == "" {
			time.Sleep(200 * time.Millisecond)
		}
	}
	if svc == "" {
		t.Fatalf("goapi (%v) not among the services", w.serviceNames(w.goapi))
	}
	type serviceMode struct{ Service, Mode, Source, Note string }
	setMode := func(mode string) (int, serviceMode) {
		t.Helper()
		code, body, err := a.Do("PUT", "/v1/modes/"+svc, map[string]string{"mode": mode})
		var sm serviceMode
		if err == nil && code == 200 {
			err = json.Unmarshal(body, &sm)
		}
		if err != nil {
			t.Fatalf("set %s: %d %s %v", mode, code, body, err)
		}
		return code, sm
	}
	// The agent started with nothing protected: the note says what is missing.
	if code, sm := setMode("protect"); code != 200 || sm.Source != "runtime" || !strings.Contains(sm.Note, "enforcement programs not loaded") {
		t.Fatalf("set protect: %d %+v", code, sm)
	}
	if code, _ := setMode("block"); code != 400 {
		t.Errorf("bad mode: %d", code)
	}
	w.stopAgent(t, a)

	// After a restart the override is back and protect has what it needs.
	a = start()
	var m modes
	if err := a.GetJSON("/v1/modes", &m); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range m.Services {
		if s.Service == svc {
			found = true
			if s.Mode != "protect" || s.Source != "runtime" || strings.Contains(s.Note, "enforcement programs not loaded") {
				t.Errorf("after restart: %+v", s)
			}
		}
	}
	if !found || !strings.Contains(a.Output(), "runtime mode overrides restored") {
		t.Fatalf("override not restored: %+v", m)
	}
	if code, sm := setMode("default"); code != 200 || sm.Mode != "monitor" || sm.Source == "runtime" {
		t.Errorf("default: %d %+v", code, sm)
	}
	w.stopAgent(t, a)
}

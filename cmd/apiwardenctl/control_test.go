package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apiwarden/apiwarden/apiserver"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

var ctlT0 = time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC)

func (f *fakeBackend) Modes() (apiserver.Modes, error) {
	return apiserver.Modes{Default: "monitor", Services: []apiserver.ServiceMode{
		{Service: "shop", Mode: "protect", Source: "runtime", ConfiguredMode: "monitor", Updated: ctlT0,
			Note: "kernel rules not loaded"},
		{Service: "nginx", Mode: "protect", Source: "config", ConfiguredMode: "protect"},
		{Service: "billing", Mode: "monitor", Source: "default", ConfiguredMode: "monitor"},
	}}, nil
}

func (f *fakeBackend) SetMode(service, mode string) (apiserver.ServiceMode, error) {
	if service != "shop" {
		return apiserver.ServiceMode{}, fmt.Errorf("%w: service %q (see apiwardenctl modes)", apiserver.ErrNotFound, service)
	}
	if mode == apiserver.ModeDefault {
		return apiserver.ServiceMode{Service: service, Mode: "monitor", Source: "default", ConfiguredMode: "monitor"}, nil
	}
	return apiserver.ServiceMode{Service: service, Mode: mode, Source: "runtime", ConfiguredMode: "monitor", Updated: ctlT0}, nil
}

func (f *fakeBackend) Rules() (apiserver.Rules, error) {
	return apiserver.Rules{
		Deny: []apiserver.DenyRule{
			{Method: "DELETE", PathPrefix: "/admin", Action: "count", InKernel: true},
			{PathPrefix: "/debug", Port: 8080, Action: "count", InKernel: true},
		},
		Families: []apiserver.RuleFamily{
			{Class: "xss", Rules: 2, Enabled: 2, Severities: map[string]int{"high": 2}},
			{Class: "sqli", Rules: 3, Enabled: 2, KernelLiterals: 4, Severities: map[string]int{"medium": 1, "high": 2}},
		},
		Rules: []apiserver.DetectionRule{
			{ID: "xss-script", Class: "xss", Severity: "high", Confidence: 90, Paranoia: 1, Enabled: true, Description: "script tag"},
			{ID: "sqli-union", Class: "sqli", Severity: "high", Confidence: 95, Paranoia: 2, KernelLiterals: 2, Description: "UNION SELECT"},
		},
		RuleFiles:   []string{"/etc/apiwarden/rules.yaml"},
		KernelRules: 6,
		AutoBlock:   apiserver.AutoBlock{Threshold: 10, Window: time.Minute, TTL: 10 * time.Minute},
	}, nil
}

func (f *fakeBackend) XDSStatus() (apiserver.XDSStatus, error) {
	return apiserver.XDSStatus{Enabled: true, Addr: "127.0.0.1:18000", Version: 7, Pushes: 12, NACKs: 1,
		LastError: "NACK from envoy-1: bad route", LastErrorTime: ctlT0, LastUpdate: ctlT0.Add(time.Minute),
		Nodes: []apiserver.XDSNode{
			{ID: "envoy-1"},
			{ID: "grpc-1", GRPCListeners: []string{"grpc/server?xds.resource.listening_address=127.0.0.1:50051"},
				Acked: map[string]string{"type.googleapis.com/envoy.config.listener.v3.Listener": "7",
					"type.googleapis.com/envoy.config.route.v3.RouteConfiguration": "6"}},
		}}, nil
}

// utcTimes renders the CLI's local times in UTC so goldens do not depend
// on the machine's zone.
func utcTimes(t *testing.T) {
	old := displayZone
	displayZone = time.UTC
	t.Cleanup(func() { displayZone = old })
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("%s differs from %s:\n--- got\n%s--- want\n%s", name, path, got, want)
	}
}

func TestControlCommandsGolden(t *testing.T) {
	utcTimes(t)
	addr := startAgent(t)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"modes", []string{"modes"}},
		{"modes-json", []string{"modes", "-o", "json"}},
		{"mode-set", []string{"mode", "shop", "protect"}},
		{"mode-default", []string{"mode", "shop", "default"}},
		{"rules", []string{"rules"}},
		{"rules-detail", []string{"rules", "--detail"}},
		{"rules-json", []string{"rules", "-o", "json"}},
		{"xds", []string{"xds"}},
		{"xds-json", []string{"xds", "-o", "json"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := ctl(t, addr, tc.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			golden(t, tc.name, out)
		})
	}
}

func TestXDSOff(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- apiserver.New(apiserver.Config{}, xdsOff{}, nil, nil).ServeListener(ctx, ln)
	}()
	t.Cleanup(func() { cancel(); <-done })
	code, out, errs := ctl(t, ln.Addr().String(), "xds")
	if code != 0 || out != "xds:  off (start the agent with --xds-addr)\n" {
		t.Errorf("exit %d out %q err %q", code, out, errs)
	}
}

type xdsOff struct{ apiserver.UnimplementedBackend }

func (xdsOff) XDSStatus() (apiserver.XDSStatus, error) { return apiserver.XDSStatus{}, nil }

func TestModeErrors(t *testing.T) {
	addr := startAgent(t)
	code, _, errs := ctl(t, addr, "mode", "shop", "block")
	if code != 1 || errs != "apiwardenctl: mode: invalid mode \"block\": must be monitor, protect or default\n" {
		t.Errorf("bad mode: exit %d err %q", code, errs)
	}
	code, _, errs = ctl(t, addr, "mode", "nope", "protect")
	if code != 1 || !strings.Contains(errs, `service "nope"`) || !strings.Contains(errs, "not found") {
		t.Errorf("unknown service: exit %d err %q", code, errs)
	}
	if code, _, errs := ctl(t, addr, "mode", "shop"); code != 2 || !strings.Contains(errs, "mode takes 2 argument(s)") {
		t.Errorf("one argument: exit %d err %q", code, errs)
	}
}

// startTokenAgent serves the fake backend behind a bearer token.
func startTokenAgent(t *testing.T, token string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- apiserver.New(apiserver.Config{Token: token}, &fakeBackend{}, nil, nil).ServeListener(ctx, ln)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String()
}

func ctlEnv(env map[string]string, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb, func(k string) string { return env[k] })
	return code, out.String(), errb.String()
}

func TestTokenSources(t *testing.T) {
	const tok = "c2VjcmV0LXRva2Vu"
	addr := startTokenAgent(t, tok)
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wrong := filepath.Join(t.TempDir(), "wrong")
	if err := os.WriteFile(wrong, []byte("nope\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	code, _, errs := ctlEnv(map[string]string{addrEnv: addr}, "status")
	want := "apiwardenctl: status: agent at " + addr + " refused the call: missing or invalid bearer token"
	if code != 1 || !strings.HasPrefix(errs, want) || !strings.Contains(errs, "--token-file") {
		t.Errorf("no token: exit %d err %q", code, errs)
	}
	for name, tc := range map[string]struct {
		env  map[string]string
		args []string
	}{
		"flag":            {map[string]string{addrEnv: addr}, []string{"--token-file", file, "status"}},
		"flag after cmd":  {map[string]string{addrEnv: addr}, []string{"modes", "--token-file", file}},
		"file env":        {map[string]string{addrEnv: addr, tokenFileEnv: file}, []string{"rules"}},
		"token env":       {map[string]string{addrEnv: addr, tokenEnv: tok}, []string{"xds"}},
		"flag beats env":  {map[string]string{addrEnv: addr, tokenEnv: "nope"}, []string{"--token-file", file, "status"}},
		"file beats env ": {map[string]string{addrEnv: addr, tokenFileEnv: file, tokenEnv: "nope"}, []string{"status"}},
	} {
		if code, _, errs := ctlEnv(tc.env, tc.args...); code != 0 {
			t.Errorf("%s: exit %d err %q", name, code, errs)
		}
	}
	if code, _, errs := ctlEnv(map[string]string{addrEnv: addr, tokenEnv: tok}, "--token-file", wrong, "status"); code != 1 || !strings.Contains(errs, "refused") {
		t.Errorf("wrong file: exit %d err %q", code, errs)
	}
	if code, _, errs := ctlEnv(map[string]string{addrEnv: addr}, "--token-file", filepath.Join(t.TempDir(), "missing"), "status"); code != 1 || !strings.Contains(errs, "token file") {
		t.Errorf("missing file: exit %d err %q", code, errs)
	}
}

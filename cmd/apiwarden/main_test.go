package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestWrongUsageGetsOneClearLine(t *testing.T) {
	cases := []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "Usage:"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"agent", "--mode", "block"}, 2, `mode "block": must be monitor or protect`},
		{[]string{"agent", "--port", "http"}, 2, `invalid port "http"`},
		{[]string{"agent", "--tls", "maybe"}, 2, "must be true or false"},
		{[]string{"agent", "--log-level", "loud"}, 2, "log-level"},
		{[]string{"agent", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"agent", "--config", "/nonexistent/apiwarden.yaml"}, 2, "config"},
		{[]string{"agent", "--api-addr", "0.0.0.0:9464"}, 2,
			"api-addr 0.0.0.0:9464 is not a loopback address: refusing to serve the API without authentication; set apiTokenFile (flag --api-token-file)"},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		code := run(c.args, &out, &errb)
		if code != c.code || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%v: code %d, stderr %q; want %d and %q", c.args, code, errb.String(), c.code, c.want)
		}
		if strings.Contains(errb.String(), "goroutine ") {
			t.Errorf("%v: stack trace printed", c.args)
		}
	}
}

func TestVersion(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"version"}, &out, &errb); code != 0 || strings.TrimSpace(out.String()) != version {
		t.Fatalf("version: %d %q", code, out.String())
	}
}

// TestMissingPrivilegeIsOneSentence runs the real binary as nobody: the
// user must get the capability list, not a verifier dump or a stack trace.
func TestMissingPrivilegeIsOneSentence(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to drop to another user")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("no setpriv")
	}
	bin := filepath.Join(t.TempDir(), "apiwarden")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	os.Chmod(filepath.Dir(bin), 0o755)
	cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", bin, "agent",
		"--data-dir", t.TempDir(), "--api-addr", "127.0.0.1:0")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "CAP_BPF+CAP_NET_ADMIN+CAP_PERFMON") || strings.Count(strings.TrimSpace(string(out)), "\n") > 0 {
		t.Fatalf("want one line naming the capabilities, got:\n%s", out)
	}
}

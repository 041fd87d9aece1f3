package detect

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRuleFileAddsAndOverridesRules(t *testing.T) {
	d := newDetector(t, Config{RuleFiles: []string{"testdata/extra_rules.yaml"}})
	fs := d.Inspect(get("/x?mode=debug-on"), "svc")
	if len(fs) != 1 || fs[0].RuleID != "custom-internal-debug" || fs[0].Class != "custom" || fs[0].Severity != SeverityMedium {
		t.Fatalf("custom rule: got %+v", fs)
	}
	fs = d.Inspect(get("/x?q=alert(1)"), "svc")
	for _, f := range fs {
		if f.RuleID == "xss-dom-sink" && f.Confidence != 10 {
			t.Errorf("override not applied: %+v", f)
		}
	}
}

func TestBadRuleFilesFail(t *testing.T) {
	if _, err := New(Config{RuleFiles: []string{"testdata/bad_rules.yaml"}}, nil); err == nil || !errors.Is(err, errRule) {
		t.Errorf("bad regex: err = %v", err)
	}
	if _, err := New(Config{RuleFiles: []string{"testdata/missing.yaml"}}, nil); err == nil {
		t.Error("missing file accepted")
	}
	dir := t.TempDir()
	for name, body := range map[string]string{
		"unknown-field.yaml": "rules:\n  - id: a\n    class: b\n    severity: high\n    keywords: [x]\n    bogus: 1\n",
		"bad-severity.yaml":  "rules:\n  - id: a\n    class: b\n    severity: extreme\n    keywords: [x]\n",
		"bad-part.yaml":      "rules:\n  - id: a\n    class: b\n    severity: low\n    parts: [toes]\n    keywords: [x]\n",
		"bare-regex.yaml":    "rules:\n  - id: a\n    class: b\n    severity: low\n    regex: x\n",
		"bad-check.yaml":     "rules:\n  - id: a\n    class: b\n    severity: low\n    check: nope\n",
		"confidence.yaml":    "rules:\n  - id: a\n    class: b\n    severity: low\n    confidence: 101\n    keywords: [x]\n",
		"duplicate.yaml":     "rules:\n  - id: a\n    class: b\n    severity: low\n    keywords: [x]\n  - id: a\n    class: b\n    severity: low\n    keywords: [y]\n",
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := New(Config{RuleFiles: []string{p}}, nil); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

func TestPerServiceDisable(t *testing.T) {
	d := newDetector(t, Config{Disabled: map[string][]string{
		"cms":     {"class:xss"},
		"billing": {"sqli-libinjection", "sqli-tautology"},
	}})
	xss := get("/x?q=%3Cscript%3Ealert(1)%3C/script%3E")
	if c := classes(d.Inspect(xss, "cms")); c["xss"] {
		t.Error("xss not disabled for cms")
	}
	if c := classes(d.Inspect(xss, "shop")); !c["xss"] {
		t.Error("xss disabled for another service")
	}
	sqli := get("/x?id=1%27%20OR%20%271%27%3D%271")
	for _, f := range d.Inspect(sqli, "billing") {
		if f.RuleID == "sqli-libinjection" || f.RuleID == "sqli-tautology" {
			t.Errorf("disabled rule fired: %+v", f)
		}
	}
	if _, err := New(Config{Disabled: map[string][]string{"x": {"no-such-rule"}}}, nil); err == nil {
		t.Error("unknown rule id accepted")
	}
}

func TestGlobalDisableAndPathOverride(t *testing.T) {
	d := newDetector(t, Config{
		Disabled:      map[string][]string{"*": {"class:ssti"}},
		PathOverrides: []PathOverride{{Service: "cms", PathPrefix: "/admin/pages", Disable: []string{"class:xss"}}},
	})
	if c := classes(d.Inspect(get("/x?t={{7*7}}"), "any")); c["ssti"] {
		t.Error("global disable ignored")
	}
	body := `{"html":"<script>alert(1)</script>"}`
	if c := classes(d.Inspect(post("/admin/pages/7", jsonCT, body), "cms")); c["xss"] {
		t.Error("path override ignored")
	}
	if c := classes(d.Inspect(post("/api/comments", jsonCT, body), "cms")); !c["xss"] {
		t.Error("path override applied outside its prefix")
	}
	if c := classes(d.Inspect(post("/admin/pages/7", jsonCT, body), "other")); !c["xss"] {
		t.Error("path override applied to another service")
	}
}

func TestKernelSignatures(t *testing.T) {
	d := newDetector(t, Config{})
	sigs := d.KernelSignatures()
	if len(sigs) == 0 {
		t.Fatal("no kernel signatures")
	}
	seen := map[string]bool{}
	for _, s := range sigs {
		if len(s.Literal) < 4 || s.RuleID == "" || s.Class == "" {
			t.Errorf("weak signature %+v", s)
		}
		seen[strings.ToLower(string(s.Literal))] = true
	}
	for _, want := range []string{"${jndi:", "../../", "<script", "/etc/passwd"} {
		if !seen[want] {
			t.Errorf("missing kernel signature %q", want)
		}
	}
	// Disabling a class globally removes its signatures.
	d = newDetector(t, Config{Disabled: map[string][]string{"*": {"class:jndi"}}})
	for _, s := range d.KernelSignatures() {
		if s.Class == "jndi" {
			t.Errorf("disabled class still exported: %+v", s)
		}
	}
}

// TestKernelSignaturesNeverMatchBenign guards the in-kernel matcher, which
// drops without a second opinion: no literal may occur in benign traffic.
func TestKernelSignaturesNeverMatchBenign(t *testing.T) {
	d := newDetector(t, Config{})
	benign := []string{
		"GET /api/v1/users/42?include=orders HTTP/1.1\r\nHost: a\r\nUser-Agent: Mozilla/5.0\r\n\r\n",
		"POST /api/v1/comments HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{\"body\":\"<p>see ../docs and ${price}</p>\"}",
		"GET /static/js/app.min.js HTTP/1.1\r\n\r\n",
	}
	for _, b := range benign {
		for _, s := range d.KernelSignatures() {
			if strings.Contains(strings.ToLower(b), strings.ToLower(string(s.Literal))) {
				t.Errorf("signature %q matches benign request %q", s.Literal, b)
			}
		}
	}
}

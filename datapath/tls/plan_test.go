package tls

import (
	"os"
	"testing"
)

// TestPlanSystemLibs plans the libraries installed here and logs the
// attach points with their cost class.
func TestPlanSystemLibs(t *testing.T) {
	for _, tc := range []struct{ path, lib, kind string }{
		{"/lib/x86_64-linux-gnu/libssl.so.3", "openssl", "openssl"},
		{"/lib/x86_64-linux-gnu/libgnutls.so.30", "gnutls", "gnutls"},
		{"/usr/bin/node", "", "openssl"},
	} {
		if _, err := os.Stat(tc.path); err != nil {
			t.Logf("%s: not installed", tc.path)
			continue
		}
		a := analyzeFile(tc.path, tc.lib, false)
		if a.plan == nil {
			t.Errorf("%s: no plan (%s %s)", tc.path, a.kind, a.detail)
			continue
		}
		if a.plan.kind != tc.kind {
			t.Errorf("%s: kind %s, want %s", tc.path, a.plan.kind, tc.kind)
		}
		t.Logf("%s: %s %q", tc.path, a.plan.kind, a.plan.detail)
		for _, p := range a.plan.points {
			t.Logf("  %v", p)
		}
		// A uprobe on an instruction the kernel cannot emulate is
		// single-stepped: ~10 us per hit instead of ~0.5. OpenSSL has
		// emulatable attach points (its internal read/write start with a
		// push), so landing on the slow path there is a regression.
		// GnuTLS's entry points have none; they are logged, and reported
		// per process in /v1/processes.
		if n := a.plan.slowCount(); n > 0 && tc.kind == "openssl" {
			t.Errorf("%s: %d of %d attach points on the single-step path", tc.path, n, len(a.plan.points))
		} else if n > 0 {
			t.Logf("%s: %d of %d attach points single-stepped (no emulatable alternative)", tc.path, n, len(a.plan.points))
		}
	}
}

// TestPlanGoBinary plans a Go binary built from testdata, stripped and not,
// and demands both give the same attach points.
func TestPlanGoBinary(t *testing.T) {
	dir := t.TempDir()
	full, stripped := dir+"/full", dir+"/stripped"
	buildGo(t, full)
	buildGo(t, stripped, "-ldflags=-s -w")
	a, b := analyzeFile(full, "", false), analyzeFile(stripped, "", false)
	if a.plan == nil || b.plan == nil {
		t.Fatalf("no plan: %+v %+v", a, b)
	}
	if a.plan.kind != "go-tls" || a.plan.detail == "" {
		t.Errorf("plan %s %q", a.plan.kind, a.plan.detail)
	}
	ef, err := openELFPath(full)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ef.f.DWARF(); err != nil {
		t.Fatalf("unstripped build has no DWARF: %v", err)
	}
	if n, err := checkGoLayout(ef); err != nil || n != len(goLayout) {
		t.Errorf("layout: checked %d of %d fields: %v", n, len(goLayout), err)
	}
	for _, p := range b.plan.points {
		t.Logf("  %v", p)
	}
	if len(a.plan.points) != len(b.plan.points) {
		t.Fatalf("full %d points, stripped %d", len(a.plan.points), len(b.plan.points))
	}
	// This toolchain's Read has the data point: three probes (Read entry,
	// Read data point, Write entry), none single-stepped.
	if len(b.plan.points) != 3 || b.plan.slowCount() != 0 {
		t.Errorf("want 3 fast points (entries + read data point), got %d, %d slow", len(b.plan.points), b.plan.slowCount())
	}
	for i := range a.plan.points {
		if a.plan.points[i].Addr != b.plan.points[i].Addr {
			t.Errorf("point %d: full %v, stripped %v", i, a.plan.points[i], b.plan.points[i])
		}
	}
}

func openELFPath(path string) (*elfFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	return openELF(f)
}

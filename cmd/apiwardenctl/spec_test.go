package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSpecDiffAndImport(t *testing.T) {
	addr := startAgent(t)
	code, out, errs := ctl(t, addr, "spec", "diff", "shop", "testdata/shop.yaml")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"undocumented (shadow): 0", "deprecated, still called (zombie): 1\n  GET /items/{id}",
		"documented, never observed: 1\n  GET /orders"} {
		if !strings.Contains(out, want) {
			t.Errorf("diff lacks %q:\n%s", want, out)
		}
	}
	dir := t.TempDir()
	if code, _, errs := ctl(t, addr, "spec", "import", "shop", "testdata/shop.yaml", "--data-dir", dir); code != 0 {
		t.Fatalf("import exit %d: %s", code, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "specs", "shop.yaml")); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := ctl(t, addr, "spec", "import", "../x", "testdata/shop.yaml", "--data-dir", dir); code == 0 {
		t.Fatal("path in service name accepted")
	}
}

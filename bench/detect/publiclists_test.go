package detectbench

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
)

// TestPublicListsReport (AW_PUBLIC=1) prints TPR per family and slice on
// public payload lists nobody tuned on: ours vs CRS PL1 and PL2.
func TestPublicListsReport(t *testing.T) {
	if os.Getenv("AW_PUBLIC") == "" {
		t.Skip("AW_PUBLIC not set")
	}
	es, used, err := LoadPublicLists()
	if err != nil {
		t.Fatal(err)
	}
	if p := os.Getenv("AW_BLNS"); p != "" {
		bl, err := LoadBLNS(p)
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, bl...)
		used = append(used, p)
	}
	// AW_LISTS="row=path,…" adds any list with one payload a line (the
	// xss-filters fuzzer seed of npm xss-filters, for one).
	for _, kv := range strings.Split(os.Getenv("AW_LISTS"), ",") {
		row, path, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		l, err := LoadList(path, row)
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, l...)
		used = append(used, path)
	}
	if len(es) == 0 {
		t.Skip("no public payload lists installed (apt-get install wfuzz)")
	}
	sort.Strings(used)
	t.Logf("files: %v", used)
	ours, _, st1, st2 := reportEngines(t)
	type row struct{ n, ours, pl1, pl2 int }
	per := map[string]*row{}
	for i := range es {
		e := &es[i]
		slice := "tuning"
		if e.HeldBack {
			slice = "held-back"
		}
		req := e.Request()
		o := maxConfidence(ours.Inspect(req, "bench")) >= blockConfidence
		p1, _ := st1.Verdict(req)
		p2, _ := st2.Verdict(req)
		// AW_MISSES=1 lists the tuning slice's misses that CRS catches;
		// the held-back slice is never printed.
		// For the benign row it lists our false positives instead.
		if benign := e.Class == blnsBenign; !e.HeldBack && os.Getenv("AW_MISSES") != "" && (benign && o || !benign && !o && (p1 || p2)) {
			t.Logf("miss %s pl1=%v pl2=%v %q%q", e.ID, p1, p2, e.Query, e.Body)
		}
		for _, k := range []string{slice + " " + e.Class, slice + " ALL"} {
			r := per[k]
			if r == nil {
				r = &row{}
				per[k] = r
			}
			r.n++
			r.ours += b2i(o)
			r.pl1 += b2i(p1)
			r.pl2 += b2i(p2)
		}
	}
	keys := make([]string, 0, len(per))
	for k := range per {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	pc := func(a, n int) string { return fmt.Sprintf("%.1f %%", 100*float64(a)/float64(n)) }
	fmt.Printf("\n| slice family | n | ours | CRS PL1 | CRS PL2 |\n|---|---:|---:|---:|---:|\n")
	for _, k := range keys {
		r := per[k]
		fmt.Printf("| %s | %d | %s | %s | %s |\n", k, r.n, pc(r.ours, r.n), pc(r.pl1, r.n), pc(r.pl2, r.n))
	}
}

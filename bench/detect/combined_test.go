package detectbench

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apiwarden/apiwarden/apimodel/detect"
	"github.com/apiwarden/apiwarden/apimodel/detect/crsstage"
)

// TestCombinedReport (AW_COMBINED=1, ~1-2 min on one core) measures the
// engine choice: our rules alone, Coraza + CRS PL1 and PL2 alone, and our
// rules with CRS PL1 as a second stage behind the suspect prefilter. It
// prints TPR per family on the CRS regression set and on our own attacks
// (tuning and held-back files apart), FPR on the benign requests (apart
// likewise), the share of benign requests the prefilter hands to CRS,
// and benign requests per second on one core.
func TestCombinedReport(t *testing.T) {
	if os.Getenv("AW_COMBINED") == "" {
		t.Skip("AW_COMBINED not set")
	}
	ours, comb, st1, st2 := reportEngines(t)
	type row struct{ n, ours, pl1, pl2, comb int }
	count := func(title string, es []Entry) {
		per := map[string]*row{}
		tot := &row{}
		for i := range es {
			e := &es[i]
			r := per[e.Class]
			if r == nil {
				r = &row{}
				per[e.Class] = r
			}
			req := e.Request()
			o := maxConfidence(ours.Inspect(req, "bench")) >= blockConfidence
			c := maxConfidence(comb.Inspect(req, "bench")) >= blockConfidence
			p1, _ := st1.Verdict(req)
			p2, _ := st2.Verdict(req)
			for _, x := range []*row{r, tot} {
				x.n++
				x.ours += b2i(o)
				x.comb += b2i(c)
				x.pl1 += b2i(p1)
				x.pl2 += b2i(p2)
			}
		}
		keys := make([]string, 0, len(per))
		for k := range per {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Printf("\n%s\n| family | n | ours | ours+CRS PL1 stage | CRS PL1 | CRS PL2 |\n|---|---:|---:|---:|---:|---:|\n", title)
		pc := func(a, n int) string { return fmt.Sprintf("%.1f %%", 100*float64(a)/float64(n)) }
		for _, k := range append(keys, "ALL") {
			r := tot
			if k != "ALL" {
				r = per[k]
			}
			fmt.Printf("| %s | %d | %s | %s | %s | %s |\n", k, r.n, pc(r.ours, r.n), pc(r.comb, r.n), pc(r.pl1, r.n), pc(r.pl2, r.n))
		}
	}
	if set, err := LoadCRSSet(CRSSetPath); err == nil {
		var tune, held []Entry
		for i := range set {
			e := set[i].Entry
			e.Class = set[i].Family
			if set[i].HeldBack {
				held = append(held, e)
			} else {
				tune = append(tune, e)
			}
		}
		count("CRS v4.25.0 regression set, TUNING slice (70 %), TPR per CRS rule file + class", tune)
		count("CRS v4.25.0 regression set, HELD-BACK slice (30 %, never looked at), TPR per CRS rule file + class", held)
	} else {
		t.Log(err)
	}
	if api, err := LoadCorpus(apiTrafficPath); err == nil {
		var tune, held []Entry
		for _, e := range api {
			e.Class = e.Where
			if HeldBack(e.ID) {
				held = append(held, e)
			} else {
				tune = append(tune, e)
			}
		}
		count(apiTrafficPath+" TUNING slice (70 %), FPR per API", tune)
		count(apiTrafficPath+" HELD-BACK slice (30 %), FPR per API", held)
	} else {
		t.Log(err)
	}
	// The corpus built from public OpenAPI descriptions, per provider slice
	// and value source.
	if err := specReport(os.Stdout, ours, comb, st1, st2); err != nil {
		t.Log(err)
	}
	for _, f := range []string{corpusPath, holdoutPath, apiTrafficPath} {
		all, err := LoadCorpus(f)
		if err != nil {
			t.Fatal(err)
		}
		if f != apiTrafficPath {
			// The API corpus was reported per slice above.
			count(f+" (benign row = FPR)", all)
		}
		var benign []Entry
		for _, e := range all {
			if e.Class == "benign" {
				benign = append(benign, e)
			}
		}
		before := comb.Stats().SecondStage
		for i := range benign {
			comb.Inspect(benign[i].Request(), "bench")
		}
		fmt.Printf("benign %s: %d requests, %d handed to the CRS stage\n", f, len(benign), comb.Stats().SecondStage-before)
		rate := func(f func(e *Entry)) float64 {
			start := time.Now()
			n := 0
			for time.Since(start) < 2*time.Second {
				for i := range benign {
					f(&benign[i])
					n++
				}
			}
			return float64(n) / time.Since(start).Seconds()
		}
		ro := rate(func(e *Entry) { ours.Inspect(e.Request(), "bench") })
		rc := rate(func(e *Entry) { comb.Inspect(e.Request(), "bench") })
		r1 := rate(func(e *Entry) { st1.Verdict(e.Request()) })
		fmt.Printf("req/s on one goroutine (GOMAXPROCS=%s, noisy shared host): ours %.0f, ours+CRS stage %.0f, CRS PL1 %.0f; ratio ours/CRS = %.1fx, ours+stage/CRS = %.1fx\n",
			os.Getenv("GOMAXPROCS"), ro, rc, r1, ro/r1, rc/r1)
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// reportEngines builds the four engines the reports compare: our rules,
// our rules with CRS PL1 as a second stage, and CRS PL1 and PL2 alone.
// AW_DISABLE=rule,rule turns rules off in both of our configurations, to
// show what a family's number owes to a rule (e.g. the
// body-without-Content-Type policy rule).
func reportEngines(t *testing.T) (ours, comb *detect.Detector, st1, st2 *crsstage.Stage) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var disabled map[string][]string
	if v := os.Getenv("AW_DISABLE"); v != "" {
		disabled = map[string][]string{"*": strings.Split(v, ",")}
	}
	var err error
	if ours, err = detect.New(detect.Config{Disabled: disabled}, log); err != nil {
		t.Fatal(err)
	}
	if st1, err = crsstage.New(1); err != nil {
		t.Fatal(err)
	}
	if st2, err = crsstage.New(2); err != nil {
		t.Fatal(err)
	}
	if comb, err = detect.New(detect.Config{SecondStage: st1, Disabled: disabled}, log); err != nil {
		t.Fatal(err)
	}
	return ours, comb, st1, st2
}

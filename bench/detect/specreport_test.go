package detectbench

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/apiwarden/apiwarden/apimodel/detect"
	"github.com/apiwarden/apiwarden/apimodel/detect/crsstage"
)

// TestSpecTrafficReport (AW_SPECS=1, ~1 min on one core) prints the
// spec-corpus part of TestCombinedReport alone.
func TestSpecTrafficReport(t *testing.T) {
	if os.Getenv("AW_SPECS") == "" {
		t.Skip("AW_SPECS not set")
	}
	ours, comb, st1, st2 := reportEngines(t)
	// AW_SPECS_ID=id,id dumps the findings of tuning-slice entries.
	if ids := os.Getenv("AW_SPECS_ID"); ids != "" {
		es, err := LoadSpecTraffic()
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]bool{}
		for _, id := range strings.Split(ids, ",") {
			want[id] = true
		}
		for i := range es {
			e := &es[i]
			if !want[e.ID] {
				continue
			}
			if specHeldBack(specProvider(e)) {
				t.Logf("%s is held back: not shown", e.ID)
				continue
			}
			for _, f := range ours.Inspect(e.Request(), "bench") {
				t.Logf("%s %+v", e.ID, f)
			}
			_, r1 := st1.Verdict(e.Request())
			_, r2 := st2.Verdict(e.Request())
			t.Logf("%s CRS PL1 %v PL2 %v", e.ID, r1, r2)
		}
		return
	}
	if err := specReport(os.Stdout, ours, comb, st1, st2); err != nil {
		t.Fatal(err)
	}
}

// specReport prints the false positive rates on testdata/benign-specs.jsonl
// per slice (providers tuning / held back) and per value source, the
// rules that fire most on the tuning slice and example tuning hits.
// Held-back hits are only ever counted, never shown.
func specReport(w io.Writer, ours, comb *detect.Detector, st1, st2 *crsstage.Stage) error {
	es, err := LoadSpecTraffic()
	if err != nil {
		return err
	}
	type row struct{ n, ours, comb, pl1, pl2 int }
	rows := map[string]*row{}
	add := func(k string, o, c, p1, p2 bool) {
		r := rows[k]
		if r == nil {
			r = &row{}
			rows[k] = r
		}
		r.n++
		r.ours += b2i(o)
		r.comb += b2i(c)
		r.pl1 += b2i(p1)
		r.pl2 += b2i(p2)
	}
	type hit struct{ id, rule, part, excerpt string }
	var hits []hit
	type crsHit struct {
		id    string
		rules []int
		req   string
	}
	var crsHits []crsHit
	ruleOurs, rule1, rule2 := map[string]int{}, map[int]int{}, map[int]int{}
	provOurs, provPL1, provN := map[string]int{}, map[string]int{}, map[string]int{}
	providers := map[string]bool{}
	for i := range es {
		e := &es[i]
		p := specProvider(e)
		providers[p] = true
		slice := "tuning"
		if specHeldBack(p) {
			slice = "held-back"
		}
		req := e.Request()
		fs := ours.Inspect(req, "bench")
		o := maxConfidence(fs) >= blockConfidence
		c := maxConfidence(comb.Inspect(req, "bench")) >= blockConfidence
		p1, r1 := st1.Verdict(req)
		p2, r2 := st2.Verdict(req)
		add(slice, o, c, p1, p2)
		add(slice+" src="+e.Src, o, c, p1, p2)
		if slice != "tuning" {
			continue
		}
		provN[p]++
		provOurs[p] += b2i(o)
		provPL1[p] += b2i(p1)
		seen := map[string]bool{}
		for _, f := range fs {
			if f.Confidence >= blockConfidence && !seen[f.RuleID] {
				seen[f.RuleID] = true
				ruleOurs[f.RuleID]++
				hits = append(hits, hit{e.ID, f.RuleID, f.Part, f.Excerpt})
			}
		}
		for _, pair := range []struct {
			blocked bool
			rules   []int
			m       map[int]int
		}{{p1, r1, rule1}, {p2, r2, rule2}} {
			if !pair.blocked {
				continue
			}
			s := map[int]bool{}
			for _, r := range pair.rules {
				if !s[r] {
					s[r] = true
					pair.m[r]++
				}
			}
		}
		if p1 {
			u := e.Method + " " + e.Path
			if e.Query != "" {
				u += "?" + e.Query
			}
			if e.Body != "" {
				u += " body=" + e.Body
			}
			crsHits = append(crsHits, crsHit{e.ID, r1, u})
		}
	}
	nHeldProv := 0
	for p := range providers {
		nHeldProv += b2i(specHeldBack(p))
	}
	fmt.Fprintf(w, "\n%s: %d requests from %d providers; %d providers (FNV-1a of the name) held back whole\n", specTrafficPath, len(es), len(providers), nHeldProv)
	fmt.Fprintf(w, "| slice | n | ours | ours+CRS PL1 stage | CRS PL1 | CRS PL2 |\n|---|---:|---:|---:|---:|---:|\n")
	pc := func(a, n int) string {
		if n == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f %% (%d)", 100*float64(a)/float64(n), a)
	}
	for _, k := range []string{"tuning", "tuning src=examples", "tuning src=schema", "held-back", "held-back src=examples", "held-back src=schema"} {
		r := rows[k]
		if r == nil {
			r = &row{}
		}
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s |\n", k, r.n, pc(r.ours, r.n), pc(r.comb, r.n), pc(r.pl1, r.n), pc(r.pl2, r.n))
	}
	top := func(title string, m map[string]int) {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			if m[keys[i]] != m[keys[j]] {
				return m[keys[i]] > m[keys[j]]
			}
			return keys[i] < keys[j]
		})
		if len(keys) > 15 {
			keys = keys[:15]
		}
		fmt.Fprintf(w, "\n%s\n", title)
		for _, k := range keys {
			fmt.Fprintf(w, "  %-28s %d\n", k, m[k])
		}
	}
	intKeys := func(m map[int]int) map[string]int {
		out := map[string]int{}
		for k, v := range m {
			out[fmt.Sprint(k)] = v
		}
		return out
	}
	top("rules firing most on the TUNING slice, ours (requests, confidence >= 85):", ruleOurs)
	top("rules firing most on the TUNING slice, CRS PL1 (blocked requests per matched attack rule):", intKeys(rule1))
	top("rules firing most on the TUNING slice, CRS PL2:", intKeys(rule2))
	provHits := map[string]int{}
	for p, n := range provOurs {
		if n > 0 {
			provHits[fmt.Sprintf("%s ours (of %d)", p, provN[p])] = n
		}
	}
	for p, n := range provPL1 {
		if n > 0 {
			provHits[fmt.Sprintf("%s PL1 (of %d)", p, provN[p])] = n
		}
	}
	top("TUNING providers with the most flagged requests:", provHits)
	// Up to 40 of our tuning hits, at most 4 per rule in rule-frequency order.
	sort.SliceStable(hits, func(i, j int) bool {
		if ruleOurs[hits[i].rule] != ruleOurs[hits[j].rule] {
			return ruleOurs[hits[i].rule] > ruleOurs[hits[j].rule]
		}
		return hits[i].rule < hits[j].rule
	})
	fmt.Fprintf(w, "\nexample hits of ours on the TUNING slice (held-back hits are never shown):\n")
	per, shown := map[string]int{}, 0
	for _, h := range hits {
		if shown >= 40 || per[h.rule] >= 4 {
			continue
		}
		per[h.rule]++
		shown++
		fmt.Fprintf(w, "  %s %s %s %q\n", h.id, h.rule, h.part, trunc(h.excerpt, 100))
	}
	fmt.Fprintf(w, "\nexample CRS PL1 blocks on the TUNING slice:\n")
	for i, h := range crsHits {
		if i >= 15 {
			break
		}
		fmt.Fprintf(w, "  %s %v %q\n", h.id, h.rules, trunc(h.req, 160))
	}
	return nil
}

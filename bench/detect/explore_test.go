package detectbench

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/apiwarden/apiwarden/apimodel/detect/crsstage"
)

// TestExploreCRSSet is a development aid (AW_EXPLORE=1): per-class misses
// on the TUNING slice of the CRS set (held-back cases are never shown),
// keyed by CRS rule file + class ("944 java"); AW_CLASS selects the family
// whose misses are logged. CRS verdicts are cached in /tmp.
func TestExploreCRSSet(t *testing.T) {
	if os.Getenv("AW_EXPLORE") == "" {
		t.Skip("AW_EXPLORE not set")
	}
	set, err := LoadCRSSet(CRSSetPath)
	if err != nil {
		t.Skip(err)
	}
	eng := loadEngines(t)
	cache := map[string]bool{}
	cacheFile := "/tmp/aw-detect-crs-pl1.json"
	crs := eng.crs
	// AW_CRS_REMOVE=920640,... compares with CRS PL1 without those rules.
	if v := os.Getenv("AW_CRS_REMOVE"); v != "" {
		var ids []int
		for _, f := range strings.Split(v, ",") {
			id, err := strconv.Atoi(f)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		st, err := crsstage.NewWithout(1, ids...)
		if err != nil {
			t.Fatal(err)
		}
		crs = &CRS{st: st}
		cacheFile = "/tmp/aw-detect-crs-pl1-without-" + strings.ReplaceAll(v, ",", "-") + ".json"
	}
	if b, err := os.ReadFile(cacheFile); err == nil {
		json.Unmarshal(b, &cache)
	} else {
		for i := range set {
			bl, _ := crs.Verdict(&set[i].Entry)
			cache[set[i].ID] = bl
		}
		b, _ := json.Marshal(cache)
		os.WriteFile(cacheFile, b, 0o644)
	}
	type tl struct{ n, ours, crs, both, crsOnly int }
	per := map[string]*tl{}
	want := os.Getenv("AW_CLASS")
	for i := range set {
		e := &set[i]
		if e.HeldBack {
			continue
		}
		e.Class = e.Family
		fs := eng.det.Inspect(e.Request(), "bench")
		ok := maxConfidence(fs) >= blockConfidence
		c := per[e.Class]
		if c == nil {
			c = &tl{}
			per[e.Class] = c
		}
		c.n++
		if ok {
			c.ours++
		}
		if cache[e.ID] {
			c.crs++
		}
		if !ok && (cache[e.ID] || os.Getenv("AW_ALL") != "") && e.Class == want {
			var crsRules []int
			if os.Getenv("AW_RULES") != "" {
				_, crsRules = crs.Verdict(&e.Entry)
			}
			t.Logf("miss %s rule=%d pl=%d crs=%v %s %s?%s h=%v body=%q", e.ID, e.RuleID, e.PL, crsRules, e.Method, trunc(e.Path, 200), trunc(e.Query, 300), e.Headers, trunc(e.Body, 300))
		}
	}
	keys := []string{}
	for k := range per {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		c := per[k]
		fmt.Printf("%-20s %5d ours %5.1f%% crs %5.1f%%\n", k, c.n, 100*float64(c.ours)/float64(c.n), 100*float64(c.crs)/float64(c.n))
	}
}

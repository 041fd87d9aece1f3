package detectbench

import (
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apiwarden/apiwarden/apimodel/call"
	"github.com/apiwarden/apiwarden/apimodel/detect"
)

// blockConfidence is the confidence from which apiwarden would block in
// protect mode; the "any" column counts every finding (monitor mode).
const blockConfidence = 85

var classes = []string{"sqli", "xss", "traversal", "cmdi", "ssrf", "jndi", "xxe", "ssti", "nosqli", "crlf", "smuggling"}

type engines struct {
	det *detect.Detector
	crs *CRS
}

var (
	enginesOnce sync.Once
	enginesVal  engines
	enginesErr  error
)

func loadEngines(tb testing.TB) engines {
	tb.Helper()
	enginesOnce.Do(func() {
		var cfg detect.Config
		if v := os.Getenv("AW_DISABLE"); v != "" {
			cfg.Disabled = map[string][]string{"*": strings.Split(v, ",")}
		}
		d, err := detect.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			enginesErr = err
			return
		}
		c, err := NewCRS()
		if err != nil {
			enginesErr = err
			return
		}
		enginesVal = engines{det: d, crs: c}
	})
	if enginesErr != nil {
		tb.Fatal(enginesErr)
	}
	return enginesVal
}

func loadTestCorpus(tb testing.TB) []Entry {
	tb.Helper()
	es, err := LoadCorpus(corpusPath)
	if err != nil {
		tb.Fatal(err)
	}
	return es
}

type tally struct{ n, any, block, classOK, crs int }

func maxConfidence(fs []detect.Finding) int {
	m := -1
	for _, f := range fs {
		m = max(m, f.Confidence)
	}
	return m
}

func hasClass(fs []detect.Finding, c string) bool {
	for _, f := range fs {
		if f.Class == c {
			return true
		}
	}
	return false
}

func pct(a, n int) string {
	if n == 0 {
		return "   -  "
	}
	return fmt.Sprintf("%5.1f%%", 100*float64(a)/float64(n))
}

// accuracyTable runs entries through both engines and renders the
// per-class table; it returns the attack and benign tallies.
func accuracyTable(t *testing.T, eng engines, es []Entry, title string) (string, tally, tally) {
	per := map[string]*tally{}
	var fpOurs, fpCRS []string
	for i := range es {
		e := &es[i]
		fs := eng.det.Inspect(e.Request(), "bench")
		blocked, crsRules := eng.crs.Verdict(e)
		tl := per[e.Class]
		if tl == nil {
			tl = &tally{}
			per[e.Class] = tl
		}
		tl.n++
		mc := maxConfidence(fs)
		if mc >= 0 {
			tl.any++
		}
		if mc >= blockConfidence {
			tl.block++
		}
		if hasClass(fs, e.Class) {
			tl.classOK++
		}
		if blocked {
			tl.crs++
		}
		if e.Class == Benign {
			if mc >= 0 {
				fpOurs = append(fpOurs, fmt.Sprintf("%s %s %s %q", e.ID, fs[0].RuleID, fs[0].Part, fs[0].Excerpt))
			}
			if blocked {
				fpCRS = append(fpCRS, fmt.Sprintf("%s %v", e.ID, crsRules))
			}
		} else if testing.Verbose() && os.Getenv("AW_SHOW_MISSES") != "" && mc < blockConfidence {
			t.Logf("miss %s (%s): %s?%s %q %q", e.ID, e.Where, e.Path, e.Query, trunc(e.Body, 120), e.Headers[len(e.Headers)-1])
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "\n%s: %d requests (apiwarden 'any' = any finding, 'block' = confidence >= %d; CRS v4 PL1 anomaly blocking)\n", title, len(es), blockConfidence)
	fmt.Fprintf(&b, "%-10s %5s | %8s %8s %8s | %8s | %s\n", "class", "n", "aw-any", "aw-block", "aw-class", "crs", "aw-block/crs")
	totA := tally{}
	for _, c := range classes {
		tl := per[c]
		if tl == nil {
			continue
		}
		totA.n += tl.n
		totA.any += tl.any
		totA.block += tl.block
		totA.classOK += tl.classOK
		totA.crs += tl.crs
		fmt.Fprintf(&b, "%-10s %5d | %8s %8s %8s | %8s | %s\n", c, tl.n, pct(tl.any, tl.n), pct(tl.block, tl.n), pct(tl.classOK, tl.n), pct(tl.crs, tl.n), ratio(float64(tl.block), float64(tl.crs)))
	}
	fmt.Fprintf(&b, "%-10s %5d | %8s %8s %8s | %8s | %s\n", "ALL-ATTACK", totA.n, pct(totA.any, totA.n), pct(totA.block, totA.n), pct(totA.classOK, totA.n), pct(totA.crs, totA.n), ratio(float64(totA.block), float64(totA.crs)))
	bn := per[Benign]
	if bn == nil {
		bn = &tally{}
	}
	fmt.Fprintf(&b, "%-10s %5d | %8s %8s %8s | %8s |   (false-positive rate)\n", "benign FP", bn.n, pct(bn.any, bn.n), pct(bn.block, bn.n), "", pct(bn.crs, bn.n))
	for _, s := range fpOurs {
		fmt.Fprintf(&b, "  apiwarden FP: %s\n", s)
	}
	for i, s := range fpCRS {
		if i == 8 {
			fmt.Fprintf(&b, "  crs FP: ... %d more\n", len(fpCRS)-i)
			break
		}
		fmt.Fprintf(&b, "  crs FP: %s\n", s)
	}
	return b.String(), totA, *bn
}

// TestAccuracyReport runs the corpus and the hold-out set through both
// engines and prints the comparison tables and the speed table. It fails
// only if apiwarden regresses below floors well under today's numbers.
func TestAccuracyReport(t *testing.T) {
	eng := loadEngines(t)
	main, totA, bn := accuracyTable(t, eng, loadTestCorpus(t), "Tuning corpus")
	t.Log(main)
	hold, err := LoadCorpus(holdoutPath)
	if err != nil {
		t.Fatal(err)
	}
	ho, _, _ := accuracyTable(t, eng, hold, "Hold-out set (written after tuning; see holdout_test.go)")
	t.Log(ho)
	if !testing.Short() {
		t.Log(speedTable(t, eng))
	}

	// Floors: far enough under the measured numbers to only catch real
	// regressions.
	if 100*totA.block < 90*totA.n {
		t.Errorf("attack detection at block confidence %d/%d below 90%%", totA.block, totA.n)
	}
	if 100*bn.any > 3*bn.n {
		t.Errorf("benign false positives %d/%d above 3%%", bn.any, bn.n)
	}
}

func trunc(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func ratio(a, b float64) string {
	if b == 0 {
		return "  -"
	}
	return fmt.Sprintf("%5.2fx", a/b)
}

// speedSets returns the request mixes of the speed table: benign GET,
// JSON and form requests from the corpus, and a synthetic ~100 KB JSON
// order export.
func speedSets(tb testing.TB) map[string][]Entry {
	es := loadTestCorpus(tb)
	sets := map[string][]Entry{}
	for _, e := range es {
		if e.Class != Benign {
			continue
		}
		k := e.Kind()
		sets[k] = append(sets[k], e)
	}
	sets["large"] = []Entry{largeJSON(), largeForm()}
	return sets
}

func largeJSON() Entry {
	rng := rand.New(rand.NewPCG(3, 5))
	var items []any
	for len(mustJSON(items)) < 100<<10 {
		name, email := person(rng)
		items = append(items, map[string]any{"id": uuid(rng), "customer": name, "email": email, "note": pick(rng, prose),
			"comment": pick(rng, comments), "lines": []any{map[string]any{"sku": "SKU-1", "qty": 2, "price": 19.99}}, "tags": []string{pick(rng, tags), pick(rng, tags)}})
	}
	body := mustJSON(map[string]any{"orders": items})
	h := append(baseHeaders(rng), [2]string{"Content-Type", "application/json"}, [2]string{"Content-Length", fmt.Sprint(len(body))})
	return Entry{ID: "large-json", Class: Benign, Method: "POST", Path: "/api/v1/import/orders", Headers: h, Body: body}
}

func largeForm() Entry {
	rng := rand.New(rand.NewPCG(9, 1))
	var b strings.Builder
	for i := 0; b.Len() < 100<<10; i++ {
		fmt.Fprintf(&b, "row%d=%s&", i, strings.ReplaceAll(pick(rng, prose), " ", "+"))
	}
	body := strings.TrimSuffix(strings.ReplaceAll(b.String(), "'", "%27"), "&")
	h := append(baseHeaders(rng), [2]string{"Content-Type", "application/x-www-form-urlencoded"}, [2]string{"Content-Length", fmt.Sprint(len(body))})
	return Entry{ID: "large-form", Class: Benign, Method: "POST", Path: "/api/v1/bulk", Headers: h, Body: body}
}

func benchOurs(d *detect.Detector, set []Entry) func(*testing.B) {
	reqs := make([]*call.Request, len(set))
	for i := range set {
		reqs[i] = set[i].Request()
	}
	return func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			d.Inspect(reqs[i%len(reqs)], "bench")
			i++
		}
	}
}

func benchCRS(c *CRS, set []Entry) func(*testing.B) {
	return func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			c.Verdict(&set[i%len(set)])
			i++
		}
	}
}

// measure runs f round-robin over n inputs on one goroutine and returns
// requests per CPU-second of the whole process (so GC work counts) and
// allocations per request. CPU time rather than wall time keeps the
// numbers meaningful on a shared, loaded machine.
func measure(n int, f func(i int)) (reqPerCPUSec float64, allocs uint64) {
	for i := 0; i < min(n, 3); i++ {
		f(i)
	}
	runtime.GC()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	c0 := cpuTime()
	w0 := time.Now()
	iters := 0
	for {
		f(iters % n)
		iters++
		if iters%8 == 0 && (cpuTime()-c0 > 400*time.Millisecond || time.Since(w0) > 8*time.Second) {
			break
		}
	}
	cpu := cpuTime() - c0
	runtime.ReadMemStats(&ms1)
	return float64(iters) / cpu.Seconds(), (ms1.Mallocs - ms0.Mallocs) / uint64(iters)
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func speedTable(t *testing.T, eng engines) string {
	sets := speedSets(t)
	var b strings.Builder
	fmt.Fprintf(&b, "\nSpeed on benign traffic: requests per CPU-second of one goroutine (= per core), allocations per request\n")
	fmt.Fprintf(&b, "%-6s %4s %7s | %12s %10s | %12s %10s | %8s\n", "mix", "reqs", "avg B", "aw req/s", "aw allocs", "crs req/s", "crs allocs", "aw/crs")
	for _, k := range []string{"get", "json", "form", "large"} {
		set := sets[k]
		reqs := make([]*call.Request, len(set))
		size := 0
		for i := range set {
			reqs[i] = set[i].Request()
			size += len(set[i].Body) + len(set[i].Query) + len(set[i].Path)
		}
		qa, aa := measure(len(reqs), func(i int) { eng.det.Inspect(reqs[i], "bench") })
		qc, ac := measure(len(set), func(i int) { eng.crs.Verdict(&set[i]) })
		fmt.Fprintf(&b, "%-6s %4d %7d | %12.0f %10d | %12.0f %10d | %7.1fx\n", k, len(set), size/len(set), qa, aa, qc, ac, qa/qc)
	}
	return b.String()
}

func BenchmarkDetect(b *testing.B) {
	eng := loadEngines(b)
	sets := speedSets(b)
	keys := make([]string, 0, len(sets))
	for k := range sets {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		b.Run("apiwarden/"+k, benchOurs(eng.det, sets[k]))
		b.Run("crs/"+k, benchCRS(eng.crs, sets[k]))
	}
	attacks := []Entry{}
	for _, e := range loadTestCorpus(b) {
		if e.Class != Benign {
			attacks = append(attacks, e)
		}
	}
	b.Run("apiwarden/attacks", benchOurs(eng.det, attacks))
	b.Run("crs/attacks", benchCRS(eng.crs, attacks))
}

// TestSpeedReport prints only the speed table (the accuracy report
// includes it too).
func TestSpeedReport(t *testing.T) {
	if testing.Short() {
		t.Skip("speed report skipped in -short")
	}
	t.Log(speedTable(t, loadEngines(t)))
}

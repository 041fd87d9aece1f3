package detectbench

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/apiwarden/apiwarden/apimodel/detect"
)

// TestShapesReport (AW_SHAPES=1, ~10 s) measures the two effects of
// learned parameter shapes (detect.Profiler) apart:
//
//   - lowering: a Profiler learns from the TUNING slice of the benign API
//     corpus (requests whose findings stay under the block threshold, as
//     the agent feeds it), then the HELD-BACK slice's FPR per API is
//     counted with and without the shapes;
//   - raising: attack payloads taken from the CRS regression set's query
//     and form parameters (tuning and held-back cases apart) are put into
//     a parameter of a held-back benign request that the profiler learned
//     as integer, number, boolean, uuid or enum, and TPR is counted with
//     and without the shapes (a raise of a rule's finding, or the
//     shape-type-break finding for a suspect value that no rule matched). The same payloads in a learned untyped
//     (string) parameter are the control: shapes must not change them.
//
// The corpus has no client addresses, so the profiler runs with
// UsualMinClients = 0 (every other learning bound at its default).
func TestShapesReport(t *testing.T) {
	if os.Getenv("AW_SHAPES") == "" {
		t.Skip("AW_SHAPES not set")
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	base, err := detect.New(detect.Config{}, log)
	if err != nil {
		t.Fatal(err)
	}
	prof := detect.NewProfiler()
	prof.UsualMinClients = 0
	shaped, err := detect.New(detect.Config{Shapes: prof}, log)
	if err != nil {
		t.Fatal(err)
	}
	api, err := LoadCorpus(apiTrafficPath)
	if err != nil {
		t.Fatal(err)
	}
	var tune, held []Entry
	for _, e := range api {
		if HeldBack(e.ID) {
			held = append(held, e)
		} else {
			tune = append(tune, e)
		}
	}
	// The variant "trusted warm-up" learns from every tuning request, the
	// flagged ones too (LearnBelow past 100): what lowering could do if the
	// learning window were known to be attack-free. The agent does not run
	// this way.
	warm := detect.NewProfiler()
	warm.UsualMinClients = 0
	warm.LearnBelow = 101
	// AW_SHAPES_WARM_DISTINCT=n sets the warm-up's UsualMinDistinct (the
	// generated corpus repeats its texts: see README).
	if v, err := strconv.Atoi(os.Getenv("AW_SHAPES_WARM_DISTINCT")); err == nil {
		warm.UsualMinDistinct = v
	}
	warmed, err := detect.New(detect.Config{Shapes: warm}, log)
	if err != nil {
		t.Fatal(err)
	}
	for i := range tune {
		req := tune[i].Request()
		prof.Learn(shaped, req, tune[i].Where, "", shaped.Inspect(req, tune[i].Where))
		warm.Learn(warmed, req, tune[i].Where, "", warmed.Inspect(req, tune[i].Where))
	}
	ps := prof.Stats()
	fmt.Printf("\nprofiler trained on %d TUNING requests: %d learned, %d skipped (finding >= %d); %d endpoints, %d parameters\n",
		len(tune), ps.Learned, ps.Skipped, prof.LearnBelow, ps.Endpoints, ps.Params)

	// (a) FPR on the held-back benign slice, per API.
	type fpr struct{ n, without, with, warm int }
	per := map[string]*fpr{}
	tot := &fpr{}
	st0 := shaped.Stats()
	for i := range held {
		e := &held[i]
		r := per[e.Where]
		if r == nil {
			r = &fpr{}
			per[e.Where] = r
		}
		req := e.Request()
		wo := maxConfidence(base.Inspect(req, e.Where)) >= blockConfidence
		w := maxConfidence(shaped.Inspect(req, e.Where)) >= blockConfidence
		ww := maxConfidence(warmed.Inspect(req, e.Where)) >= blockConfidence
		for _, x := range []*fpr{r, tot} {
			x.n++
			x.without += b2i(wo)
			x.with += b2i(w)
			x.warm += b2i(ww)
		}
	}
	st1 := shaped.Stats()
	pc := func(a, n int) string {
		if n == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f %%", 100*float64(a)/float64(n))
	}
	fmt.Printf("\n%s HELD-BACK slice (30 %%): FPR per API (confidence >= %d), profiler trained on the tuning slice\n", apiTrafficPath, blockConfidence)
	fmt.Printf("| API | n | without shapes | with shapes | with shapes, trusted warm-up (learns flagged too) |\n|---|---:|---:|---:|---:|\n")
	keys := make([]string, 0, len(per))
	for k := range per {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range append(keys, "ALL") {
		r := tot
		if k != "ALL" {
			r = per[k]
		}
		fmt.Printf("| %s | %d | %s (%d) | %s (%d) | %s (%d) |\n", k, r.n, pc(r.without, r.n), r.without, pc(r.with, r.n), r.with, pc(r.warm, r.n), r.warm)
	}
	fmt.Printf("findings on held-back benign requests: %d lowered, %d raised, %d %s added\n",
		st1.ShapeLowered-st0.ShapeLowered, st1.ShapeRaised-st0.ShapeRaised, st1.ShapeBreaks-st0.ShapeBreaks, detect.ShapeBreakRule)

	// (b) Raise: attack payloads in learned typed parameters.
	set, err := LoadCRSSet(CRSSetPath)
	if err != nil {
		t.Skip(err)
	}
	var scalar, enum, untyped []slot
	for i := range held {
		for _, s := range slots(&held[i]) {
			sh, ok := prof.Shape(held[i].Where, held[i].Method, held[i].Path, s.part)
			switch {
			case !ok:
			case sh.Type == "string":
				untyped = append(untyped, s)
			case sh.Type == "enum":
				enum = append(enum, s)
			default:
				scalar = append(scalar, s)
			}
		}
	}
	// Host requests without any finding of their own, so every finding
	// counted is the payload's.
	scalar, enum, untyped = quiet(base, scalar), quiet(base, enum), quiet(base, untyped)
	types := map[string]int{}
	for _, s := range scalar {
		sh, _ := prof.Shape(s.e.Where, s.e.Method, s.e.Path, s.part)
		types[sh.Type]++
	}
	fmt.Printf("\nslots in held-back benign requests without findings: %d integer/number/boolean/uuid %v, %d enum, %d untyped (string)\n",
		len(scalar), types, len(enum), len(untyped))
	if len(scalar) == 0 || len(enum) == 0 || len(untyped) == 0 {
		t.Fatal("no slots")
	}
	for _, g := range []struct {
		name  string
		typed []slot
	}{{"integer/number/boolean/uuid", scalar}, {"enum", enum}} {
		typed := g.typed
		for _, heldBack := range []bool{false, true} {
			type row struct{ n, wo, w, cwo, cw int }
			rows := map[string]*row{}
			all := &row{}
			k := 0
			var hist [4]int
			for i := range set {
				c := &set[i]
				if c.HeldBack != heldBack {
					continue
				}
				pay := payload(&c.Entry)
				if pay == "" {
					continue
				}
				k++
				ts, us := typed[k%len(typed)], untyped[k%len(untyped)]
				tr, ur := ts.with(pay), us.with(pay)
				r := rows[c.Family]
				if r == nil {
					r = &row{}
					rows[c.Family] = r
				}
				svc := ts.e.Where
				mc := maxConfidence(base.Inspect(tr.Request(), svc))
				switch {
				case mc < 0:
					hist[0]++
				case mc < blockConfidence-shapeBonus:
					hist[1]++
				case mc < blockConfidence:
					hist[2]++
				default:
					hist[3]++
				}
				if os.Getenv("AW_SHAPES_DEBUG") != "" && !heldBack && mc >= 70 && mc < blockConfidence {
					sh, _ := prof.Shape(svc, ts.e.Method, ts.e.Path, ts.part)
					fmt.Printf("DEBUG %s slot %s %+v\n  base %+v\n  shaped %+v\n", ts.e.ID, ts.part, sh, base.Inspect(tr.Request(), svc), shaped.Inspect(tr.Request(), svc))
				}
				wo := mc >= blockConfidence
				w := maxConfidence(shaped.Inspect(tr.Request(), svc)) >= blockConfidence
				cwo := maxConfidence(base.Inspect(ur.Request(), us.e.Where)) >= blockConfidence
				cw := maxConfidence(shaped.Inspect(ur.Request(), us.e.Where)) >= blockConfidence
				for _, x := range []*row{r, all} {
					x.n++
					x.wo += b2i(wo)
					x.w += b2i(w)
					x.cwo += b2i(cwo)
					x.cw += b2i(cw)
				}
			}
			slice := "TUNING slice (70 %)"
			if heldBack {
				slice = "HELD-BACK slice (30 %)"
			}
			fmt.Printf("\n%s payloads in %s slots, best finding without shapes: none %d, under %d %d, %d-%d (what a raise can lift) %d, >= %d %d\n",
				slice, g.name, hist[0], blockConfidence-shapeBonus, hist[1], blockConfidence-shapeBonus, blockConfidence-1, hist[2], blockConfidence, hist[3])
			fmt.Printf("\nCRS v4.25.0 %s payloads (query/form parameter values) placed in a learned %s parameter of a held-back benign request: TPR (confidence >= %d)\n", slice, g.name, blockConfidence)
			fmt.Printf("| CRS file + class | n | typed slot, without shapes | typed slot, with shapes | control: string slot, without | string slot, with |\n|---|---:|---:|---:|---:|---:|\n")
			fam := make([]string, 0, len(rows))
			for f := range rows {
				fam = append(fam, f)
			}
			sort.Strings(fam)
			for _, f := range append(fam, "ALL") {
				r := all
				if f != "ALL" {
					r = rows[f]
				}
				fmt.Printf("| %s | %d | %s | %s | %s | %s |\n", f, r.n, pc(r.wo, r.n), pc(r.w, r.n), pc(r.cwo, r.n), pc(r.cw, r.n))
			}
		}
	}
}

// shapeBonus mirrors detect's shapeBreakBonus (15): a finding from 70 up
// is raised over the block threshold.
const shapeBonus = 15

// slot is one parameter of a benign request an attack payload can go in.
type slot struct {
	e    *Entry
	part string // Finding.Part form: "query:id", "form:x", "json:$.a.b"
	// with returns the entry with the parameter's value replaced.
	with func(payload string) *Entry
}

func quiet(d *detect.Detector, ss []slot) []slot {
	var out []slot
	seen := map[*Entry]bool{}
	ok := map[*Entry]bool{}
	for _, s := range ss {
		if !seen[s.e] {
			seen[s.e] = true
			ok[s.e] = len(d.Inspect(s.e.Request(), s.e.Where)) == 0
		}
		if ok[s.e] {
			out = append(out, s)
		}
	}
	return out
}

// slots lists the query, form and JSON parameters of e.
func slots(e *Entry) []slot {
	var out []slot
	for i, kv := range splitForm(e.Query) {
		i, name := i, kv[0]
		out = append(out, slot{e: e, part: "query:" + name, with: func(p string) *Entry {
			c := *e
			c.Query = replaceForm(e.Query, i, p)
			return &c
		}})
	}
	ct := ""
	for _, h := range e.Headers {
		if strings.EqualFold(h[0], "content-type") {
			ct = strings.ToLower(h[1])
		}
	}
	switch {
	case strings.Contains(ct, "x-www-form-urlencoded"):
		for i, kv := range splitForm(e.Body) {
			i, name := i, kv[0]
			out = append(out, slot{e: e, part: "form:" + name, with: func(p string) *Entry {
				c := *e
				c.Body = replaceForm(e.Body, i, p)
				fixLength(&c)
				return &c
			}})
		}
	case strings.Contains(ct, "json"):
		var v any
		if json.Unmarshal([]byte(e.Body), &v) != nil {
			return out
		}
		var paths []string
		walkJSON(v, "$", func(p string) { paths = append(paths, p) })
		for _, p := range paths {
			p := p
			out = append(out, slot{e: e, part: "json:" + p, with: func(pay string) *Entry {
				var v any
				json.Unmarshal([]byte(e.Body), &v)
				v = setJSON(v, "$", p, pay)
				b, _ := json.Marshal(v)
				c := *e
				c.Body = string(b)
				fixLength(&c)
				return &c
			}})
		}
	}
	return out
}

func splitForm(s string) [][2]string {
	var out [][2]string
	if s == "" {
		return nil
	}
	for _, kv := range strings.Split(s, "&") {
		k, v, _ := strings.Cut(kv, "=")
		name, err := url.QueryUnescape(k)
		if err != nil {
			name = k
		}
		out = append(out, [2]string{name, v})
	}
	return out
}

func replaceForm(s string, i int, payload string) string {
	kvs := strings.Split(s, "&")
	k, _, _ := strings.Cut(kvs[i], "=")
	kvs[i] = k + "=" + url.QueryEscape(payload)
	return strings.Join(kvs, "&")
}

func fixLength(e *Entry) {
	hs := make([][2]string, len(e.Headers))
	copy(hs, e.Headers)
	for i, h := range hs {
		if strings.EqualFold(h[0], "content-length") {
			hs[i][1] = fmt.Sprint(len(e.Body))
		}
	}
	e.Headers = hs
}

// walkJSON calls leaf with the path (Finding.Part syntax) of every
// string, number or boolean leaf.
func walkJSON(v any, path string, leaf func(string)) {
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			walkJSON(c, path+"."+k, leaf)
		}
	case []any:
		for i, c := range x {
			walkJSON(c, fmt.Sprintf("%s[%d]", path, i), leaf)
		}
	case nil:
	default:
		leaf(path)
	}
}

func setJSON(v any, path, target, pay string) any {
	if path == target {
		return pay
	}
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			x[k] = setJSON(c, path+"."+k, target, pay)
		}
	case []any:
		for i, c := range x {
			x[i] = setJSON(c, fmt.Sprintf("%s[%d]", path, i), target, pay)
		}
	}
	return v
}

// payload returns the decoded value of the longest query or form
// parameter of a CRS case ("" when it has none): what the case's attack
// is, stripped of where CRS put it.
func payload(e *Entry) string {
	best := ""
	try := func(s string) {
		for _, kv := range splitForm(s) {
			v, err := url.QueryUnescape(kv[1])
			if err != nil {
				v = kv[1]
			}
			if len(v) > len(best) {
				best = v
			}
		}
	}
	try(e.Query)
	for _, h := range e.Headers {
		if strings.EqualFold(h[0], "content-type") && strings.Contains(strings.ToLower(h[1]), "x-www-form-urlencoded") {
			try(e.Body)
		}
	}
	return best
}

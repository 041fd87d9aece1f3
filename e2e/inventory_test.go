package e2e

import (
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/apiwarden/apiwarden/e2e/harness"
)

// wantEndpoint is one expected inventory entry.
type wantEndpoint struct {
	services []string // acceptable service names (exe basename, comm)
	port     int
	method   string
	tmpl     string // normalised: every {name} is {}
	count    uint64
	statuses map[string]uint64
	query    []string // query parameter names, sorted
	// qcount and qtype: requests carrying each query parameter, and its JSON
	// Schema type ("integer" when every value was all digits, else "string").
	qcount map[string]uint64
	qtype  map[string]string
	exe    string   // basename of the serving process's exe
	auth   []string // auth schemes that must be reported (bearer-jwt)
}

func (e wantEndpoint) key() string { return fmt.Sprintf("%d %s %s", e.port, e.method, e.tmpl) }

var paramRE = regexp.MustCompile(`\{[^}]*\}`)

// normTemplate makes templates comparable whatever the parameter names are.
func normTemplate(s string) string { return paramRE.ReplaceAllString(s, "{}") }

// expectedInventory derives the inventory the agent must build from the workload.
func expectedInventory(w *world, steps []step) []wantEndpoint {
	m := map[string]*wantEndpoint{}
	for _, s := range steps {
		for _, r := range s.reqs {
			srv := w.server(r.svc)
			e := wantEndpoint{services: w.serviceNames(srv), port: srv.Port, method: r.method,
				tmpl: normTemplate(r.tmpl), exe: srv.Exe()}
			k := e.key()
			if m[k] == nil {
				e.statuses = map[string]uint64{}
				m[k] = &e
			}
			cur := m[k]
			cur.count++
			cur.statuses[strconv.Itoa(r.status)]++
			cur.query = union(cur.query, queryNames(r.target))
			for name, val := range queryValues(r.target) {
				if cur.qcount == nil {
					cur.qcount, cur.qtype = map[string]uint64{}, map[string]string{}
				}
				cur.qcount[name]++
				typ := "string"
				if isDigits(val) {
					typ = "integer"
				}
				if old, ok := cur.qtype[name]; ok && old != typ {
					typ = "string"
				}
				cur.qtype[name] = typ
			}
			if strings.HasPrefix(r.headers["Authorization"], "Bearer ") {
				cur.auth = union(cur.auth, []string{"bearer-jwt"})
			}
		}
	}
	out := make([]wantEndpoint, 0, len(m))
	for _, e := range m {
		out = append(out, *e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key() < out[j].key() })
	return out
}

func union(a, b []string) []string {
	set := map[string]bool{}
	for _, s := range append(append([]string{}, a...), b...) {
		set[s] = true
	}
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// gotKey is the comparison key of an inventory entry.
func gotKey(e harness.Endpoint) string {
	return fmt.Sprintf("%d %s %s", e.Service.Port, e.Method, normTemplate(e.PathTemplate))
}

// inventoryDiff returns a readable list of differences, empty when equal.
func inventoryDiff(got []harness.Endpoint, want []wantEndpoint) []string {
	byKey := map[string]harness.Endpoint{}
	var diffs []string
	for _, e := range got {
		k := gotKey(e)
		if _, dup := byKey[k]; dup {
			diffs = append(diffs, fmt.Sprintf("duplicate endpoint %s", k))
		}
		byKey[k] = e
	}
	seen := map[string]bool{}
	for _, w := range want {
		k := w.key()
		seen[k] = true
		g, ok := byKey[k]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("missing   %s (count %d)", k, w.count))
			continue
		}
		var d []string
		if !contains(w.services, g.Service.Name) {
			d = append(d, fmt.Sprintf("service %q not in %q", g.Service.Name, w.services))
		}
		if uint64(g.RequestCount) != w.count {
			d = append(d, fmt.Sprintf("count %d want %d", g.RequestCount, w.count))
		}
		gs := map[string]uint64{}
		for c, n := range g.StatusCodes {
			gs[c] = uint64(n)
		}
		if fmt.Sprint(sortedMap(gs)) != fmt.Sprint(sortedMap(w.statuses)) {
			d = append(d, fmt.Sprintf("statuses %v want %v", sortedMap(gs), sortedMap(w.statuses)))
		}
		var gq []string
		for _, p := range g.QueryParams {
			gq = append(gq, p.Name)
		}
		gq = union(gq, nil)
		if strings.Join(gq, ",") != strings.Join(w.query, ",") {
			d = append(d, fmt.Sprintf("query params %v want %v", gq, w.query))
		}
		for _, p := range g.QueryParams {
			n, ok := w.qcount[p.Name]
			if !ok {
				continue
			}
			if uint64(p.Count) != n || p.Required != (n == w.count) || p.Type != w.qtype[p.Name] {
				d = append(d, fmt.Sprintf("query param %s: count=%d required=%v type=%q, want count=%d required=%v type=%q",
					p.Name, p.Count, p.Required, p.Type, n, n == w.count, w.qtype[p.Name]))
			}
		}
		if holes := strings.Count(w.tmpl, "{}"); len(g.PathParams) != holes {
			d = append(d, fmt.Sprintf("%d path params, want %d", len(g.PathParams), holes))
		}
		if g.NoResponse != 0 {
			d = append(d, fmt.Sprintf("%d requests without response, want 0", g.NoResponse))
		}
		for _, a := range w.auth {
			if g.AuthSchemes[a] == 0 {
				d = append(d, fmt.Sprintf("auth scheme %q not reported (got %v)", a, g.AuthSchemes))
			}
		}
		if !hasExe(g, w.exe) {
			d = append(d, fmt.Sprintf("no process with exe %q (service exe %q, processes %+v)", w.exe, g.Service.Exe, g.Processes))
		}
		if len(d) > 0 {
			diffs = append(diffs, fmt.Sprintf("different %s: %s", k, strings.Join(d, "; ")))
		}
	}
	for _, e := range got {
		if k := gotKey(e); !seen[k] {
			diffs = append(diffs, fmt.Sprintf("unexpected %s (service %q, template %q, count %d)", k, e.Service.Name, e.PathTemplate, e.RequestCount))
		}
	}
	sort.Strings(diffs)
	return diffs
}

// assertInventory fails t with a readable diff when got is not exactly want.
func assertInventory(t *testing.T, got []harness.Endpoint, want []wantEndpoint) {
	t.Helper()
	if d := inventoryDiff(got, want); len(d) > 0 {
		t.Errorf("inventory differs from the workload (%d endpoints got, %d want):\n  %s\nwant:\n%s",
			len(got), len(want), strings.Join(d, "\n  "), formatWant(want))
	}
}

func formatWant(want []wantEndpoint) string {
	var b strings.Builder
	for _, w := range want {
		fmt.Fprintf(&b, "  %-45s count=%-3d statuses=%v query=%v exe=%s\n", w.key(), w.count, sortedMap(w.statuses), w.query, w.exe)
	}
	return b.String()
}

func sortedMap(m map[string]uint64) []string {
	var out []string
	for k, v := range m {
		if v != 0 {
			out = append(out, fmt.Sprintf("%s:%d", k, v))
		}
	}
	sort.Strings(out)
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func hasExe(e harness.Endpoint, exe string) bool {
	if filepath.Base(e.Service.Exe) == exe {
		return true
	}
	for _, p := range e.Processes {
		if filepath.Base(p.Exe) == exe {
			return true
		}
	}
	return false
}

// totalCount sums request counts, to see when the agent has caught up.
func totalCount(eps []harness.Endpoint) uint64 {
	var n uint64
	for _, e := range eps {
		n += uint64(e.RequestCount)
	}
	return n
}

// TestInventoryDiff checks the comparison itself, without root.
func TestInventoryDiff(t *testing.T) {
	want := []wantEndpoint{{services: []string{"goapi"}, port: 8080, method: "GET", tmpl: "/users/{}", count: 2,
		statuses: map[string]uint64{"200": 1, "404": 1}, query: []string{"limit"}, exe: "goapi"}}
	var e harness.Endpoint
	e.Service.Name, e.Service.Exe, e.Service.Port = "goapi", "/tmp/x/goapi", 8080
	e.Method, e.PathTemplate, e.RequestCount = "GET", "/users/{userId}", 2
	e.StatusCodes = map[string]harness.U64{"200": 1, "404": 1}
	e.QueryParams = []harness.Param{{Name: "limit"}}
	e.PathParams = []harness.Param{{Name: "userId", In: "path"}}
	if d := inventoryDiff([]harness.Endpoint{e}, want); len(d) != 0 {
		t.Fatalf("equal inventories differ: %v", d)
	}
	e.RequestCount = 3
	extra := e
	extra.PathTemplate = "/users/{id}/x"
	d := inventoryDiff([]harness.Endpoint{e, extra}, want)
	if len(d) != 2 || !strings.Contains(d[0], "count 3 want 2") || !strings.Contains(d[1], "unexpected") {
		t.Fatalf("diff = %q", d)
	}
}

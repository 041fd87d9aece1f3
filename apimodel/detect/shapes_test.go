package detect

import (
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/apiwarden/apiwarden/apimodel/call"
)

// shapeDetector returns a detector with the shape test rules (and the
// built-in rules that also fire on "1 OR 1=1" off, so t-sqli-or at 78 is
// the only finding) using profiler p.
func shapeDetector(t *testing.T, p *Profiler) *Detector {
	t.Helper()
	return newDetector(t, Config{
		RuleFiles: []string{"testdata/shape_rules.yaml"},
		Disabled:  map[string][]string{"*": {"sqli-libinjection", "sqli-chained-condition"}},
		Shapes:    p,
	})
}

// learnAll inspects each request and lets p learn it, as the agent does;
// the clients take turns, skewed so every 3rd or 4th request does not
// always come from the same one.
func learnAll(d *Detector, p *Profiler, svc string, reqs []*call.Request, clients []string) int {
	n := 0
	for i, r := range reqs {
		c := ""
		if len(clients) > 0 {
			c = clients[(i+i/4)%len(clients)]
		}
		if p.Learn(d, r, svc, c, d.Inspect(r, svc)) {
			n++
		}
	}
	return n
}

func jsonPost(path, body string) *call.Request {
	return &call.Request{Method: "POST", Path: path, Proto: "HTTP/1.1", Body: []byte(body), BodySize: int64(len(body)),
		Headers: call.Headers{{Name: "Content-Type", Value: "application/json"}}}
}

func confOf(fs []Finding, rule string) int {
	for _, f := range fs {
		if f.RuleID == rule {
			return f.Confidence
		}
	}
	return -1
}

func intRequests(n int) []*call.Request {
	var out []*call.Request
	for i := 0; i < n; i++ {
		out = append(out, get(fmt.Sprintf("/shop/items/%d/reviews?id=%d&sort=new", 1000+i, i*7)))
	}
	return out
}

func TestShapeRaisesBrokenInteger(t *testing.T) {
	p := NewProfiler()
	d := shapeDetector(t, p)
	attack := get("/shop/items/31/reviews?id=1%20OR%201%3D1&sort=new")
	if c := confOf(d.Inspect(attack, "shop"), "t-sqli-or"); c != 78 {
		t.Fatalf("before learning: confidence %d, want 78", c)
	}
	// One observation short of MinSamples: nothing is learned yet.
	learnAll(d, p, "shop", intRequests(p.MinSamples-1), nil)
	if _, ok := p.Shape("shop", "GET", "/shop/items/9/reviews", "query:id"); ok {
		t.Fatal("shape served with too few observations")
	}
	if c := confOf(d.Inspect(attack, "shop"), "t-sqli-or"); c != 78 {
		t.Fatalf("too few observations: confidence %d, want 78", c)
	}
	learnAll(d, p, "shop", intRequests(1), nil)
	sh, ok := p.Shape("shop", "GET", "/shop/items/9/reviews", "query:id")
	if !ok || sh.Type != "integer" {
		t.Fatalf("shape = %+v, %v; want integer", sh, ok)
	}
	before := d.Stats().ShapeRaised
	if c := confOf(d.Inspect(attack, "shop"), "t-sqli-or"); c != 78+shapeBreakBonus || c < 85 {
		t.Fatalf("learned integer: confidence %d, want %d (over the block threshold)", c, 78+shapeBreakBonus)
	}
	if d.Stats().ShapeRaised != before+1 {
		t.Error("ShapeRaised not counted")
	}
	// Another service's identical endpoint learned nothing.
	if c := confOf(d.Inspect(attack, "other"), "t-sqli-or"); c != 78 {
		t.Errorf("other service: confidence %d, want 78", c)
	}
	// "sort" is an enum (one value seen 20 times): breaking it raises too.
	if sh, _ := p.Shape("shop", "GET", "/shop/items/1/reviews", "query:sort"); sh.Type != "enum" || len(sh.Enum) != 1 {
		t.Errorf("sort shape = %+v, want enum [new]", sh)
	}
	if c := confOf(d.Inspect(get("/shop/items/31/reviews?id=4&sort=x%27%20or%201%3D1"), "shop"), "t-sqli-or"); c != 78+shapeBreakBonus {
		t.Errorf("broken enum: confidence %d", c)
	}
}

func TestShapeRaisesBrokenJSONNumber(t *testing.T) {
	p := NewProfiler()
	d := shapeDetector(t, p)
	var reqs []*call.Request
	for i := 0; i < p.MinSamples; i++ {
		reqs = append(reqs, jsonPost("/cart", fmt.Sprintf(`{"qty":%d,"items":[{"sku":%d}],"gift":true}`, i, 100+i)))
	}
	learnAll(d, p, "shop", reqs, nil)
	if sh, ok := p.Shape("shop", "POST", "/cart", "json:$.items[3].sku"); !ok || sh.Type != "integer" {
		t.Fatalf("array element shape = %+v, %v; want integer", sh, ok)
	}
	if sh, _ := p.Shape("shop", "POST", "/cart", "json:$.gift"); sh.Type != "boolean" {
		t.Errorf("gift shape = %+v, want boolean", sh)
	}
	fs := d.Inspect(jsonPost("/cart", `{"qty":"1 OR 1=1","items":[]}`), "shop")
	if c := confOf(fs, "t-sqli-or"); c != 78+shapeBreakBonus {
		t.Fatalf("string in a learned JSON number: confidence %d, want %d", c, 78+shapeBreakBonus)
	}
}

// proseRequests are comments that now and then carry the low-confidence
// xss marker (1 in 4), as HTML in a CMS body would.
func proseRequests(n, from int) []*call.Request {
	var out []*call.Request
	for i := from; i < from+n; i++ {
		text := fmt.Sprintf("thanks for the fix number %d, works for me", i)
		if i%4 == 0 {
			text = fmt.Sprintf("see <b>zzlow</b> in build %d", i)
		}
		out = append(out, jsonPost(fmt.Sprintf("/posts/%d/comments", 500+i), `{"comment":"`+text+`","post":`+fmt.Sprint(i)+`}`))
	}
	return out
}

func TestShapeLowersUsualClass(t *testing.T) {
	p := NewProfiler()
	d := shapeDetector(t, p)
	// "size=2": a character markup needs, so the prose demotion of a bare
	// tag named in a sentence (markupProse) stays out of this test.
	mid := jsonPost("/posts/77/comments", `{"comment":"the zzmid tag shows up in the preview, size=2","post":1}`)
	if c := confOf(d.Inspect(mid, "blog"), "t-xss-mid"); c != 85 {
		t.Fatalf("before learning: %d", c)
	}
	clients := []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"}
	learnAll(d, p, "blog", proseRequests(p.UsualMinSamples, 0), clients)
	sh, ok := p.Shape("blog", "POST", "/posts/1/comments", "json:$.comment")
	if !ok || sh.Type != "string" || !sh.usual("xss") {
		t.Fatalf("comment shape = %+v, %v; want string with usual xss", sh, ok)
	}
	before := d.Stats().ShapeLowered
	fs := d.Inspect(mid, "blog")
	if c := confOf(fs, "t-xss-mid"); c != 85-shapeFitPenalty || c >= 85 {
		t.Fatalf("usual class: confidence %d, want %d (under the block threshold)", c, 85-shapeFitPenalty)
	}
	if d.Stats().ShapeLowered != before+1 {
		t.Error("ShapeLowered not counted")
	}
	// A 95 is never lowered.
	hi := jsonPost("/posts/77/comments", `{"comment":"zzhigh","post":1}`)
	if c := confOf(d.Inspect(hi, "blog"), "t-xss-high"); c != 95 {
		t.Errorf("confidence-95 finding changed to %d", c)
	}
	// Another class on the same field keeps its confidence.
	if c := confOf(d.Inspect(jsonPost("/posts/7/comments", `{"comment":"x 1 or 1=1","post":1}`), "blog"), "t-sqli-or"); c != 78 {
		t.Errorf("sqli on an xss-usual field: %d", c)
	}
	// A typed field of the same endpoint does not lower.
	if c := confOf(d.Inspect(jsonPost("/posts/7/comments", `{"comment":"ok","post":"zzmid"}`), "blog"), "t-xss-mid"); c != 85+shapeBreakBonus {
		t.Errorf("zzmid in the integer post field: %d, want raised", c)
	}
}

func TestShapeUsualNeedsClientsAndValues(t *testing.T) {
	// Every condition one short: no class becomes usual.
	p := NewProfiler()
	d := shapeDetector(t, p)
	learnAll(d, p, "blog", proseRequests(p.UsualMinSamples, 0), []string{"10.0.0.1", "10.0.0.2"})
	if sh, _ := p.Shape("blog", "POST", "/posts/1/comments", "json:$.comment"); sh.usual("xss") {
		t.Errorf("usual from %d clients: %+v", p.UsualMinClients-1, sh)
	}
	p = NewProfiler()
	d = shapeDetector(t, p)
	learnAll(d, p, "blog", proseRequests(p.UsualMinSamples-1, 0), []string{"a", "b", "c"})
	if sh, _ := p.Shape("blog", "POST", "/posts/1/comments", "json:$.comment"); sh.usual("xss") {
		t.Errorf("usual from %d values: %+v", p.UsualMinSamples-1, sh)
	}
	// Many requests but one repeated value: not enough distinct values.
	p = NewProfiler()
	d = shapeDetector(t, p)
	var reqs []*call.Request
	for i := 0; i < 100; i++ {
		text := "plain words here"
		if i%2 == 0 {
			text = "<b>zzlow</b>"
		}
		reqs = append(reqs, jsonPost("/posts/1/comments", `{"comment":"`+text+`"}`))
	}
	learnAll(d, p, "blog", reqs, []string{"a", "b", "c"})
	if sh, _ := p.Shape("blog", "POST", "/posts/1/comments", "json:$.comment"); sh.usual("xss") {
		t.Errorf("usual from one distinct value: %+v", sh)
	}
}

func TestShapeFamilyCmdiRce(t *testing.T) {
	p := NewProfiler()
	d := shapeDetector(t, p)
	var reqs []*call.Request
	for i := 0; i < 60; i++ {
		text := fmt.Sprintf("release %d notes", i)
		if i%3 == 0 {
			text = fmt.Sprintf("run zzshell step %d", i)
		}
		reqs = append(reqs, jsonPost("/issues", `{"body":"`+text+`"}`))
	}
	learnAll(d, p, "gh", reqs, []string{"a", "b", "c"})
	if c := confOf(d.Inspect(jsonPost("/issues", `{"body":"try zzcmd now"}`), "gh"), "t-rce-mid"); c != 90-shapeFitPenalty {
		t.Errorf("rce on a cmdi-usual field: %d, want %d", c, 90-shapeFitPenalty)
	}
}

func TestProfilerSkipsBlockedRequests(t *testing.T) {
	p := NewProfiler()
	d := shapeDetector(t, p)
	clients := []string{"a", "b", "c"}
	// An attacker's requests at the block threshold teach nothing.
	var reqs []*call.Request
	for i := 0; i < 100; i++ {
		reqs = append(reqs, jsonPost("/posts/1/comments", fmt.Sprintf(`{"comment":"zzmid %d"}`, i)))
	}
	if n := learnAll(d, p, "blog", reqs, clients); n != 0 {
		t.Fatalf("learned %d blocked requests", n)
	}
	if st := p.Stats(); st.Skipped != 100 || st.Learned != 0 || st.Params != 0 {
		t.Fatalf("stats %+v", st)
	}
	// Once xss is usual, a zzmid request is lowered to 65 by the detector
	// but still not learned: the filter undoes the profiler's own lowering.
	learnAll(d, p, "blog", proseRequests(p.UsualMinSamples, 0), clients)
	r := jsonPost("/posts/1/comments", `{"comment":"zzmid again"}`)
	fs := d.Inspect(r, "blog")
	if confOf(fs, "t-xss-mid") != 65 {
		t.Fatalf("not lowered: %+v", fs)
	}
	if p.Learn(d, r, "blog", "a", fs) {
		t.Error("a request lowered by the profiler was learned")
	}
}

func TestProfilerLongValuesAreNotEnums(t *testing.T) {
	p := NewProfiler()
	d := shapeDetector(t, p)
	var reqs []*call.Request
	for i := 0; i < 40; i++ {
		reqs = append(reqs, jsonPost("/notes", `{"text":"`+strings.Repeat("long prose ", 5)+fmt.Sprint(i)+`","password":"hunter2"}`))
	}
	learnAll(d, p, "n", reqs, nil)
	if sh, _ := p.Shape("n", "POST", "/notes", "json:$.text"); sh.Type != "string" {
		t.Errorf("prose field typed %q", sh.Type)
	}
	if sh, _ := p.Shape("n", "POST", "/notes", "json:$.password"); sh.Type != "string" || len(sh.Enum) != 0 {
		t.Errorf("sensitive field kept values: %+v", sh)
	}
}

func TestProfilerCaps(t *testing.T) {
	p := NewProfiler()
	p.MaxServices, p.MaxEndpoints, p.MaxParams, p.MaxTotalParams = 2, 3, 4, 10
	d := shapeDetector(t, p)
	q := "a=1&b=2&c=3&d=4&e=5&f=6"
	// One endpoint: 6 parameters, 4 kept.
	p.Learn(d, get("/e0?"+q), "s0", "", nil)
	st := p.Stats()
	if st.Params != 4 || st.Refused != 2 {
		t.Fatalf("per-endpoint cap: %+v", st)
	}
	for i := 1; i < 5; i++ {
		p.Learn(d, get(fmt.Sprintf("/e%c?%s", 'a'+i, q)), "s0", "", nil)
	}
	st = p.Stats()
	if st.Endpoints != 3 || st.Params != 10 {
		t.Fatalf("per-service and total caps: %+v", st)
	}
	p.Learn(d, get("/x?"+q), "s1", "", nil)
	p.Learn(d, get("/x?"+q), "s2", "", nil)
	st = p.Stats()
	if st.Services != 2 || st.Params != 10 {
		t.Fatalf("service cap: %+v", st)
	}
	if p.total != 10 {
		t.Fatalf("total %d", p.total)
	}
	// A full endpoint table makes room by dropping endpoints still below
	// MinSamples (all of them here), once per sweepEvery refusals.
	p.MaxTotalParams = 100
	left := sweepEvery - p.services["s0"].refused%sweepEvery
	for i := 0; i < left-1; i++ {
		p.Learn(d, get("/new"), "s0", "", nil)
	}
	if st = p.Stats(); st.Swept != 0 || st.Endpoints != 4 {
		t.Fatalf("swept before %d refusals: %+v", sweepEvery, st)
	}
	p.Learn(d, get("/new?"+q), "s0", "", nil)
	st = p.Stats()
	// s0's three endpoints swept, /new added; s1's /x stays.
	if st.Swept != 3 || st.Endpoints != 2 || st.Params != 4 {
		t.Fatalf("sweep: %+v", st)
	}
	if _, ok := p.services["s0"].endpoints["GET /new"]; !ok {
		t.Error("new endpoint not added after the sweep")
	}
	// Long names are not kept.
	before := p.Stats().Params
	p.Learn(d, get("/new?"+strings.Repeat("k", 300)+"=1"), "s0", "", nil)
	if p.Stats().Params != before {
		t.Error("over-long part name kept")
	}
}

func TestShapeNoProfilerNoChange(t *testing.T) {
	d := shapeDetector(t, nil)
	if c := confOf(d.Inspect(get("/x?id=1%20OR%201%3D1"), "s"), "t-sqli-or"); c != 78 {
		t.Errorf("confidence %d without shapes", c)
	}
}

func TestProfilerSamplesBusyEndpoints(t *testing.T) {
	p := NewProfiler()
	d := shapeDetector(t, p)
	learnAll(d, p, "shop", intRequests(saturateAt), nil)
	if st := p.Stats(); st.Learned != saturateAt {
		t.Fatalf("learned %d of %d", st.Learned, saturateAt)
	}
	learnAll(d, p, "shop", intRequests(10*sampleEvery), nil)
	if st := p.Stats(); st.Learned != saturateAt+10 {
		t.Fatalf("past saturation: learned %d, want %d", st.Learned, saturateAt+10)
	}
}

func TestShapeBreakFinding(t *testing.T) {
	p := NewProfiler()
	d := shapeDetector(t, p)
	var reqs []*call.Request
	for i := 0; i < p.MinSamples; i++ {
		reqs = append(reqs, get(fmt.Sprintf("/shop/items/%d/reviews?id=%d&q=great+product+%d", i, i, i)))
	}
	// Before learning: a suspect keyword alone is no finding.
	if fs := d.Inspect(get("/shop/items/3/reviews?id=7--&q=x"), "shop"); len(fs) != 0 {
		t.Fatalf("before learning: %+v", fs)
	}
	learnAll(d, p, "shop", reqs, nil)
	fs := d.Inspect(get("/shop/items/3/reviews?id=7--&q=x"), "shop")
	if len(fs) != 1 || fs[0].RuleID != ShapeBreakRule || fs[0].Class != "sqli" || fs[0].Confidence != shapeBreakConfidence ||
		fs[0].Severity != SeverityHigh || fs[0].Part != "query:id" {
		t.Fatalf("break of a learned integer: %+v", fs)
	}
	if d.Stats().ShapeBreaks != 1 {
		t.Error("ShapeBreaks not counted")
	}
	// The same value in a learned string parameter, or no suspect syntax:
	// nothing.
	for _, q := range []string{"id=7&q=7--", "id=abc&q=x"} {
		if fs := d.Inspect(get("/shop/items/3/reviews?"+q), "shop"); len(fs) != 0 {
			t.Errorf("%s: %+v", q, fs)
		}
	}
	// A rule's own finding on the part is raised, not doubled.
	fs = d.Inspect(get("/shop/items/3/reviews?id=1%20OR%201%3D1--&q=x"), "shop")
	if len(fs) != 1 || fs[0].RuleID != "t-sqli-or" || fs[0].Confidence != 78+shapeBreakBonus {
		t.Errorf("rule finding on a broken integer: %+v", fs)
	}
	// The break blocks: the request teaches nothing.
	r := get("/shop/items/3/reviews?id=7--&q=x")
	if p.Learn(d, r, "shop", "", d.Inspect(r, "shop")) {
		t.Error("a request with a break finding was learned")
	}
}

func TestShapeBreakNotForEnums(t *testing.T) {
	p := NewProfiler()
	d := shapeDetector(t, p)
	learnAll(d, p, "shop", intRequests(p.MinSamples), nil)
	if fs := d.Inspect(get("/shop/items/3/reviews?id=4&sort=new--"), "shop"); len(fs) != 0 {
		t.Errorf("suspect value in an enum: %+v", fs)
	}
}

// TestProfilerConcurrent runs Inspect and Learn from several goroutines
// (go test -race).
func TestProfilerConcurrent(t *testing.T) {
	p := NewProfiler()
	d := shapeDetector(t, p)
	done := make(chan bool)
	for g := 0; g < 4; g++ {
		go func(g int) {
			for i := 0; i < 200; i++ {
				r := get(fmt.Sprintf("/shop/items/%d/reviews?id=%d&sort=s%d&q=7--", i, i, i%3))
				if g%2 == 0 {
					r = jsonPost("/posts/1/comments", fmt.Sprintf(`{"comment":"<b>zzlow</b> %d","n":%d}`, i, i))
				}
				p.Learn(d, r, "svc", fmt.Sprint(g), d.Inspect(r, "svc"))
			}
			done <- true
		}(g)
	}
	for g := 0; g < 4; g++ {
		<-done
	}
	if p.Stats().Learned == 0 {
		t.Fatal("nothing learned")
	}
}

// templatePathSplit is templatePath as it was written first (split and
// join), the reference of appendTemplatePath.
func templatePathSplit(p string) string {
	if !strings.ContainsAny(p, "0123456789") {
		return p
	}
	segs := strings.Split(p, "/")
	for i, s := range segs {
		digits := 0
		for j := 0; j < len(s); j++ {
			if s[j] >= '0' && s[j] <= '9' {
				digits++
			}
		}
		if digits > 0 && (isInt(s) || isUUID(s) || digits*3 >= len(s) || len(s) >= 16) {
			segs[i] = "{}"
		}
	}
	return strings.Join(segs, "/")
}

func TestAppendTemplatePath(t *testing.T) {
	for _, p := range []string{"", "/", "//", "/api/v1/ping", "/api/v1/users/42", "/users/42/", "42", "/a//7/b",
		"/items/3fa85f64-5717-4562-b3fc-2c963f66afa6/x", "/v2/abc123def456ghi789", "/x/a1b2", "/x/ab1", "/-12/x",
		"/files/report-2024.pdf", "no/leading/slash/9", "/ü/1"} {
		if got, want := templatePath(p), templatePathSplit(p); got != want {
			t.Errorf("templatePath(%q) = %q, want %q", p, got, want)
		}
		if got, want := string(appendEndpointKey(nil, "GET", p)), "GET "+templatePathSplit(p); got != want {
			t.Errorf("appendEndpointKey(%q) = %q, want %q", p, got, want)
		}
	}
}

// TestLearnFromSameAsLearn: LearnFrom (the client as an address) learns
// what Learn with the formatted address learns.
func TestLearnFromSameAsLearn(t *testing.T) {
	p1, p2 := NewProfiler(), NewProfiler()
	d1, d2 := shapeDetector(t, p1), shapeDetector(t, p2)
	addrs := []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("fd00::3"), {}}
	for i := range 200 {
		r := jsonPost(fmt.Sprintf("/orders/%d", i), fmt.Sprintf(`{"id":%d,"q":"a%d","kind":"x; ls -la"}`, i, i))
		a := addrs[i%len(addrs)]
		if p1.Learn(d1, r, "s", a.String(), d1.Inspect(r, "s")) != p2.LearnFrom(d2, r, "s", a, d2.Inspect(r, "s")) {
			t.Fatalf("request %d learned by one only", i)
		}
	}
	if !reflect.DeepEqual(p1.Stats(), p2.Stats()) {
		t.Fatalf("stats differ: %+v %+v", p1.Stats(), p2.Stats())
	}
	for _, part := range []string{"json:$.id", "json:$.q", "json:$.kind"} {
		s1, ok1 := p1.Shape("s", "POST", "/orders/7", part)
		s2, ok2 := p2.Shape("s", "POST", "/orders/7", part)
		if ok1 != ok2 || !reflect.DeepEqual(s1, s2) {
			t.Fatalf("%s: shapes differ: %+v %v, %+v %v", part, s1, ok1, s2, ok2)
		}
	}
}

// TestLearnFromInspectWalk: values Inspect collects for the profiler
// (no second walk in Learn) teach exactly what Learn's own walk teaches,
// before and after an endpoint saturates, with JSON past the depth limit,
// literals, sensitive fields, cookies, forms and a request over the work
// bound (whose collected set is incomplete and not used).
func TestLearnFromInspectWalk(t *testing.T) {
	p1, p2 := NewProfiler(), NewProfiler()
	cfg := func(p *Profiler) Config {
		return Config{Shapes: p, MaxJSONDepth: 3, MaxInspectBytes: 4 << 10}
	}
	d1, d2 := newDetector(t, cfg(p1)), newDetector(t, cfg(p2))
	big := strings.Repeat("x", 5<<10)
	for i := range 1300 {
		var r *call.Request
		switch i % 5 {
		case 0:
			r = jsonPost("/orders/"+fmt.Sprint(i), fmt.Sprintf(`{"id":%d,"price":%d.5,"ok":true,"none":null,"password":"p%d","token":"fixed",`+
				`"deep":{"a":{"b":{"c":{"d":"x"}}}},"items":[{"sku":"S-%d","qty":%d}],"note":"ring twice, %d"}`, i, i, i, i, i%7, i))
		case 1:
			r = &call.Request{Method: "GET", Path: "/search", RawQuery: fmt.Sprintf("q=a+b%%20%d&page=%d&sort=name,asc", i, i%9),
				Headers: call.Headers{{Name: "User-Agent", Value: "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0"},
					{Name: "Cookie", Value: fmt.Sprintf("session=%x; theme=dark", i)}, {Name: "X-Trace", Value: fmt.Sprint(i)}}}
		case 2:
			r = &call.Request{Method: "POST", Path: "/login", Body: []byte(fmt.Sprintf("user=u%d&pass=p%%27%d&remember=1", i, i)),
				Headers: call.Headers{{Name: "Content-Type", Value: "application/x-www-form-urlencoded"}}}
		case 3:
			r = jsonPost("/upload", fmt.Sprintf(`{"name":"n%d","blob":"%s"}`, i, big))
		case 4:
			r = &call.Request{Method: "GET", Path: fmt.Sprintf("/users/%d/items", i), RawQuery: "fields=id,name&limit=10"}
		}
		// p1: Learn uses what Inspect collected; p2: Inspect sees a copy,
		// so Learn walks the request itself.
		f1 := d1.Inspect(r, "s")
		cp := *r
		f2 := d2.Inspect(&cp, "s")
		if !reflect.DeepEqual(f1, f2) {
			t.Fatalf("request %d: findings differ", i)
		}
		c := fmt.Sprintf("10.0.0.%d", i%5)
		if p1.Learn(d1, r, "s", c, f1) != p2.Learn(d2, r, "s", c, f2) {
			t.Fatalf("request %d learned by one only", i)
		}
	}
	if !reflect.DeepEqual(p1.Stats(), p2.Stats()) {
		t.Fatalf("profiler stats differ:\n%+v\n%+v", p1.Stats(), p2.Stats())
	}
	if !reflect.DeepEqual(p1.services, p2.services) {
		t.Fatal("learned profiles differ")
	}
	if s1, s2 := d1.Stats(), d2.Stats(); s1 != s2 {
		t.Fatalf("detector stats differ:\n%+v\n%+v", s1, s2)
	}
	if n1, n2 := p1.collected.Load(), p2.collected.Load(); n1 < 500 || n2 != 0 {
		t.Fatalf("%d and %d requests learned from Inspect's walk", n1, n2)
	}
	if d1.Stats().DepthLimitHits == 0 || d1.Stats().BytesLimitHits == 0 {
		t.Fatal("the test requests must reach the depth and byte bounds")
	}
}

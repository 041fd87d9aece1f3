package detect

import (
	"testing"

	"github.com/apiwarden/apiwarden/apimodel/call"
)

// boundary is one rule's edge: a request that must fire it and the
// closest benign request that must not.
type boundary struct {
	rule      string
	hit, miss *call.Request
}

func withMethod(m string, r *call.Request) *call.Request {
	r.Method = m
	return r
}

func noCT(method, path, body string) *call.Request {
	r := get(path)
	r.Method = method
	r.Body = []byte(body)
	r.BodySize = int64(len(body))
	return r
}

func fired(fs []Finding, rule string) bool {
	for _, f := range fs {
		if f.RuleID == rule {
			return true
		}
	}
	return false
}

func runBoundaries(t *testing.T, cases []boundary) {
	t.Helper()
	d := newDetector(t, Config{Paranoia: 2})
	for _, c := range cases {
		if fs := d.Inspect(c.hit, "svc"); !fired(fs, c.rule) {
			t.Errorf("%s: must fire on %s %s?%s body=%q, got %+v", c.rule, c.hit.Method, c.hit.Path, c.hit.RawQuery, c.hit.Body, fs)
		}
		if fs := d.Inspect(c.miss, "svc"); fired(fs, c.rule) {
			t.Errorf("%s: must not fire on %s %s?%s body=%q, got %+v", c.rule, c.miss.Method, c.miss.Path, c.miss.RawQuery, c.miss.Body, fs)
		}
	}
}

func TestProtocolFamilyBoundaries(t *testing.T) {
	runBoundaries(t, []boundary{
		{"method-not-allowed", withMethod("PROPFIND", get("/files")), withMethod("OPTIONS", get("/files"))},
		{"method-not-allowed", withMethod("|GET", get("/")), withMethod("PATCH", get("/items/1"))},
		{"protocol-body-content-type", noCT("PUT", "/resource/1", `{"name":"x"}`), post("/resource/1", jsonCT, `{"name":"x"}`)},
		{"protocol-body-content-type", post("/", "application/x-amf", "x"), post("/", "application/vnd.api+json", `{"data":{}}`)},
		{"protocol-body-content-type", post("/", formCT+"; charset=utf-8; charset=utf-7", "a=b"), post("/", formCT+"; charset=utf-8", "a=b")},
		{"protocol-header-shape", get("/", "Accept", "text/html;q=0.9;charset=CP1026"), get("/", "Accept", "text/html;charset=utf-8, */*;q=0.8")},
		{"protocol-policy", get("/up", "Request-Range", "bytes=0-512"), get("/up", "Range", "bytes=0-512")},
	})
}

func TestSessionFixationBoundaries(t *testing.T) {
	runBoundaries(t, []boundary{
		{"session-fixation-param", get("/login?_flask_session=eyJ4IjoxfQ", "Referer", "https://evil.example/"),
			get("/login?_flask_session=eyJ4IjoxfQ", "Referer", "https://api.example.com/start")},
		{"session-fixation-param", get("/login?cakephp=abc123"), get("/login?cakephp_version=4")},
	})
}

func TestSQLiFamilyBoundaries(t *testing.T) {
	runBoundaries(t, []boundary{
		{"sqli-chained-condition", get("/p?pay=AND+2771%3D1709%29"), get("/p?q=rock+and+roll+forever")},
		{"sqli-chained-condition", get("/p?pay=%7C%7C+arg+%3D%3D+%27"), post("/x", "application/xml", "<order><note>door & ring</note></order>")},
		{"sqli-stacked-statement", get("/p?v=1%3BSET+%40OLD_SQL_MODE"), get("/p?v=set+the+table%3B+update+me+later")},
		{"sqli-stacked-statement", get("/p?v=declare+%40b"), get("/p?v=I+declare+victory")},
		{"sqli-mssql-oracle-procedure", get("/p?v=xp_dirtree"), get("/p?v=xp_points")},
		{"sqli-comment-evasion", get("/p?t=DR/**/OP+sampletable"), post("/c", jsonCT, `{"code":"int x = 1; /* the count */ return x;"}`)},
		{"sqli-json-operator", get("/p?id=OR+%27%5B1%2C2%5D%27+%3F+%271%27"), get("/p?q=is+%27this%27+the+one%3F")},
		{"sqli-quote-terminator", get("/p?email=admin%40juice-sh.op%27%3B"), get("/p?email=admin%40juice-sh.op")},
		{"sqli-magic-number", get("/p?n=4294967296"), get("/p?n=4294967290")},
		{"sqli-db-function", get("/p?v=x%27+or+name_const(1,1)"), get("/p?v=name+const")},
	})
}

func TestNodeSSRFRFITraversalBoundaries(t *testing.T) {
	runBoundaries(t, []boundary{
		{"nodejs-js-sink", get("/g?foo=console.info.call(this,1)"), get("/g?foo=the+console+is+on+the+info+desk")},
		{"nodejs-js-sink", get("/g?t=%7B%22get%22%3A%22%243%3Aconstructor%3Aconstructor%22%7D"), get("/g?t=constructor+of+the+house")},
		{"nodejs-dos-loop", get("/g?eval=while(!false)"), post("/c", jsonCT, `{"code":"while (i < n) { i++ }"}`)},
		{"nodejs-dos-loop", get("/g?eval=d2hpbGUodHJ1ZSk7Cg=="), get("/g?eval=aGVsbG8gd29ybGQ=")},
		{"ssrf-internal-hostname", get("/t?url=host.docker.internal/"), get("/t?db_host=localhost")},
		{"ssrf-internal-hostname", get("/t?url=localhost:8080/admin"), get("/t?q=localhost+testing+guide")},
		{"ssrf-internal-url", get("/t?http://2852039166/"), get("/t?http://www.example.com/")},
		{"rfi-ip-url", get("/t?src=http://66.240.183.75/crash.php"), get("/t?src=https://cdn.example.com/crash.php")},
		{"rfi-ip-url", get("/t?src=https://[2001:41d0:701:1100::29c8]/gecko.php"), get("/t?ts=12:30:45")},
		{"rfi-url-truncation", get("/t?x=http://evil.example/shell.txt?"), get("/t?x=https://www.example.com/search?q=1")},
		{"rfi-include-param", get("/c.php?mosConfig_absolute_path=https://foo.bar"), get("/c.php?mosConfig_absolute_path=/var/www")},
		{"lfi-agent-config", get("/.cursor/mcp.json"), get("/api/v1/cursor/next")},
		{"lfi-agent-config", get("/wp-content/debug.log"), get("/api/v1/debug/logs")},
		{"traversal-single", get("/g?a=..;.%5C.;%5C."), get("/g?a=wait...;ok")},
	})
}

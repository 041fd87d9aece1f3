package detect

import (
	"encoding/base64"
	"net/url"
	"testing"

	"github.com/apiwarden/apiwarden/apimodel/call"
)

// Boundaries of the 941 (XSS), 933 (PHP) and 934 (Node.js) gap rules:
// the shortest value each must block and the closest benign value it
// must leave alone (prose about the topic, code-like API values).

// qv is a GET with one query parameter holding v.
func qv(v string) *call.Request { return get("/api/items?q=" + url.QueryEscape(v)) }

// fv is a form POST with one field holding v.
func fv(v string) *call.Request { return post("/api/items", formCT, "note="+url.QueryEscape(v)) }

// jv is a JSON POST with one string field holding v.
func jv(v string) *call.Request {
	b, _ := jsonString(v)
	return post("/api/items", jsonCT, `{"note":`+b+`}`)
}

func jsonString(v string) (string, error) {
	out := []byte{'"'}
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '"', '\\':
			out = append(out, '\\', c)
		case '\n':
			out = append(out, '\\', 'n')
		default:
			out = append(out, c)
		}
	}
	return string(append(out, '"')), nil
}

// blockedBy reports whether rule fired at the block threshold (85).
func blockedBy(fs []Finding, rule string) bool {
	for _, f := range fs {
		if f.RuleID == rule && f.Confidence >= 85 {
			return true
		}
	}
	return false
}

func runBlockBoundaries(t *testing.T, cases []boundary) {
	t.Helper()
	d := newDetector(t, Config{})
	for _, c := range cases {
		if fs := d.Inspect(c.hit, "svc"); !blockedBy(fs, c.rule) {
			t.Errorf("%s: must block %s %s?%s h=%v body=%q, got %+v", c.rule, c.hit.Method, c.hit.Path, c.hit.RawQuery, c.hit.Headers, c.hit.Body, fs)
		}
		if fs := d.Inspect(c.miss, "svc"); fired(fs, c.rule) {
			t.Errorf("%s: must not fire on %s %s?%s h=%v body=%q, got %+v", c.rule, c.miss.Method, c.miss.Path, c.miss.RawQuery, c.miss.Headers, c.miss.Body, fs)
		}
	}
}

func TestXSSGapBoundaries(t *testing.T) {
	runBlockBoundaries(t, []boundary{
		// 941120: handler after a comma, digit or '=', blanks before '='.
		{"xss-event-attribute-glued", qv("a,onfocus=go()"), qv("a,online=yes")},
		{"xss-event-attribute-glued", qv("0onload=.x"), qv("10onload==x")},
		{"xss-event-attribute-spaced", qv("x onclick (=go()"), qv("x onclick is an attribute")},
		{"xss-event-attribute-start", qv("onerror=go"), qv("onboarding=done")},
		{"xss-event-attribute-start", fv("onmouseover = go()"), fv("onmouseover is the event name")},
		// 941360: JSFuck's shortest forms.
		{"xss-js-encoding", qv("!![]"), qv("done! [ ] next")},
		{"xss-js-encoding", qv("![]+[]"), qv("[] + []")},
		// 941160: elements rich text never carries.
		{"xss-active-element-rare", qv("<marquee>"), qv("a < marquee b")},
		{"xss-active-element-rare", jv("<x:script>go()</x:script>"), jv("<p>x: script ready</p>")},
		{"xss-active-element-rare", fv("<set attributeName=href to=x>"), fv("<set> of tools")},
		{"xss-active-element-rare", qv("<form action=//e.example>"), qv("<formal> letter")},
		// 941180: DOM vocabulary.
		{"xss-dom-vocabulary", qv("el.innerHTML"), qv("the inner HTML of a page")},
		{"xss-dom-vocabulary", qv("x.parentNode.removeChild(x)"), qv("parent node of the tree")},
		{"xss-dom-vocabulary", qv("<![CDATA[x]]>"), qv("CDATA sections in XML")},
		{"xss-html-comment-in-query", qv("<!--"), jv("<p>hi</p><!-- wp:paragraph -->")},
		// 941130/941170: CSS import, also escaped.
		{"xss-css-import", qv("@import 'x.css'"), qv("we import CSV files @ noon")},
		{"xss-css-import", qv(`@\69mport url(x)`), qv("@imports are slow")},
		// 941220: vbscript: with blanks inside the name.
		{"xss-script-url-split", qv("vbs\tcript:msgbox(1)"), qv("vb script: a language")},
		// 941370: globals indexed by a string that is used.
		{"xss-global-bracket", qv("top ['al'+'ert'](1)"), qv("Check this ['draft'] folder")},
		{"xss-global-bracket", qv("(self)['x']()"), qv("(self) [citation needed]")},
		{"xss-global-comment-index", qv("top/*x*/['a']"), qv("top /* most */ of the list")},
		// 941390: more calls.
		{"xss-js-call-more", qv("setTimeout(go,1)"), qv("set timeout (seconds)")},
		{"xss-js-call-more", qv("fetch('//e.example')"), qv("fetch (daily) the reports")},
		{"xss-js-call-more", qv("import(x)"), qv("import (csv) wizard")},
		// 941400: call without parentheses.
		{"xss-call-without-parentheses", qv("[1].map(alert.call)`x`"), qv("[1,2].map(f) then .call the api with `x`")},
		// 941130: attributes.
		{"xss-attribute-injection", qv(`x" xmlns:x="urn:x`), qv("xmlns is an XML attribute")},
		{"xss-attribute-injection", qv(`"pattern='a'`), qv("pattern = a repeated design")},
		// 941100/941110 in headers the value scan skips.
		{"xss-skipped-header", get("/", "Authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.x0onload=.x"), get("/", "Authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl")},
		{"xss-skipped-header", get("/", "Accept", "text/html,<script>go()</script>"), get("/", "Accept", "application/json, text/plain;q=0.9")},
		// 941130/941170: data URIs that run.
		{"xss-data-uri-active", get("/", "User-Agent", "data:text/html;base64,PGI+"), get("/", "User-Agent", "Mozilla/5.0 (data: none)")},
		{"xss-data-uri-active", qv("data:image/svg+xml,<svg>"), qv("data:image/png;base64,iVBORw0KGgo=")},
		// 941160: markup with attributes in a URL or cookie.
		{"xss-tag-in-url", qv("<img src=x>"), fv(`<img src="https://cdn.example.com/a.png">`)},
		{"xss-tag-in-url", get("/", "Cookie", "c=<audio src=x>"), qv("a<b and c=d")},
		// 941100: NUL escape inside a tag name.
		{"xss-escaped-nul-tag", qv(`<scr\0ipt>go()</scr\0ipt>`), qv(`C:\0data <scratch>`)},
	})
}

func TestPHPGapBoundaries(t *testing.T) {
	runBlockBoundaries(t, []boundary{
		// 933100: a bare open tag, <?xml: processing forms.
		{"php-open-tag", qv("<?"), qv("what? <3")},
		{"php-open-tag", qv("<?xml:namespace prefix=t>"), qv(`<?xml version="1.0"?><a/>`)},
		// 933200: bzip2:// and plain ssh2://.
		{"php-wrapper", qv("bzip2://x"), qv("bzip2 archive")},
		// 933130: the remaining predefined variables.
		{"php-superglobal", qv("$argv"), qv("argv of the process")},
		{"php-superglobal", qv("$http_response_header"), qv("http response header")},
		// 933120: directives only PHP has.
		{"php-ini-directive-known", qv("cgi.force_redirect=0"), qv("cgi.force_redirect is documented")},
		{"php-ini-directive-known", jv("apc.enabled=1"), jv("https://shop.example/s?engine=google&precision=3")},
		{"php-ini-directive-known", fv("error_reporting = 0"), fv("error_reporting == 0")},
		// 933135: complex variables.
		{"php-complex-variable", qv("${x}"), qv("Hello ${first_name}, welcome")},
		{"php-complex-variable", qv("${ system('id') }"), qv("costs $ {see table}")},
		// 933160: more function calls.
		{"php-function-call-more", qv("imagegif($i)"), qv("imagegif is a function")},
		{"php-function-call-more", qv("stat('/etc')"), qv("stat (optional)")},
		{"php-function-call-more", qv("prev($a)"), qv("prev (page 2)")},
		// 933150: built-in names.
		{"php-builtin-name", qv("json_decode($x)"), qv("Use json_decode() to parse the payload")},
		{"php-builtin-name", qv("getcwd()"), qv("getcwd returns the directory (see docs)")},
		// 933210: callables that are not names.
		{"php-call-chain", qv("[0]('x');"), qv("f(x) = (x+1)(x-1);")},
		{"php-call-chain", qv("(  [  system  ][  0  ])  {0}  (  ls  );"), qv("The total is (price)(qty); see invoice")},
		{"php-call-chain", qv("(system)('id');"), qv("(a) (b) (c);")},
	})
}

func TestNodeGapBoundaries(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	runBlockBoundaries(t, []boundary{
		// 934100 after base64Decode (and jsDecode inside).
		{"nodejs-base64-payload", qv(b64("process.env")), qv(b64("process improvement plan"))},
		{"nodejs-base64-payload", get("/", "Cookie", "c="+b64(`\u0072equire("child_process")`)), get("/", "Cookie", "c="+b64("required fields"))},
		{"nodejs-base64-payload", qv(base64.RawStdEncoding.EncodeToString([]byte("eval('1')"))), qv(base64.RawStdEncoding.EncodeToString([]byte("evaluation report")))},
		// 934100 after removeWhitespace.
		{"nodejs-spaced-code", qv("p r o c e s s . e n v"), qv("I am a b c student")},
		// 934100 members and indexes.
		{"nodejs-global-member", qv("process.chmod('x')"), qv("file-process chmod docs")},
		{"nodejs-global-member", qv("process.global"), qv("process global settings")},
		{"nodejs-global-member", qv("require.cache"), qv("require cache warmup")},
		{"nodejs-global-member", qv("env['PATH']"), qv("env: production")},
		{"nodejs-global-member", qv("global[x]"), qv("global [region] settings")},
		// 934100 eval and fromCharCode.
		{"nodejs-eval-call", qv("eval (x.y)"), qv("eval (evaluation) results")},
		{"nodejs-eval-call", qv("String.fromCharCode(65)"), qv("string from char code")},
		// 934160 loops.
		{"nodejs-dos-loop-object", qv("while(new Date()){}"), qv("while (new customers) grow")},
		{"nodejs-dos-loop-object", qv("while(true)x++"), qv("while (true) it is late")},
	})
}

// Parameter and cookie names are inspected like values (CRS matches its
// 941/933/934 rules on ARGS_NAMES and cookie names too).
func TestGapRulesSeeNames(t *testing.T) {
	name := func(n string) *call.Request { return get("/api/items?" + url.QueryEscape(n) + "=1") }
	runBlockBoundaries(t, []boundary{
		{"php-open-tag", name("<?php echo 1;"), name("filter[status]")},
		{"php-wrapper", name("php://input"), name("php_version")},
		{"xss-script-url-obfuscated", name("javascript:go()"), name("java_script")},
		{"xss-js-encoding", get("/", "Cookie", "!![]=1"), get("/", "Cookie", "ids[]=1")},
		{"nodejs-base64-payload", name(base64.StdEncoding.EncodeToString([]byte("process.env"))), name("cHJvY2Vzcw")},
	})
}

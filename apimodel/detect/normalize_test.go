package detect

import "testing"

func TestDecode(t *testing.T) {
	cases := []struct {
		name, in string
		plus     bool
		want     string
	}{
		{"single", "%3Cscript%3E", false, "<script>"},
		{"double", "%253Cscript%253E", false, "<script>"},
		{"triple", "%25253C", false, "<"},
		{"plus in form", "a+b", true, "a b"},
		{"plus kept in path", "a+b", false, "a+b"},
		{"iis unicode", "%u003cscript%u003e", false, "<script>"},
		{"html named", "&lt;svg&gt;", false, "<svg>"},
		{"html numeric", "&#60;&#x3c;", false, "<<"},
		{"json escape", `\u003cscript\u003e`, false, "<script>"},
		{"hex escape", `\x3cimg`, false, "<img"},
		{"nul removed", "..%00/etc", false, "../etc"},
		{"overlong dot slash", "%c0%ae%c0%ae%c0%af", false, "../"},
		{"malformed percent kept", "100%zz", false, "100%zz"},
		{"trailing percent", "50%", false, "50%"},
		{"literal crlf pair", `a\r\nb`, false, "a\r\nb"},
		{"windows path kept", `C:\new\x`, false, `C:\new\x`},
		{"clean value unchanged", "hello world", false, "hello world"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := decode(c.in, c.plus, DefaultMaxDecodePasses); got != c.want {
				t.Errorf("decode(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}

func TestDecodePassesAreBounded(t *testing.T) {
	// Four layers of encoding with three passes leaves one layer.
	if got := decode("%2525253C", false, 3); got != "%3C" {
		t.Errorf("got %q, want %%3C after 3 passes", got)
	}
}

func TestCanonical(t *testing.T) {
	cases := []struct{ in, want string }{
		{"UNION/**/SELECT", "union select"},
		{"union \t\t select", "union select"},
		{"a\r\n\r\nb", "a\nb"},
		{"/*!50000UNION*/ /*!SELECT*/", " union select "},
		{"/api/*/x", "/api/*/x"},
		{"ＳＥＬＥＣＴ", "select"},
		{"..∕etc∕passwd", "../etc/passwd"},
		{"ÉCOLE", "école"},
	}
	for _, c := range cases {
		if got := string(canonical(nil, c.in)); got != c.want {
			t.Errorf("canonical(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestParseLooseIPv4(t *testing.T) {
	cases := map[string]string{
		"127.0.0.1":  "127.0.0.1",
		"2130706433": "127.0.0.1",
		"0x7f000001": "127.0.0.1",
		"0177.0.0.1": "127.0.0.1",
		"127.1":      "127.0.0.1",
		"10.1":       "10.0.0.1",
		"0x0a.0.0.1": "10.0.0.1",
		"0":          "0.0.0.0",
	}
	for in, want := range cases {
		a, ok := parseLooseIPv4(in)
		if !ok || a.String() != want {
			t.Errorf("parseLooseIPv4(%q) = %v %v, want %s", in, a, ok, want)
		}
	}
	for _, bad := range []string{"example.com", "1.2.3.4.5", "256.1.1.1", "0x", "", "1..2"} {
		if a, ok := parseLooseIPv4(bad); ok {
			t.Errorf("parseLooseIPv4(%q) = %v, want failure", bad, a)
		}
	}
}

func TestCheckSSRFHosts(t *testing.T) {
	bad := []string{"http://localhost/", "http://127.0.0.1:8080/", "http://[::1]/", "http://[::ffff:127.0.0.1]/",
		"http://0.0.0.0/", "http://10.0.0.1/", "http://192.168.1.1/", "http://172.16.0.1/", "http://169.254.169.254/",
		"http://metadata.google.internal/", "http://a@127.0.0.1/", "http://127.0.0.1.nip.io/", "http://foo.localhost/",
		"//127.0.0.1/x", "gopher://x/", "http://100.64.0.1/", "http:\\\\127.0.0.1\\x"}
	for _, u := range bad {
		if !checkSSRF(u, nil) {
			t.Errorf("checkSSRF(%q) = false", u)
		}
	}
	good := []string{"https://example.com/x", "http://8.8.8.8/", "https://api.example.org:8443/v1", "see //comment here",
		"https://1.1.1.1/", "mailto:a@example.com", "https://example.com/redirect?to=/home"}
	for _, u := range good {
		if checkSSRF(u, nil) {
			t.Errorf("checkSSRF(%q) = true", u)
		}
	}
}

func TestCheckJNDIObfuscations(t *testing.T) {
	for _, v := range []string{
		"${jndi:ldap://x/a}", "${${lower:j}ndi:ldap://x}", "${${::-j}${::-n}${::-d}${::-i}:rmi://x}",
		"${${env:X:-j}ndi:dns://x}", "${j${k8s:k5:-ND}i:ldap://x}", "${${date:'j'}ndi:x}", "${jnd${upper:ı}:ldap://x}",
		"${j${env:NOPE}ndi:ldap://x}",
	} {
		if !checkJNDI(v, canonical(nil, v)) {
			t.Errorf("checkJNDI(%q) = false", v)
		}
	}
	for _, v := range []string{"${name}", "price ${amount}", "${env:HOME}", "jndi is a Java API"} {
		if checkJNDI(v, canonical(nil, v)) {
			t.Errorf("checkJNDI(%q) = true", v)
		}
	}
}

func TestSQLGate(t *testing.T) {
	for _, v := range []string{"1' or '1'='1", "admin'--", "x' or 1=1", "O'Brien'; drop", "1 or 1=1", "(1)or(1)=(1)", "a\"b", "1'and'1", "D'Arcy O'Brien"} {
		if !sqlGate(v) {
			t.Errorf("sqlGate(%q) = false", v)
		}
	}
	for _, v := range []string{"O'Brien", "it's fine", "hello world", "select the best option from the menu", "9-5"} {
		if sqlGate(v) {
			t.Errorf("sqlGate(%q) = true", v)
		}
	}
}

package detect

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/apiwarden/apiwarden/apimodel/asciifold"
	"github.com/apiwarden/apiwarden/apimodel/call"
)

func TestCleanCacheBound(t *testing.T) {
	c := newCleanCache(8)
	key := func(i int) []byte { return cleanKey(nil, mustBit(KindHeader), false, fmt.Sprintf("v%d", i)) }
	for i := range 100 {
		c.add(key(i))
		if n := c.len(); n > 8 {
			t.Fatalf("after %d adds: %d values kept, bound 8", i+1, n)
		}
	}
	if !c.has(key(99)) || c.has(key(0)) {
		t.Fatal("the last value added must be kept, the first one dropped")
	}
	// A value used since the last turn survives the next one.
	c = newCleanCache(8)
	c.add(key(1000))
	for i := range 4 {
		c.add(key(i))
	}
	if !c.has(key(1000)) {
		t.Fatal("value lost before its generation was dropped")
	}
	for i := 4; i < 8; i++ {
		c.add(key(i))
	}
	if !c.has(key(1000)) {
		t.Fatal("a value hit in the old generation must move to the current one")
	}
	if c.len() > 8 {
		t.Fatalf("%d values kept, bound 8", c.len())
	}
}

func TestCleanKeySeparatesKindAndPlus(t *testing.T) {
	a := string(cleanKey(nil, mustBit(KindQuery), true, "a+b"))
	b := string(cleanKey(nil, mustBit(KindQuery), false, "a+b"))
	c := string(cleanKey(nil, mustBit(KindHeader), true, "a+b"))
	if a == b || a == c || b == c {
		t.Fatal("kind and plus flag must be part of the key")
	}
}

// TestCleanCacheSameFindings: a value seen clean is skipped the next
// time; a value one byte away from it, the same value in another kind of
// part, and a value that had a finding are inspected as before.
func TestCleanCacheSameFindings(t *testing.T) {
	on, err := New(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	off, err := New(Config{CleanCacheSize: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ua := "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
	reqs := []*call.Request{
		{Method: "GET", Path: "/a", RawQuery: "q=name,email", Headers: call.Headers{{Name: "User-Agent", Value: ua}}},
		{Method: "GET", Path: "/a", RawQuery: "q=name,email", Headers: call.Headers{{Name: "User-Agent", Value: ua}}},
		// One special character more: an attack.
		{Method: "GET", Path: "/a", RawQuery: "q=name,email'--", Headers: call.Headers{{Name: "User-Agent", Value: ua + "; sleep 5"}}},
		// The clean query value in another part.
		{Method: "GET", Path: "/a", Headers: call.Headers{{Name: "X-Q", Value: "name,email"}}},
		{Method: "GET", Path: "/a", RawQuery: "q=1+or+1%3D1", Headers: call.Headers{{Name: "User-Agent", Value: ua}}},
		{Method: "GET", Path: "/a", RawQuery: "q=1+or+1%3D1", Headers: call.Headers{{Name: "User-Agent", Value: ua}}},
		// A value with a finding is never remembered.
		{Method: "GET", Path: "/a", RawQuery: "q=%3Cscript%3Ealert(1)%3C/script%3E"},
		{Method: "GET", Path: "/a", RawQuery: "q=%3Cscript%3Ealert(1)%3C/script%3E"},
		{Method: "POST", Path: "/a", Headers: call.Headers{{Name: "Content-Type", Value: "application/json"}},
			Body: []byte(`{"a":"name,email","b":"x; cat /etc/passwd","c":"name,email"}`)},
	}
	for i, r := range reqs {
		got, want := on.Inspect(r, "svc"), off.Inspect(r, "svc")
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("request %d: findings with the cache\n%+v\nwithout\n%+v", i, got, want)
		}
		if (i == 2 || i == 4 || i == 6 || i == 8) && len(got) == 0 {
			t.Fatalf("request %d: attack not found", i)
		}
	}
	if on.Stats().CleanHits == 0 {
		t.Fatal("the repeated clean values must come from the cache")
	}
	so, sn := off.Stats(), on.Stats()
	sn.CleanHits = 0
	if so != sn {
		t.Fatalf("stats differ:\n%+v with the cache\n%+v without", sn, so)
	}
}

// TestCleanCacheOverrideMask: requests under a path override get a
// merged mask of their own, and no cache.
func TestCleanCacheOverrideMask(t *testing.T) {
	d, err := New(Config{PathOverrides: []PathOverride{{PathPrefix: "/cms/", Disable: []string{"class:xss"}}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &call.Request{Method: "GET", Path: "/cms/page", RawQuery: "q=a,b"}
	d.Inspect(r, "svc")
	d.Inspect(r, "svc")
	if h := d.Stats().CleanHits; h != 0 {
		t.Fatalf("%d clean hits under a path override", h)
	}
	r.Path = "/api/page"
	d.Inspect(r, "svc")
	d.Inspect(r, "svc")
	if h := d.Stats().CleanHits; h == 0 {
		t.Fatal("no clean hit outside the override")
	}
}

// TestHeaderNameIsFastPath: the ASCII fast path of headerNameIs answers
// as strings.EqualFold(strings.TrimSpace(name), want) does.
func TestHeaderNameIsFastPath(t *testing.T) {
	wants := []string{"accept", "accept-encoding", "content-length", "content-type", "cookie", "transfer-encoding", "user-agent"}
	names := []string{"", " ", "Cookie", "COOKIE", "cookie ", " cookie", "\tcookie", "cookie\x7f", "coo\u212Aie", "Coo\u212Aie ",
		"\u00a0cookie", "cookie\u00a0", "cookies", "cooki", "Content-Length", "content-length\r", "Content_Length",
		"Transfer-Encoding", "transfer-encoding\x00", "User-Agent", "user-agent", "USER-AGENT", "Accept", "Accept-Encoding",
		"accept-encodinG", "x", "\x80cookie", "cookie\xff", "Content-Type", "content-type;"}
	for _, w := range wants {
		for _, n := range names {
			if got, want := headerNameIs(n, w), strings.EqualFold(strings.TrimSpace(n), w); got != want {
				t.Errorf("headerNameIs(%q, %q) = %v, want %v", n, w, got, want)
			}
		}
	}
}

// TestIsSensitiveNameOnePass: the one-pass isSensitiveName answers as
// asciifold.Contains of each sensitive word does, and the per-letter
// lists hold exactly sensitiveWords.
func TestIsSensitiveNameOnePass(t *testing.T) {
	ref := func(n string) bool {
		for _, w := range sensitiveWords {
			if asciifold.Contains(n, w) {
				return true
			}
		}
		return false
	}
	var all []string
	for _, l := range [][]string{sensitiveP, sensitiveS, sensitiveT, sensitiveA, sensitiveC} {
		for _, w := range l {
			if strings.IndexByte("pstac", w[0]) < 0 || w != strings.ToLower(w) {
				t.Fatalf("word %q", w)
			}
			all = append(all, w)
		}
	}
	if len(all) != len(sensitiveWords) {
		t.Fatalf("%d words by letter, %d sensitive words", len(all), len(sensitiveWords))
	}
	for _, w := range sensitiveWords {
		found := false
		for _, x := range all {
			found = found || x == w
		}
		if !found {
			t.Fatalf("word %q missing from the per-letter lists", w)
		}
	}
	names := []string{"", "p", "pas", "pass", "PASSWORD", "x-pAsS", "pwd", "PwD1", "secre", "SECRET_KEY", "sess", "SessionId",
		"tok", "X-Token", "apikey", "API_KEY", "api-key", "auth", "Authorization", "credentia", "Credentials", "user", "email",
		"\x50ASS", "p\x00ass", "spass", "ppwd", "aapi_key", "ccredential", "ÀUTH", "a\u212Auth", "t0ken", "tokenx"}
	for _, w := range sensitiveWords {
		for cut := 0; cut <= len(w); cut++ {
			names = append(names, w[:cut], "x"+strings.ToUpper(w[:cut])+"y", w[:cut]+"-"+w[cut:])
		}
	}
	for _, n := range names {
		if got, want := isSensitiveName(n), ref(n); got != want {
			t.Errorf("isSensitiveName(%q) = %v, want %v", n, got, want)
		}
	}
}

// TestLookupHeader: one lookup gives what lowerHeaderName, skipHeaders
// and knownHeaders give.
func TestLookupHeader(t *testing.T) {
	names := []string{"Host", "host", "HOST", " Host", "User-Agent", "user-agent", "USER-AGENT", "Cookie", "Accept",
		"X-Forwarded-For", "Proxy-Authorization", "proxy-authorization", "Sec-Fetch-User", "Upgrade-Insecure-Requests",
		"X-Amz-Date", "x-amz-content-sha256", "X-Custom", "x-custom ", "Traceparent", "TE", "Te", "DNT", "Priority", ""}
	for n := range commonHeaderLower {
		names = append(names, n)
	}
	for _, n := range names {
		l := lowerHeaderName(n)
		want := headerInfo{lower: l, skip: skipHeaders[l], known: knownHeaders[l]}
		if got := lookupHeader(n); got != want {
			t.Errorf("lookupHeader(%q) = %+v, want %+v", n, got, want)
		}
	}
}

package detect

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// insideParensRef is the backward scan parenTracker replaced, run once
// per ':' of a document.
func insideParensRef(s string) bool {
	open := 0
	for i := len(s) - 1; i >= 0; i-- {
		switch s[i] {
		case ')':
			open--
		case '(':
			open++
			if open > 0 {
				return true
			}
		case '{', '}':
			return false
		}
	}
	return false
}

// TestParenTrackerMatchesBackwardScan: at every position of random
// documents over the bytes that matter, the tracker answers what the
// backward scan did.
func TestParenTrackerMatchesBackwardScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "(){}:a\" \\"
	for n := 0; n < 3000; n++ {
		b := make([]byte, rng.IntN(40))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		var pt parenTracker
		pt.reset()
		for i := 0; i <= len(b); i++ {
			if got, want := pt.inside(), insideParensRef(string(b[:i])); got != want {
				t.Fatalf("%q at %d: tracker %v, backward scan %v", b, i, got, want)
			}
			if i < len(b) {
				pt.add(b[i])
			}
		}
	}
}

// TestGraphQLAbuseAliasesInStringsAndArgs: arguments and string contents
// are not aliases; the limit is exact.
func TestGraphQLAbuseAliasesInStringsAndArgs(t *testing.T) {
	doc := func(n int) string {
		var b strings.Builder
		b.WriteString(`{ q(filter: "a:b (c: d", x: 1) { `)
		for i := range n {
			b.WriteString("a")
			b.WriteString(strings.Repeat("x", i%3))
			b.WriteString(": f(arg: 1) ")
		}
		b.WriteString("} }")
		return b.String()
	}
	if _, _, ok := graphQLAbuse([]string{doc(graphQLMaxAliases)}, 0); ok {
		t.Errorf("%d aliases flagged", graphQLMaxAliases)
	}
	if _, ev, ok := graphQLAbuse([]string{doc(graphQLMaxAliases + 1)}, 0); !ok || ev != "51 aliases" {
		t.Errorf("%d aliases: %q %v", graphQLMaxAliases+1, ev, ok)
	}
}

// TestScannerUAMatchesToLower: the allocation-free path answers what
// strings.ToLower + Contains did, for ASCII, non-ASCII (the Kelvin sign
// lowers to 'k') and values past the stack buffer.
func TestScannerUAMatchesToLower(t *testing.T) {
	ref := func(ua string) bool {
		l := strings.ToLower(ua)
		for _, n := range scannerNames {
			if strings.Contains(l, n) {
				return true
			}
		}
		return false
	}
	for _, ua := range []string{"", "Mozilla/5.0 (X11; Linux x86_64)", "sqlmap/1.7", "Mozilla/5.0 NIKTO", "ni\u212Ato/2.1",
		"Mozilla/5.0 (compatible; Nuclei - Open-source project)", strings.Repeat("a", 300) + "Nmap", strings.Repeat("a", 255) + "zap/",
		"curl/8.0", "Ünïcode agent gobuster", "python-requests/2.31"} {
		if got, want := scannerUA(ua), ref(ua); got != want {
			t.Errorf("%q: %v, want %v", ua, got, want)
		}
	}
	for _, n := range scannerNames {
		for _, ua := range []string{n, strings.ToUpper(n), "Mozilla/5.0 (" + strings.ToUpper(n[:1]) + n[1:] + ")", n[:len(n)-1]} {
			if got, want := scannerUA(ua), ref(ua); got != want {
				t.Errorf("%q: %v, want %v", ua, got, want)
			}
		}
	}
}

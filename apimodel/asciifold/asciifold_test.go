package asciifold

import "testing"

func TestContains(t *testing.T) {
	for _, tc := range []struct {
		s, w string
		want bool
	}{
		{"X-Api-Key", "api", true},
		{"PASSWORD", "pass", true},
		{"pas", "pass", false},
		{"", "a", false},
		{"anything", "", true},
		{"\u212aelvin", "kelvin", false}, // only ASCII folds (U+212A KELVIN SIGN)
	} {
		if got := Contains(tc.s, tc.w); got != tc.want {
			t.Errorf("Contains(%q, %q) = %v", tc.s, tc.w, got)
		}
	}
}

// refContains is Contains before its first-byte fast path.
func refContains(s, w string) bool {
	for i := 0; i+len(w) <= len(s); i++ {
		j := 0
		for ; j < len(w); j++ {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != w[j] {
				break
			}
		}
		if j == len(w) {
			return true
		}
	}
	return false
}

// TestContainsAgrees: every byte against letter and non-letter words
// (the OR trick must not match '@', '[', '`', '{' or bytes >= 0x80 for a
// letter, nor fold a non-letter), at every position.
func TestContainsAgrees(t *testing.T) {
	words := []string{"a", "z", "key", "token", "password", "%2e", "&dollar", `\x24`, "@", "`", "{", "[", "_x", "%u"}
	for c := 0; c < 256; c++ {
		for _, w := range words {
			for _, s := range []string{string(rune(0)) + string([]byte{byte(c)}), string([]byte{byte(c)}) + w[1:],
				"xx" + string([]byte{byte(c)}) + w[1:] + "yy", w[:len(w)-1] + string([]byte{byte(c)}), "X-" + w, "X-KEY", "PaSsWoRd"} {
				if got, want := Contains(s, w), refContains(s, w); got != want {
					t.Fatalf("Contains(%q, %q) = %v, want %v", s, w, got, want)
				}
			}
		}
	}
}

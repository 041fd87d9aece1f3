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

package behavior

import (
	"strings"
	"testing"
)

// TestHasAuthWordEveryWord: hasAuthWord's first-letter switch covers
// every word of authWords, in either case, anywhere in the path.
func TestHasAuthWordEveryWord(t *testing.T) {
	for _, w := range authWords {
		for _, p := range []string{w, "/api/" + strings.ToUpper(w), "/x" + w + "y", "/" + w[:len(w)-1]} {
			if got, want := hasAuthWord(p), refAuthPath(p); got != want {
				t.Errorf("hasAuthWord(%q) = %v, want %v", p, got, want)
			}
		}
	}
}

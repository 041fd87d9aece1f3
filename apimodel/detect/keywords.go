package detect

import (
	"fmt"

	"github.com/coregx/ahocorasick"
)

// keywords is the multi-pattern prefilter of the rules: every keyword of
// every rule, found in one pass over a value, overlapping matches
// included. It wraps github.com/coregx/ahocorasick, whose fully resolved
// DFA walks a value with one table lookup per byte and allocates nothing
// unless something matches (issue #8: the iterator of the library used
// before allocated per value and per match, two thirds of the call
// pipeline's allocations).
type keywords struct {
	a *ahocorasick.Automaton // nil: no keywords
}

func buildKeywords(patterns []string) (keywords, error) {
	if len(patterns) == 0 {
		return keywords{}, nil
	}
	a, err := ahocorasick.NewBuilder().AddStrings(patterns).Build()
	if err != nil {
		return keywords{}, fmt.Errorf("keyword automaton: %w", err)
	}
	return keywords{a: a}, nil
}

// count is the number of keywords.
func (k keywords) count() int {
	if k.a == nil {
		return 0
	}
	return k.a.PatternCount()
}

// find returns every occurrence of every keyword in h, by end position.
func (k keywords) find(h []byte) []ahocorasick.Match {
	if k.a == nil {
		return nil
	}
	return k.a.FindAllOverlapping(h)
}

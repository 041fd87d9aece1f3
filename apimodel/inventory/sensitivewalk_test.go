package inventory

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestSensitiveWalkMatchesInfer: SensitiveInJSON's schema-free walk finds
// what schema inference finds, bounds included (nodes, depth, keys).
func TestSensitiveWalkMatchesInfer(t *testing.T) {
	leaves := []string{`"a@example.com"`, `"10.1.2.3"`, `"4111111111111111"`, `"+1 415 555 0100"`, `4111111111111111`,
		`1.5`, `true`, `null`, `"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln"`, `"plain"`, `"123-45-6789"`, `12`}
	keys := []string{"email", "password", "ssn", "id", "name", "token", "card", "phone", "ip", "x"}
	rng := rand.New(rand.NewPCG(3, 4))
	var gen func(depth int) string
	gen = func(depth int) string {
		switch r := rng.IntN(10); {
		case depth > 18 || r < 5:
			return leaves[rng.IntN(len(leaves))]
		case r < 7:
			n := rng.IntN(6)
			wide := rng.IntN(20) == 0
			if wide {
				n = 300 // past maxProps: leaves only, so the document stays small
			}
			var b strings.Builder
			b.WriteByte('{')
			for i := range n {
				if i > 0 {
					b.WriteByte(',')
				}
				v := leaves[rng.IntN(len(leaves))]
				if !wide {
					v = gen(depth + 1)
				}
				fmt.Fprintf(&b, "%q:%s", fmt.Sprintf("%s%d", keys[rng.IntN(len(keys))], i), v)
			}
			b.WriteByte('}')
			return b.String()
		default:
			n := rng.IntN(5)
			parts := make([]string, n)
			for i := range parts {
				parts[i] = gen(depth + 1)
			}
			return "[" + strings.Join(parts, ",") + "]"
		}
	}
	for n := 0; n < 2000; n++ {
		body := []byte(gen(0))
		for _, maxNodes := range []int{3, 17, 4096} {
			got := SensitiveInJSON(body, maxNodes)
			var want []string
			if r, ok := inferJSON(body, inferLimits{maxDepth: 16, maxProps: 256, maxNodes: maxNodes}); ok {
				want = r.sensitive.names()
			}
			if !slices.Equal(got, want) {
				t.Fatalf("%s (maxNodes %d): walk %v, infer %v", body, maxNodes, got, want)
			}
		}
	}
	if got := SensitiveInJSON([]byte(`{"a":`), 4096); got != nil {
		t.Errorf("invalid body: %v", got)
	}
}

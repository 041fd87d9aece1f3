package detect

import (
	"testing"

	"github.com/apiwarden/apiwarden/apimodel/call"
)

type countingStage struct{ calls int }

func (c *countingStage) Inspect(*call.Request, string) []Finding {
	c.calls++
	return []Finding{{RuleID: "stage", Class: "java", Confidence: 88}}
}

// The second stage sees a request only when a suspect keyword (or a
// finding under the skip threshold) marks it; plain API values stay on
// the fast path.
func TestSecondStageOnlyOnSuspicion(t *testing.T) {
	st := &countingStage{}
	d := newDetector(t, Config{SecondStage: st})
	for _, q := range []string{"/api/v1/orders?status=shipped&page=2", "/api/v1/users/42?fields=id,name"} {
		if fs := d.Inspect(get(q), "svc"); len(fs) != 0 || st.calls != 0 {
			t.Fatalf("%s: findings %v, stage calls %d", q, fs, st.calls)
		}
	}
	// Shortest suspect values: a Java class name, a PHP function, a Node.js timer name as a key.
	for i, q := range []string{"/x?c=java.lang.Math", "/x?f=preg_match", "/x?settimeout=1"} {
		fs := d.Inspect(get(q), "svc")
		if st.calls != i+1 || len(fs) == 0 || fs[len(fs)-1].RuleID != "stage" {
			t.Fatalf("%s: stage calls %d, findings %v", q, st.calls, fs)
		}
	}
	if got := d.Stats().SecondStage; got != 3 {
		t.Fatalf("Stats.SecondStage = %d, want 3", got)
	}
}

package detectbench

import (
	"os"
	"testing"
)

// TestExploreBenignHits (AW_EXPLORE=1) lists the rules that fire on the
// benign requests of both corpus files: a development aid.
func TestExploreBenignHits(t *testing.T) {
	if os.Getenv("AW_EXPLORE") == "" {
		t.Skip("AW_EXPLORE not set")
	}
	eng := loadEngines(t)
	// The large API corpus: its tuning slice only (HeldBack ids never shown).
	if es, err := LoadCorpus(apiTrafficPath); err == nil {
		n, hits := 0, 0
		for i := range es {
			if HeldBack(es[i].ID) {
				continue
			}
			n++
			hit := false
			for _, fd := range eng.det.Inspect(es[i].Request(), "bench") {
				if fd.Confidence >= blockConfidence {
					hit = true
					t.Logf("%s %s %s conf=%d part=%s excerpt=%q", apiTrafficPath, es[i].ID, fd.RuleID, fd.Confidence, fd.Part, fd.Excerpt)
				}
			}
			hits += b2i(hit)
		}
		t.Logf("%s tuning slice: %d/%d flagged", apiTrafficPath, hits, n)
	}
	for _, f := range []string{corpusPath, holdoutPath} {
		es, err := LoadCorpus(f)
		if err != nil {
			t.Fatal(err)
		}
		for i := range es {
			if es[i].Class != "benign" {
				continue
			}
			for _, fd := range eng.det.Inspect(es[i].Request(), "bench") {
				if fd.Confidence >= blockConfidence {
					t.Logf("%s %s %s conf=%d part=%s %+v", f, es[i].ID, fd.RuleID, fd.Confidence, fd.Part, fd)
				}
			}
		}
	}
}

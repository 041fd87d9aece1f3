package detectbench

import (
	"io"
	"log/slog"
	"reflect"
	"testing"

	"github.com/apiwarden/apiwarden/apimodel/call"
	"github.com/apiwarden/apiwarden/apimodel/detect"
)

// TestCleanCacheSameFindings: the detector's clean-value cache changes no
// finding. Every request of the corpora (and of the CRS set when it is
// there) is inspected by a detector without the cache and, twice, by one
// with it (cold, then with every clean value of all requests known), in
// corpus order; the findings must be equal each time, and the warm pass
// must have used the cache.
func TestCleanCacheSameFindings(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	off, err := detect.New(detect.Config{CleanCacheSize: -1}, log)
	if err != nil {
		t.Fatal(err)
	}
	// Big enough to keep every clean value of the corpora: the warm pass
	// then answers from the cache wherever it can.
	on, err := detect.New(detect.Config{CleanCacheSize: 1 << 20}, log)
	if err != nil {
		t.Fatal(err)
	}
	var reqs []*call.Request
	for _, f := range []string{corpusPath, holdoutPath, apiTrafficPath} {
		es, err := LoadCorpus(f)
		if err != nil {
			t.Fatal(err)
		}
		for i := range es {
			reqs = append(reqs, es[i].Request())
		}
	}
	if set, err := LoadCRSSet(CRSSetPath); err == nil {
		for i := range set {
			reqs = append(reqs, set[i].Request())
		}
	}
	want := make([][]detect.Finding, len(reqs))
	for i, r := range reqs {
		want[i] = off.Inspect(r, "bench")
	}
	for pass := range 2 {
		for i, r := range reqs {
			if got := on.Inspect(r, "bench"); !reflect.DeepEqual(got, want[i]) {
				t.Fatalf("pass %d request %d %s %s: findings with the cache\n%+v\nwithout\n%+v", pass, i, r.Method, r.Path, got, want[i])
			}
		}
	}
	so, sn := off.Stats(), on.Stats()
	if sn.CleanHits == 0 || so.CleanHits != 0 {
		t.Fatalf("clean hits: %d with the cache, %d without", sn.CleanHits, so.CleanHits)
	}
	t.Logf("%d requests, %d clean hits", len(reqs), sn.CleanHits)
}

package capture

import (
	"regexp"
	"strconv"
	"testing"

	"github.com/cilium/ebpf"
)

// maxVerifierInsns keeps verification cheap: the limit is 1M processed
// instructions and agent start-up pays for every one. Splitting the copy
// loop into a global function took it from ~600k to ~5k.
const maxVerifierInsns = 50_000

func TestVerifierComplexity(t *testing.T) {
	requireRoot(t)
	re := regexp.MustCompile(`processed (\d+) insns`)
	for _, cm := range []int{0, 1, 256, MaxChunkData} {
		spec, err := newSpec(Config{ChunkMax: cm, Ports: []uint16{80, 443}})
		if err != nil {
			t.Fatal(err)
		}
		coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{
			Programs: ebpf.ProgramOptions{LogLevel: ebpf.LogLevelStats},
		})
		if err != nil {
			t.Fatalf("load: %v", loadError(err))
		}
		for name, p := range coll.Programs {
			m := re.FindStringSubmatch(p.VerifierLog)
			if m == nil {
				t.Fatalf("%s: no stats in verifier log %q", name, p.VerifierLog)
			}
			if n, _ := strconv.Atoi(m[1]); n > maxVerifierInsns {
				t.Errorf("chunk_max %d %s: verifier processed %d insns, budget %d", cm, name, n, maxVerifierInsns)
			}
		}
		coll.Close()
	}
}

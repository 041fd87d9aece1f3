package behavior

import (
	"math"
	"math/bits"

	"github.com/cespare/xxhash/v2"
)

// No HyperLogLog module is served by the module proxy this project builds
// from (github.com/axiomhq/hyperloglog is not in the served list), so this is
// a small one: precision 8 (256 one-byte registers, ~6.5% standard error),
// exact up to 128 distinct values (the common case, a client reading a few
// objects, and exact at the default enumeration thresholds), registers only
// past that. Hashes are 32-bit: the sparse list costs at most 512 bytes
// and the registers 256 per tracked (client, endpoint), which is what
// bounds memory.
const (
	hllP      = 8
	hllM      = 1 << hllP
	hllSparse = 128
)

type hll struct {
	sparse []uint32 // exact distinct hashes until hllSparse
	reg    []uint8  // nil while sparse
}

func (h *hll) add(x uint32) {
	if h.reg == nil {
		for _, v := range h.sparse {
			if v == x {
				return
			}
		}
		if len(h.sparse) < hllSparse {
			h.sparse = append(h.sparse, x)
			return
		}
		h.reg = make([]uint8, hllM)
		for _, v := range h.sparse {
			h.addReg(v)
		}
		h.sparse = nil
	}
	h.addReg(x)
}

func (h *hll) addReg(x uint32) {
	i := x >> (32 - hllP)
	w := x<<hllP | 1<<(hllP-1) // guard bit bounds the rank
	r := uint8(bits.LeadingZeros32(w)) + 1
	if r > h.reg[i] {
		h.reg[i] = r
	}
}

// count estimates the distinct values added.
func (h *hll) count() uint64 {
	if h.reg == nil {
		return uint64(len(h.sparse))
	}
	var sum float64
	zeros := 0
	for _, r := range h.reg {
		sum += 1 / float64(uint64(1)<<r)
		if r == 0 {
			zeros++
		}
	}
	m := float64(hllM)
	est := 0.7213 / (1 + 1.079/m) * m * m / sum
	if est <= 2.5*m && zeros > 0 { // small range: linear counting
		est = m * math.Log(m/float64(zeros))
	}
	return uint64(est + 0.5)
}

func (h *hll) reset() {
	h.sparse = h.sparse[:0]
	h.reg = nil
}

func hashID(s string) uint32 { return uint32(xxhash.Sum64String(s)) }

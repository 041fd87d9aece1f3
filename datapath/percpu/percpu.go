// Package percpu reads the per-CPU counter arrays that apiwarden's kernel
// programs keep (one slot per counter, one value per CPU, so the hot path
// needs no atomics) and sums them for userspace.
package percpu

import (
	"fmt"

	"github.com/cilium/ebpf"
)

// Sum returns, for each index in names, the sum over CPUs of that slot of
// the BPF_MAP_TYPE_PERCPU_ARRAY m, under its name.
func Sum[K ~uint32](m *ebpf.Map, names map[K]string) (map[string]uint64, error) {
	out := make(map[string]uint64, len(names))
	var per []uint64
	for idx, name := range names {
		if err := m.Lookup(uint32(idx), &per); err != nil {
			return nil, fmt.Errorf("read counter %s: %w", name, err)
		}
		var sum uint64
		for _, v := range per {
			sum += v
		}
		out[name] = sum
	}
	return out, nil
}

// SumList is Sum for counters named by position: names[i] is slot i.
func SumList(m *ebpf.Map, names []string) (map[string]uint64, error) {
	byIndex := make(map[uint32]string, len(names))
	for i, n := range names {
		byIndex[uint32(i)] = n
	}
	return Sum(m, byIndex)
}

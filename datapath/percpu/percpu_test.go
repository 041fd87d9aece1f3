package percpu

import (
	"os"
	"testing"

	"github.com/cilium/ebpf"
)

func TestSumAddsEveryCPU(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a map")
	}
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	n, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	vals := make([]uint64, n)
	for i := range vals {
		vals[i] = uint64(i + 1)
	}
	if err := m.Put(uint32(1), vals); err != nil {
		t.Fatal(err)
	}
	got, err := Sum(m, map[uint32]string{0: "zero", 1: "one"})
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64(n * (n + 1) / 2); got["one"] != want || got["zero"] != 0 {
		t.Fatalf("got %v, want one=%d zero=0", got, want)
	}
	if _, err := Sum(m, map[uint32]string{5: "out of range"}); err == nil {
		t.Fatal("index past the array accepted")
	}
}

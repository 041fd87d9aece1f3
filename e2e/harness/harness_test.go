package harness

import (
	"encoding/json"
	"os"
	"testing"
)

func TestU64AcceptsStringsAndNumbers(t *testing.T) {
	var v struct {
		A, B, C U64
	}
	if err := json.Unmarshal([]byte(`{"A":"18446744073709551615","B":7,"C":null}`), &v); err != nil {
		t.Fatal(err)
	}
	if v.A != 18446744073709551615 || v.B != 7 || v.C != 0 {
		t.Fatalf("got %+v", v)
	}
	if err := json.Unmarshal([]byte(`{"A":"x"}`), &v); err == nil {
		t.Fatal("bad number accepted")
	}
}

func TestCPUAccounting(t *testing.T) {
	if _, err := CPUTime(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	if _, err := SoftirqTime(); err != nil {
		t.Fatal(err)
	}
}

func TestDiffProgStats(t *testing.T) {
	before := map[int]ProgStat{1: {ID: 1, Name: "a", RunCnt: 10, RunTimeNs: 1000}}
	after := map[int]ProgStat{1: {ID: 1, Name: "a", RunCnt: 30, RunTimeNs: 3000}, 2: {ID: 2, Name: "b", RunCnt: 4, RunTimeNs: 400}}
	d := DiffProgStats(before, after)
	if len(d) != 2 {
		t.Fatalf("got %+v", d)
	}
	for _, p := range d {
		if p.NsPerRun() != 100 {
			t.Errorf("%s: %v ns/run", p.Name, p.NsPerRun())
		}
	}
}

func TestTopologyNamesFitIFNAMSIZ(t *testing.T) {
	// IFNAMSIZ is 16 including the NUL; "p" is appended for the peer.
	if n := len(Prefix + "-s" + "abcdef" + "p"); n > 15 {
		t.Fatalf("veth peer name is %d chars", n)
	}
}

func TestProgStatsOfProcess(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := ProgStats(0); err != nil {
		t.Skipf("bpftool: %v", err)
	}
	// This process holds no BPF programs.
	got, err := ProgStats(os.Getpid())
	if err != nil || len(got) != 0 {
		t.Fatalf("ProgStats(self) = %v, %v", got, err)
	}
}

package agent

import (
	"os"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestBPFProgramCollector loads a trivial program (root only) and finds it
// among the process's fds by name.
func TestBPFProgramCollector(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to load a BPF program")
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "aw_stats_test", Type: ebpf.SocketFilter, License: "MIT",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
	})
	if err != nil {
		t.Skipf("load: %v", err)
	}
	defer prog.Close()
	c := newBPFProgramCollector()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	want := `
# HELP apiwarden_bpf_programs BPF programs the agent holds, by program name.
# TYPE apiwarden_bpf_programs gauge
apiwarden_bpf_programs{program="aw_stats_test"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "apiwarden_bpf_programs"); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(reg, "apiwarden_bpf_program_runs_total", "apiwarden_bpf_program_run_seconds_total"); err != nil || n != 2 {
		t.Fatalf("%d series, %v", n, err)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}
}

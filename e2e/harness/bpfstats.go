package harness

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

const bpfStatsPath = "/proc/sys/kernel/bpf_stats_enabled"

// EnableBPFStats turns on kernel.bpf_stats_enabled and returns a function
// restoring the old value. Run time accounting costs a little per run, so it
// is on in both A and B windows of a benchmark to keep them comparable.
func EnableBPFStats() (restore func(), err error) {
	old, err := os.ReadFile(bpfStatsPath)
	if err != nil {
		return func() {}, fmt.Errorf("read bpf_stats_enabled: %w", err)
	}
	if err := os.WriteFile(bpfStatsPath, []byte("1"), 0o644); err != nil {
		return func() {}, fmt.Errorf("enable bpf stats: %w", err)
	}
	return func() { _ = os.WriteFile(bpfStatsPath, []byte(strings.TrimSpace(string(old))), 0o644) }, nil
}

// ProgStat is the kernel's run accounting of one BPF program.
type ProgStat struct {
	ID        int    `json:"id"`
	Type      string `json:"type"`
	Name      string `json:"name"`
	RunTimeNs uint64 `json:"run_time_ns"`
	RunCnt    uint64 `json:"run_cnt"`
	Pids      []struct {
		Pid  int    `json:"pid"`
		Comm string `json:"comm"`
	} `json:"pids"`
}

// progIDsOf returns the ids of BPF programs pid holds through program or
// link file descriptors, from /proc/PID/fdinfo (bpftool may lack pid support).
func progIDsOf(pid int) map[int]bool {
	ids := map[int]bool{}
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fdinfo", pid))
	for _, e := range ents {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, e.Name()))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "prog_id:"); ok {
				if id, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
					ids[id] = true
				}
			}
		}
	}
	return ids
}

// ProgStats returns the programs held by pid (all programs when pid is 0),
// keyed by program id.
func ProgStats(pid int) (map[int]ProgStat, error) {
	var held map[int]bool
	if pid != 0 {
		held = progIDsOf(pid)
	}
	out, err := exec.Command("bpftool", "-j", "prog", "show").Output()
	if err != nil {
		return nil, fmt.Errorf("bpftool prog show: %w", err)
	}
	var all []ProgStat
	if err := json.Unmarshal(out, &all); err != nil {
		return nil, fmt.Errorf("decode bpftool: %w", err)
	}
	res := map[int]ProgStat{}
	for _, p := range all {
		if pid == 0 {
			res[p.ID] = p
			continue
		}
		if held[p.ID] {
			res[p.ID] = p
			continue
		}
		for _, o := range p.Pids {
			if o.Pid == pid {
				res[p.ID] = p
				break
			}
		}
	}
	return res, nil
}

// ProgDelta is one program's runs and time between two snapshots.
type ProgDelta struct {
	Name   string
	Type   string
	Runs   uint64
	TimeNs uint64
}

// NsPerRun is the mean in-kernel cost of one run.
func (d ProgDelta) NsPerRun() float64 {
	if d.Runs == 0 {
		return 0
	}
	return float64(d.TimeNs) / float64(d.Runs)
}

// DiffProgStats subtracts two snapshots; programs missing in before count from zero.
func DiffProgStats(before, after map[int]ProgStat) []ProgDelta {
	var out []ProgDelta
	for id, a := range after {
		b := before[id]
		if a.RunCnt < b.RunCnt {
			continue
		}
		out = append(out, ProgDelta{Name: a.Name, Type: a.Type, Runs: a.RunCnt - b.RunCnt, TimeNs: a.RunTimeNs - b.RunTimeNs})
	}
	return out
}

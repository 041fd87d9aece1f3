package agent

import (
	"os"
	"strconv"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

// bpfProgramCollector reports the run count and run time of every BPF
// program the agent holds, summed by program name. It finds them through
// /proc/self/fd (anon_inode:bpf-prog), so it needs no handle from the
// datapath packages and no CAP_SYS_ADMIN (the info comes from our own fds).
// The kernel counts only while BPF statistics are enabled (bpfStats in the
// config, or sysctl kernel.bpf_stats_enabled=1); otherwise the values stay 0.
type bpfProgramCollector struct {
	runs, runtime, loaded *prometheus.Desc
	procFD                string
	mu                    sync.Mutex
}

func newBPFProgramCollector() *bpfProgramCollector {
	return &bpfProgramCollector{
		runs: prometheus.NewDesc("apiwarden_bpf_program_runs_total",
			"Times the agent's BPF programs ran, by program name (counted while BPF stats are enabled).", []string{"program"}, nil),
		runtime: prometheus.NewDesc("apiwarden_bpf_program_run_seconds_total",
			"Time spent in the agent's BPF programs, by program name (counted while BPF stats are enabled).", []string{"program"}, nil),
		loaded: prometheus.NewDesc("apiwarden_bpf_programs",
			"BPF programs the agent holds, by program name.", []string{"program"}, nil),
		procFD: "/proc/self/fd",
	}
}

func (c *bpfProgramCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.runs
	ch <- c.runtime
	ch <- c.loaded
}

type progStats struct {
	n, runs uint64
	ns      int64
}

// programs sums the stats of the BPF programs among our fds by name.
func (c *bpfProgramCollector) programs() map[string]*progStats {
	out := map[string]*progStats{}
	ents, err := os.ReadDir(c.procFD)
	if err != nil {
		return out
	}
	for _, e := range ents {
		link, err := os.Readlink(c.procFD + "/" + e.Name())
		if err != nil || link != "anon_inode:bpf-prog" {
			continue
		}
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		// NewProgramFromFD owns the fd it gets: hand it a duplicate.
		dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			continue
		}
		prog, err := ebpf.NewProgramFromFD(dup)
		if err != nil {
			continue
		}
		name := "unknown"
		if info, err := prog.Info(); err == nil && info.Name != "" {
			name = info.Name
		}
		st, err := prog.Stats()
		prog.Close()
		if err != nil {
			continue
		}
		s := out[name]
		if s == nil {
			s = &progStats{}
			out[name] = s
		}
		s.n++
		s.runs += st.RunCount
		s.ns += st.Runtime.Nanoseconds()
	}
	return out
}

func (c *bpfProgramCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, s := range c.programs() {
		ch <- prometheus.MustNewConstMetric(c.loaded, prometheus.GaugeValue, float64(s.n), name)
		ch <- prometheus.MustNewConstMetric(c.runs, prometheus.CounterValue, float64(s.runs), name)
		ch <- prometheus.MustNewConstMetric(c.runtime, prometheus.CounterValue, float64(s.ns)/1e9, name)
	}
}

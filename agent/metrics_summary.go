package agent

import "github.com/prometheus/client_golang/prometheus"

// The pipeline counters (apiwarden_pipeline_*) are one series per kernel
// or userspace counter; dashboards and alerts want the two questions
// "what was blocked, and where" and "what was lost, and where" as one
// metric each. summaryCollector derives them from the same counters at
// scrape time.

// blockSources maps each enforcer label to the counters of what it
// refused: the source guard (XDP on NICs; its tcx twin on veth and
// loopback shares the counters and counts here too), the TC verdict
// program (kernel rule drops and packets of flagged flows), sockets
// destroyed (bpf_sock_destroy cuts) and segments the hold point dropped.
var blockSources = map[string][]string{
	"xdp":  {"guard_dropped_blocklist", "guard_dropped_ratelimit"},
	"tc":   {"enforce_requests_dropped", "enforce_flagged_packets_dropped_ingress", "enforce_flagged_packets_dropped_egress"},
	"sock": {"reset_sockets_destroyed"},
	"hold": {"hold_blocked"},
}

// lostSources maps each stage label to the counters of records it lost:
// kernel ring buffers full (capture, tls, procmon, enforce), process
// events the TLS binder could not queue, security events not stored, and
// OTLP log records dropped on a full queue.
var lostSources = map[string][]string{
	"capture":    {"capture_chunks_lost"},
	"tls":        {"tls_chunks_lost"},
	"tls_attach": {"tls_attach_queue_dropped"},
	"procmon":    {"procmon_lost"},
	"enforce":    {"enforce_events_lost"},
	"events":     {"events_dropped"},
	"otlp":       {"events_otlp_dropped"},
}

type summaryCollector struct {
	read         func() map[string]uint64
	blocks, lost *prometheus.Desc
}

func newSummaryCollector(read func() map[string]uint64) *summaryCollector {
	return &summaryCollector{
		read: read,
		blocks: prometheus.NewDesc("apiwarden_blocks_total",
			"Packets, requests and connections refused, by enforcer: xdp (source guard; its tcx variant on veth/lo included), "+
				"tc (kernel rules and flagged flows), sock (sockets destroyed), hold (held segments dropped).",
			[]string{"enforcer"}, nil),
		lost: prometheus.NewDesc("apiwarden_events_lost_total",
			"Records lost before the agent could handle them, by pipeline stage.",
			[]string{"stage"}, nil),
	}
}

func (c *summaryCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.blocks
	ch <- c.lost
}

func (c *summaryCollector) Collect(ch chan<- prometheus.Metric) {
	vals := c.read()
	emit := func(d *prometheus.Desc, sources map[string][]string) {
		for label, keys := range sources {
			var n uint64
			for _, k := range keys {
				n += vals[k]
			}
			// Every label value is always present (0 when the stage is not
			// loaded), so rate() and alerts have a series from the start.
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(n), label)
		}
	}
	emit(c.blocks, blockSources)
	emit(c.lost, lostSources)
}

// summaryCounters is what summaryCollector reads: the pipeline counters
// plus the hold point's.
func (a *Agent) summaryCounters() map[string]uint64 {
	out := a.counters()
	a.holdStatus(out)
	return out
}

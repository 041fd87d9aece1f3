package agent

import (
	"maps"
	"slices"

	"github.com/apiwarden/apiwarden/apimodel/assemble"
	"github.com/apiwarden/apiwarden/apimodel/attrib"
	"github.com/apiwarden/apiwarden/apimodel/detect"
	"github.com/apiwarden/apiwarden/apimodel/inventory"
	dpcapture "github.com/apiwarden/apiwarden/datapath/capture"
	"github.com/apiwarden/apiwarden/datapath/enforce"
	"github.com/apiwarden/apiwarden/datapath/guard"
	"github.com/apiwarden/apiwarden/datapath/iface"
	"github.com/apiwarden/apiwarden/datapath/procmon"
	"github.com/apiwarden/apiwarden/datapath/reset"
	dptls "github.com/apiwarden/apiwarden/datapath/tls"
)

// pipelineCounterNames is every key counters can report when every stage
// runs, built the same way from the same types (zero values) and name
// lists, except the TLS skip reasons, which are open-ended. Dashboards and
// alerts are checked against it.
func pipelineCounterNames() []string {
	out := map[string]uint64{}
	for prefix, names := range map[string][]string{
		"capture": dpcapture.CounterNames(),
		"enforce": enforce.CounterNames(),
		"guard":   guard.CounterNames(),
		"reset":   reset.CounterNames(),
		"tls":     dptls.CounterNames(),
	} {
		for _, n := range names {
			out[prefix+"_"+n] = 0
		}
	}
	flattenStats("procmon", procmon.Stats{}, out)
	flattenStats("assemble", assemble.Stats{}, out)
	flattenStats("inventory", inventory.Stats{}, out)
	flattenStats("attrib", attrib.Stats{}, out)
	flattenStats("iface", iface.Stats{}, out)
	flattenStats("events", EventStats{}, out)
	flattenStats("detect", detect.Stats{}, out)
	flattenStats("shapes", detect.ProfilerStats{}, out)
	for _, n := range []string{"agent_recovered_panics", "agent_learn_queued", "agent_learn_inline", "agent_learn_waiting", "tls_probed_files", "tls_attach_points",
		"tls_attach_points_slow", "tls_attach_queue_dropped"} {
		out[n] = 0
	}
	return slices.Sorted(maps.Keys(out))
}

// pipelineMetricName is the Prometheus name counterSource gives a key.
func pipelineMetricName(stage, key string) string {
	if gaugeNames[key] {
		return "apiwarden_" + stage + "_" + key
	}
	return "apiwarden_" + stage + "_" + key + "_total"
}

package agent

import (
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/apiwarden/apiwarden/apimodel/behavior"
	"github.com/apiwarden/apiwarden/apimodel/inventory"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

func TestOTelServerHistogram(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newRequestMetrics(reg, 100)
	m.observe("shop", "/users/{id}", "GET", 200, 0.003)
	m.observe("shop", "/users/{id}", "GET", 200, 0.2)
	want := `
# HELP http_server_request_duration_seconds Duration of HTTP server requests seen on the wire (OpenTelemetry http.server.request.duration; from the last request byte to the first response byte).
# TYPE http_server_request_duration_seconds histogram
http_server_request_duration_seconds_bucket{http_request_method="GET",http_response_status_code="200",http_route="/users/{id}",service="shop",le="0.005"} 1
http_server_request_duration_seconds_bucket{http_request_method="GET",http_response_status_code="200",http_route="/users/{id}",service="shop",le="0.01"} 1
http_server_request_duration_seconds_bucket{http_request_method="GET",http_response_status_code="200",http_route="/users/{id}",service="shop",le="0.025"} 1
http_server_request_duration_seconds_bucket{http_request_method="GET",http_response_status_code="200",http_route="/users/{id}",service="shop",le="0.05"} 1
http_server_request_duration_seconds_bucket{http_request_method="GET",http_response_status_code="200",http_route="/users/{id}",service="shop",le="0.075"} 1
http_server_request_duration_seconds_bucket{http_request_method="GET",http_response_status_code="200",http_route="/users/{id}",service="shop",le="0.1"} 1
http_server_request_duration_seconds_bucket{http_request_method="GET",http_response_status_code="200",http_route="/users/{id}",service="shop",le="0.25"} 2
http_server_request_duration_seconds_bucket{http_request_method="GET",http_response_status_code="200",http_route="/users/{id}",service="shop",le="0.5"} 2
http_server_request_duration_seconds_bucket{http_request_method="GET",http_response_status_code="200",http_route="/users/{id}",service="shop",le="0.75"} 2
http_server_request_duration_seconds_bucket{http_request_method="GET",http_response_status_code="200",http_route="/users/{id}",service="shop",le="1"} 2
http_server_request_duration_seconds_bucket{http_request_method="GET",http_response_status_code="200",http_route="/users/{id}",service="shop",le="2.5"} 2
http_server_request_duration_seconds_bucket{http_request_method="GET",http_response_status_code="200",http_route="/users/{id}",service="shop",le="5"} 2
http_server_request_duration_seconds_bucket{http_request_method="GET",http_response_status_code="200",http_route="/users/{id}",service="shop",le="7.5"} 2
http_server_request_duration_seconds_bucket{http_request_method="GET",http_response_status_code="200",http_route="/users/{id}",service="shop",le="10"} 2
http_server_request_duration_seconds_bucket{http_request_method="GET",http_response_status_code="200",http_route="/users/{id}",service="shop",le="+Inf"} 2
http_server_request_duration_seconds_sum{http_request_method="GET",http_response_status_code="200",http_route="/users/{id}",service="shop"} 0.203
http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="200",http_route="/users/{id}",service="shop"} 2
`
	if err := testutil.CollectAndCompare(m.server, strings.NewReader(want), "http_server_request_duration_seconds"); err != nil {
		t.Fatal(err)
	}
	m.observe("shop", "/users/{id}", "BREW", 418, 0.02)
	m.observe("shop", "/orders", "POST", 0, -1) // no response: counted, not timed
	if n := testutil.CollectAndCount(m.server); n != 2 {
		t.Fatalf("%d histogram series, want 2 (GET 200, _OTHER 418; the unanswered call is not timed)", n)
	}
	if _, err := m.server.GetMetricWithLabelValues("shop", "_OTHER", "/users/{id}", "418"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(m.requests); n != 3 {
		t.Fatalf("%d request series, want 3", n)
	}
}

func TestBuildInfo(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(buildInfo("1.2.3"))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) != 1 || mfs[0].GetName() != "apiwarden_build_info" {
		t.Fatalf("gathered %v", mfs)
	}
	m := mfs[0].GetMetric()[0]
	labels := map[string]string{}
	for _, l := range m.GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	if m.GetGauge().GetValue() != 1 || labels["version"] != "1.2.3" || labels["goversion"] != runtime.Version() || labels["revision"] == "" {
		t.Fatalf("build info %v = %v", labels, m.GetGauge().GetValue())
	}
}

// TestMetricsLint runs promlint (the library behind promtool check
// metrics) over everything the agent registers, with series in each vec.
func TestMetricsLint(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newRequestMetrics(reg, 100)
	reg.MustRegister(buildInfo("dev"))
	m.observe("shop", "/users/{id}", "GET", 200, 0.003)
	m.attack("sqli", "blocked")
	m.autoBlockFinding()
	m.autoBlockTrip("blocked")
	m.anomaly("abuse-credential-stuffing", "blocked")
	reg.MustRegister(newCounterSource("pipeline", "", func() map[string]uint64 {
		return map[string]uint64{"capture_chunks_lost": 1, "assemble_flows_active": 2, "behavior_findings_brute_force": 3}
	}))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

// BenchmarkRequestMetricsObserve is the per-call cost on the hot path: one
// map lookup for the cached series, a counter and two histograms.
func BenchmarkRequestMetricsObserve(b *testing.B) {
	m := newRequestMetrics(prometheus.NewRegistry(), 1000)
	routes := []string{"/users/{id}", "/orders", "/items/{id}", "/health"}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		m.observe("shop", routes[i%len(routes)], "GET", 200, 0.002)
	}
}

// TestBehaviorAnomalyMetrics: one series per detector from the start,
// counted by action; an unknown rule id cannot add a detector label.
func TestBehaviorAnomalyMetrics(t *testing.T) {
	m := newRequestMetrics(prometheus.NewRegistry(), 100)
	if n := testutil.CollectAndCount(m.anomalies); n != len(behavior.Rules()) {
		t.Fatalf("%d series before any finding, want one per detector (%d)", n, len(behavior.Rules()))
	}
	m.anomaly("abuse-enumeration", "blocked")
	m.anomaly("abuse-enumeration", "blocked")
	m.anomaly("abuse-sensitive-exposure", "monitor")
	m.anomaly("abuse-made-up", "monitor")
	want := `
# HELP apiwarden_behavior_anomalies_total Findings of the behavioural model (class abuse), by detector and action taken (blocked, monitor, block-failed).
# TYPE apiwarden_behavior_anomalies_total counter
apiwarden_behavior_anomalies_total{action="blocked",detector="enumeration"} 2
apiwarden_behavior_anomalies_total{action="monitor",detector="brute_force"} 0
apiwarden_behavior_anomalies_total{action="monitor",detector="client_rate"} 0
apiwarden_behavior_anomalies_total{action="monitor",detector="credential_stuffing"} 0
apiwarden_behavior_anomalies_total{action="monitor",detector="endpoint_rate"} 0
apiwarden_behavior_anomalies_total{action="monitor",detector="enumeration"} 0
apiwarden_behavior_anomalies_total{action="monitor",detector="mass_assignment"} 0
apiwarden_behavior_anomalies_total{action="monitor",detector="other"} 1
apiwarden_behavior_anomalies_total{action="monitor",detector="response_size"} 0
apiwarden_behavior_anomalies_total{action="monitor",detector="sensitive_exposure"} 1
apiwarden_behavior_anomalies_total{action="monitor",detector="shadow_endpoint"} 0
apiwarden_behavior_anomalies_total{action="monitor",detector="type_drift"} 0
apiwarden_behavior_anomalies_total{action="monitor",detector="unknown_field"} 0
apiwarden_behavior_anomalies_total{action="monitor",detector="zombie_endpoint"} 0
`
	if err := testutil.CollectAndCompare(m.anomalies, strings.NewReader(want), "apiwarden_behavior_anomalies_total"); err != nil {
		t.Fatal(err)
	}
}

// TestSummaryMetrics checks apiwarden_blocks_total{enforcer} and
// apiwarden_events_lost_total{stage}: every source counter is summed into
// its label, every label is present, and each name is in the pipeline
// counter list (a renamed counter would silently read 0).
func TestSummaryMetrics(t *testing.T) {
	vals := map[string]uint64{
		"guard_dropped_blocklist": 3, "guard_dropped_ratelimit": 1,
		"enforce_requests_dropped": 2, "enforce_flagged_packets_dropped_ingress": 5,
		"reset_sockets_destroyed": 4, "hold_blocked": 6,
		"capture_chunks_lost": 7, "enforce_events_lost": 1, "events_otlp_dropped": 2,
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(newSummaryCollector(func() map[string]uint64 { return vals }))
	want := `
# HELP apiwarden_blocks_total Packets, requests and connections refused, by enforcer: xdp (source guard; its tcx variant on veth/lo included), tc (kernel rules and flagged flows), sock (sockets destroyed), hold (held segments dropped).
# TYPE apiwarden_blocks_total counter
apiwarden_blocks_total{enforcer="hold"} 6
apiwarden_blocks_total{enforcer="sock"} 4
apiwarden_blocks_total{enforcer="tc"} 7
apiwarden_blocks_total{enforcer="xdp"} 4
# HELP apiwarden_events_lost_total Records lost before the agent could handle them, by pipeline stage.
# TYPE apiwarden_events_lost_total counter
apiwarden_events_lost_total{stage="capture"} 7
apiwarden_events_lost_total{stage="enforce"} 1
apiwarden_events_lost_total{stage="events"} 0
apiwarden_events_lost_total{stage="otlp"} 2
apiwarden_events_lost_total{stage="procmon"} 0
apiwarden_events_lost_total{stage="tls"} 0
apiwarden_events_lost_total{stage="tls_attach"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Fatalf("lint %v %v", problems, err)
	}
	known := map[string]bool{}
	for _, n := range pipelineCounterNames() {
		known[n] = true
	}
	for _, srcs := range []map[string][]string{blockSources, lostSources} {
		for label, keys := range srcs {
			for _, k := range keys {
				// hold_* come from holdPoint.counters, not the pipeline.
				if !known[k] && k != "hold_blocked" {
					t.Errorf("%s: counter %q is not a pipeline counter", label, k)
				}
			}
		}
	}
}

// BenchmarkRequestMetricsObserveSlot is the same through the inventory
// endpoints' slots, the pipeline's path: no lock, no map.
func BenchmarkRequestMetricsObserveSlot(b *testing.B) {
	m := newRequestMetrics(prometheus.NewRegistry(), 1000)
	routes := []string{"/users/{id}", "/orders", "/items/{id}", "/health"}
	slots := make([]inventory.Slot, len(routes))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		j := i % len(routes)
		m.observeSlot(&slots[j], "shop", routes[j], "GET", 200, 0.002)
	}
}

// TestObserveSlotSameSeries: calls through a slot count in the series the
// map path gives, whatever the slot held (another template after
// re-templating, another service, many status codes), and the overflow
// series still counts every call it takes.
func TestObserveSlotSameSeries(t *testing.T) {
	viaSlot := newRequestMetrics(prometheus.NewRegistry(), 40)
	viaMap := newRequestMetrics(prometheus.NewRegistry(), 40)
	var slot inventory.Slot
	for i := 0; i < 200; i++ {
		tmpl, svc, status := "/users/{id}", "shop", 200+i%20
		if i >= 100 {
			tmpl = "/users/{id}/x" // the endpoint was re-templated
		}
		if i%7 == 0 {
			svc = "other"
		}
		lat := float64(i%9) / 100
		viaSlot.observeSlot(&slot, svc, tmpl, "GET", status, lat)
		viaMap.observe(svc, tmpl, "GET", status, lat)
	}
	for _, c := range []struct {
		name string
		a, b prometheus.Collector
	}{{"requests", viaSlot.requests, viaMap.requests}, {"latency", viaSlot.latency, viaMap.latency},
		{"server", viaSlot.server, viaMap.server}, {"dropped", viaSlot.dropped, viaMap.dropped}} {
		want, err := gatherText(c.b)
		if err != nil {
			t.Fatal(err)
		}
		got, err := gatherText(c.a)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s: the slot path and the map path differ", c.name)
		}
	}
	if testutil.ToFloat64(viaSlot.dropped) == 0 {
		t.Fatal("the bound was not reached: the overflow path is untested")
	}
}

var createdTime = regexp.MustCompile(`created_timestamp:\{[^}]*\}`)

// gatherText is a collector's metrics as text (protobuf text form),
// without the creation times, which differ between two registries.
func gatherText(c prometheus.Collector) (string, error) {
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		return "", err
	}
	mfs, err := reg.Gather()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, mf := range mfs {
		b.WriteString(mf.String())
		b.WriteByte('\n')
	}
	return createdTime.ReplaceAllString(b.String(), ""), nil
}

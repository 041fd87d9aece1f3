package agent

import (
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"

	"github.com/apiwarden/apiwarden/apimodel/behavior"
	"github.com/apiwarden/apiwarden/apimodel/inventory"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// overflowLabel replaces every label value once MaxMetricSeries label sets
// exist, so traffic can never grow the metric cardinality without bound.
const overflowLabel = "_other"

// requestMetrics counts calls by service, endpoint template, method and status
// class with a bounded number of series.
type requestMetrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	// server is the OpenTelemetry semantic-convention histogram
	// (http.server.request.duration, in Prometheus naming), so dashboards
	// built for OTel-instrumented servers work on what apiwarden sees.
	server  *prometheus.HistogramVec
	dropped prometheus.Counter
	attacks *prometheus.CounterVec
	// auto-blocking: cut-grade findings counted, and trips by action
	abFindings prometheus.Counter
	abTrips    *prometheus.CounterVec
	// anomalies: behavioural findings by detector and action
	anomalies *prometheus.CounterVec

	mu sync.Mutex
	// seen caches the counter of each label set: WithLabelValues hashes
	// four strings per call, a map of arrays is cheaper, and its size is
	// the series bound.
	seen  map[seriesKey]series
	limit int
}

// seriesKey is one label set: the exact status code, since the OTel
// histogram carries it (the counter keeps the class).
type seriesKey struct {
	service, endpoint, method string
	status                    int
}

// otelBuckets are the OTel semantic conventions' advised boundaries for
// http.server.request.duration.
var otelBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}

// otelMethods are the methods OTel keeps as they are; any other becomes
// _OTHER so a scanner sending random verbs cannot grow the series.
var otelMethods = map[string]bool{"GET": true, "HEAD": true, "POST": true, "PUT": true, "DELETE": true,
	"CONNECT": true, "OPTIONS": true, "TRACE": true, "PATCH": true}

func otelMethod(m string) string {
	if otelMethods[m] {
		return m
	}
	return "_OTHER"
}

func newRequestMetrics(reg prometheus.Registerer, limit int) *requestMetrics {
	m := &requestMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "apiwarden", Subsystem: "http", Name: "requests_total",
			Help: "HTTP calls seen, by service, endpoint template, method and status class.",
		}, []string{"service", "endpoint", "method", "status_class"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "apiwarden", Subsystem: "http", Name: "request_duration_seconds",
			Help:    "Time from the last request byte to the first response byte, by service.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}, []string{"service"}),
		server: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "http_server_request_duration_seconds",
			Help:    "Duration of HTTP server requests seen on the wire (OpenTelemetry http.server.request.duration; from the last request byte to the first response byte).",
			Buckets: otelBuckets,
		}, []string{"service", "http_request_method", "http_route", "http_response_status_code"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "apiwarden", Subsystem: "http", Name: "metric_series_overflow_total",
			Help: "Calls counted under the _other label because the series limit was reached.",
		}),
		attacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "apiwarden", Name: "attacks_detected_total",
			Help: "Findings of the detector and the kernel rules, by attack class and action taken.",
		}, []string{"class", "action"}),
		abFindings: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "apiwarden", Subsystem: "autoblock", Name: "findings_total",
			Help: "Cut-grade findings (high severity, confidence >= 85) counted toward automatic source blocking.",
		}),
		abTrips: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "apiwarden", Subsystem: "autoblock", Name: "sources_total",
			Help: "Sources that reached the auto-block threshold, by action (blocked, monitor, block-failed).",
		}, []string{"action"}),
		anomalies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "apiwarden", Subsystem: "behavior", Name: "anomalies_total",
			Help: "Findings of the behavioural model (class abuse), by detector and action taken (blocked, monitor, block-failed).",
		}, []string{"detector", "action"}),
		seen:  make(map[seriesKey]series),
		limit: limit,
	}
	// The auto-block actions are known: start them at 0 so dashboards
	// have series before the first trip.
	for _, action := range []string{"blocked", "monitor", "block-failed"} {
		m.abTrips.WithLabelValues(action)
	}
	// Every detector starts at 0 (monitor), so alerts on rate() see a
	// series before the first finding.
	for _, rule := range behavior.Rules() {
		m.anomalies.WithLabelValues(behavior.Detector(rule), "monitor")
	}
	reg.MustRegister(m.requests, m.latency, m.server, m.dropped, m.attacks, m.abFindings, m.abTrips, m.anomalies,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func statusClass(code int) string {
	if code < 100 || code > 599 {
		return "none"
	}
	return statusClasses[code/100]
}

var statusClasses = [6]string{"", "1xx", "2xx", "3xx", "4xx", "5xx"}

// series holds the resolved metrics of one label set, so the hot path
// does one map lookup instead of hashing label values per metric.
type series struct {
	requests prometheus.Counter
	latency  prometheus.Observer // nil for the overflow series
	server   prometheus.Observer // nil for the overflow series and for calls without a response
}

func (m *requestMetrics) observe(service, endpoint, method string, status int, latencySeconds float64) {
	m.observeSlot(nil, service, endpoint, method, status, latencySeconds)
}

// endpointSeries is what an inventory endpoint's slot holds: the series
// of its calls by status code, resolved once, so a call to a known
// endpoint with a status seen before touches neither m.mu nor m.seen
// (issue #8: the label lookup was most of the metrics' cost per call).
// It is replaced, never changed, once stored: readers need no lock.
type endpointSeries struct {
	service, endpoint, method string
	byStatus                  []statusSeries
}

type statusSeries struct {
	status int
	s      series
}

// maxSlotStatuses bounds the status codes one endpoint's slot remembers;
// calls with others take the map.
const maxSlotStatuses = 16

// observeSlot is observe with the slot of the inventory endpoint the call
// was counted under (nil: none, the map decides).
func (m *requestMetrics) observeSlot(slot *inventory.Slot, service, endpoint, method string, status int, latencySeconds float64) {
	var es *endpointSeries
	if slot != nil {
		es, _ = slot.Load().(*endpointSeries)
		// The labels are checked, not assumed: a re-templated endpoint
		// returns a new template, and one inventory endpoint (service and
		// port) may be called under another service label.
		if es != nil && (es.endpoint != endpoint || es.service != service || es.method != method) {
			es = nil
		}
		if es != nil {
			for i := range es.byStatus {
				if es.byStatus[i].status == status {
					m.record(es.byStatus[i].s, latencySeconds)
					return
				}
			}
		}
	}
	s, overflow := m.resolve(service, endpoint, method, status)
	if slot != nil && !overflow {
		// Copy on write; a concurrent store may win, which only costs a
		// later call the map again.
		n := &endpointSeries{service: service, endpoint: endpoint, method: method}
		if es != nil {
			if len(es.byStatus) < maxSlotStatuses {
				n.byStatus = append(append(make([]statusSeries, 0, len(es.byStatus)+1), es.byStatus...), statusSeries{status, s})
				slot.Store(n)
			}
		} else {
			n.byStatus = []statusSeries{{status, s}}
			slot.Store(n)
		}
	}
	m.record(s, latencySeconds)
}

// resolve returns the series of a label set from m.seen, creating them
// within the series bound; overflow reports the shared _other series,
// which is never cached elsewhere (each of its calls counts in dropped).
func (m *requestMetrics) resolve(service, endpoint, method string, status int) (s series, overflow bool) {
	key := seriesKey{service, endpoint, method, status}
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.seen[key]
	if ok {
		return s, false
	}
	class := statusClass(status)
	if len(m.seen) >= m.limit {
		m.dropped.Inc()
		return series{requests: m.requests.WithLabelValues(overflowLabel, overflowLabel, overflowLabel, class)}, true
	}
	s = series{requests: m.requests.WithLabelValues(service, endpoint, method, class), latency: m.latency.WithLabelValues(service)}
	if class != "none" {
		s.server = m.server.WithLabelValues(service, otelMethod(method), endpoint, strconv.Itoa(status))
	}
	m.seen[key] = s
	return s, false
}

func (m *requestMetrics) record(s series, latencySeconds float64) {
	s.requests.Inc()
	if latencySeconds >= 0 && s.latency != nil {
		s.latency.Observe(latencySeconds)
		if s.server != nil {
			s.server.Observe(latencySeconds)
		}
	}
}

// buildInfo is the apiwarden_build_info gauge (always 1), the usual way to
// join a version onto other series and to see a rollout in a dashboard.
func buildInfo(version string) prometheus.Collector {
	revision, goVersion := "unknown", runtime.Version()
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				revision = s.Value
			}
		}
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "apiwarden", Name: "build_info",
		Help:        "A metric with a constant 1 value labeled by the version, revision and Go version apiwarden was built from.",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision, "goversion": goVersion},
	})
	g.Set(1)
	return g
}

// counterSource exposes a stage's counters (already maintained elsewhere) as
// Prometheus counters at scrape time, so the hot path keeps plain integers.
type counterSource struct {
	desc  map[string]*prometheus.Desc
	stage string
	read  func() map[string]uint64
	mu    sync.Mutex
}

func newCounterSource(stage, help string, read func() map[string]uint64) *counterSource {
	return &counterSource{stage: stage, read: read, desc: map[string]*prometheus.Desc{}}
}

func (c *counterSource) Describe(ch chan<- *prometheus.Desc) {
	// Unchecked collector: the set of counters is known only at scrape time.
}

func (c *counterSource) Collect(ch chan<- prometheus.Metric) {
	vals := c.read()
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, v := range vals {
		d, ok := c.desc[name]
		if !ok {
			metric := name + "_total"
			if gaugeNames[name] {
				metric = name
			}
			d = prometheus.NewDesc(prometheus.BuildFQName("apiwarden", c.stage, metric),
				"apiwarden "+c.stage+" stage counter "+name+".", nil, nil)
			c.desc[name] = d
		}
		kind := prometheus.CounterValue
		if gaugeNames[name] {
			kind = prometheus.GaugeValue
		}
		ch <- prometheus.MustNewConstMetric(d, kind, float64(v))
	}
}

// gaugeNames are the stage values that are current sizes, not running
// totals: they are exported as gauges, without _total.
var gaugeNames = map[string]bool{
	"assemble_flows_active":  true,
	"iface_attached":         true,
	"inventory_services":     true,
	"inventory_endpoints":    true,
	"attrib_processes":       true,
	"attrib_exited":          true,
	"attrib_listeners":       true,
	"attrib_conns":           true,
	"attrib_addrs":           true,
	"attrib_cgroups":         true,
	"events_stored":          true,
	"agent_learn_waiting":    true,
	"tls_probed_files":       true,
	"tls_attach_points":      true,
	"tls_attach_points_slow": true,
	"behavior_endpoints":     true,
	"behavior_clients":       true,
	"shapes_services":        true,
	"shapes_endpoints":       true,
	"shapes_params":          true,
}

// attack counts one finding. Classes and actions come from the rule set and
// the agent, both bounded.
func (m *requestMetrics) attack(class, action string) {
	m.attacks.WithLabelValues(class, action).Inc()
}

// anomaly counts one behavioural finding; rule ids outside the model's
// fixed set count as "other".
func (m *requestMetrics) anomaly(rule, action string) {
	d := behavior.Detector(rule)
	if d == "" {
		d = "other"
	}
	m.anomalies.WithLabelValues(d, action).Inc()
}

func (m *requestMetrics) autoBlockFinding()           { m.abFindings.Inc() }
func (m *requestMetrics) autoBlockTrip(action string) { m.abTrips.WithLabelValues(action).Inc() }

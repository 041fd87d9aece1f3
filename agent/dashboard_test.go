package agent

import (
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/apiwarden/apiwarden/apiserver"
	"github.com/apiwarden/apiwarden/xds"
)

// knownMetricNames is every metric name the agent can expose: the
// registered collectors' descriptors plus the pipeline counters, which are
// only known at scrape time.
func knownMetricNames(t *testing.T) map[string]bool {
	t.Helper()
	reg := prometheus.NewRegistry()
	newRequestMetrics(reg, 10)
	reg.MustRegister(buildInfo("dev"), newVisibilityCollector(&Agent{}), newBPFProgramCollector())
	if _, err := xds.New(slog.New(slog.NewTextHandler(io.Discard, nil)), xds.Config{Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	apiserver.New(apiserver.Config{}, nil, reg, nil)

	known := map[string]bool{}
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	descs := make(chan *prometheus.Desc)
	go func() { reg.Describe(descs); close(descs) }()
	for d := range descs {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			known[m[1]] = true
		}
	}
	for _, k := range pipelineCounterNames() {
		known[pipelineMetricName("pipeline", k)] = true
	}
	return known
}

var metricToken = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)

// unknownMetrics returns the apiwarden_* and http_server_* names in a
// PromQL expression that the agent does not expose.
func unknownMetrics(expr string, known map[string]bool) []string {
	var out []string
	for _, tok := range metricToken.FindAllString(expr, -1) {
		if !strings.HasPrefix(tok, "apiwarden_") && !strings.HasPrefix(tok, "http_server_") {
			continue
		}
		base := tok
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(tok, suf); ok && known[b] {
				base = b
			}
		}
		if !known[base] {
			out = append(out, tok)
		}
	}
	return out
}

// exprs collects every "expr" and "query" string in a dashboard.
func exprs(v any, out *[]string) {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if s, ok := val.(string); ok && (k == "expr" || k == "query") {
				*out = append(*out, s)
				continue
			}
			exprs(val, out)
		}
	case []any:
		for _, e := range x {
			exprs(e, out)
		}
	}
}

// TestDashboardsUseExposedMetrics keeps deploy/grafana honest: every
// apiwarden_* (and OTel http_server_*) name a panel queries must be a
// metric the agent exposes, every dashboard has the datasource variable,
// and rates use $__rate_interval.
func TestDashboardsUseExposedMetrics(t *testing.T) {
	known := knownMetricNames(t)
	for _, must := range []string{"apiwarden_build_info", "http_server_request_duration_seconds", "apiwarden_xds_nacks_total", "apiwarden_pipeline_capture_chunks_lost_total"} {
		if !known[must] {
			t.Fatalf("%s missing from the known names", must)
		}
	}
	files, err := filepath.Glob("../deploy/grafana/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards: %v", err)
	}
	rate := regexp.MustCompile(`(rate|increase)\([^\[]*\[([^\]]+)\]`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d map[string]any
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if !strings.Contains(string(b), `"name": "datasource"`) {
			t.Errorf("%s: no datasource template variable", f)
		}
		var qs []string
		exprs(d, &qs)
		n := 0
		for _, q := range qs {
			if bad := unknownMetrics(q, known); len(bad) > 0 {
				t.Errorf("%s: %q queries unknown metrics %v", filepath.Base(f), q, bad)
			}
			for _, m := range rate.FindAllStringSubmatch(q, -1) {
				if m[2] != "$__rate_interval" {
					t.Errorf("%s: %q: use [$__rate_interval], not [%s]", filepath.Base(f), q, m[2])
				}
			}
			if strings.Contains(q, "apiwarden_") || strings.Contains(q, "http_server_") {
				n++
			}
		}
		if n == 0 {
			t.Errorf("%s: no query on apiwarden metrics", f)
		}
	}
}

func TestUnknownMetricsFindsTypos(t *testing.T) {
	known := map[string]bool{"apiwarden_http_request_duration_seconds": true, "apiwarden_attacks_detected_total": true}
	got := unknownMetrics(`histogram_quantile(0.9, rate(apiwarden_http_request_duration_seconds_bucket[5m])) + apiwarden_attacks_detected + up`, known)
	if len(got) != 1 || got[0] != "apiwarden_attacks_detected" {
		t.Fatalf("got %v", got)
	}
}

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiwarden/apiwarden/e2e/harness"
)

// dashboardQueries returns every PromQL expression of deploy/grafana, by
// panel title, with Grafana's $__rate_interval made concrete.
func dashboardQueries(t *testing.T, window string) map[string]string {
	t.Helper()
	root, err := harness.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(root, "deploy/grafana/*.json"))
	if len(files) == 0 {
		t.Fatal("no dashboards")
	}
	out := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Panels []struct {
				Title   string
				Targets []struct{ RefID, Expr string }
			}
		}
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatal(err)
		}
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				key := fmt.Sprintf("%s/%s/%s", filepath.Base(f), p.Title, tg.RefID)
				out[key] = strings.ReplaceAll(tg.Expr, "$__rate_interval", window)
			}
		}
	}
	return out
}

// mayBeEmpty are the queries this workload cannot give data, with why.
var mayBeEmpty = map[string]string{
	"apiwarden-inventory.json/5xx ratio by route/A":               "no server in the topology answers 5xx",
	"apiwarden-attacks.json/Blocks by enforcer/C":                 "the tc enforcer loads in protect mode only",
	"apiwarden-attacks.json/Monitor-mode matches (would block)/A": "the tc enforcer loads in protect mode only",
	"apiwarden-health.json/Events lost per stage/D":               "the tc enforcer loads in protect mode only",
}

// TestDashboardsOnPrometheus runs a real Prometheus (Debian's package)
// scraping the agent during a workload and requires every dashboard query
// to parse and return data (except the few listed in mayBeEmpty, which
// need events this workload does not make), and promtool check metrics to
// pass on the agent's /metrics.
func TestDashboardsOnPrometheus(t *testing.T) {
	bin := needAgent(t)
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("needs prometheus (Debian package prometheus)")
	}
	w := newWorld(t)
	xdsPort, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	// Events out: a JSON lines file and a fake OTLP/HTTP collector.
	var otlpMu sync.Mutex
	var otlpBodies []string
	collector := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		otlpMu.Lock()
		otlpBodies = append(otlpBodies, r.URL.Path+" "+string(b))
		otlpMu.Unlock()
	}))
	defer collector.Close()
	eventsFile := filepath.Join(w.dir, "events.jsonl")
	agentCfg := filepath.Join(w.dir, "agent-prom.yaml")
	os.WriteFile(agentCfg, []byte(fmt.Sprintf("bpfStats: true\neventsFile: %s\notlpLogs: {endpoint: %s}\n", eventsFile, collector.URL)), 0o644)
	a := startTestAgent(t, w.topo, w.dir, harness.AgentConfig{Bin: bin,
		DataDir: filepath.Join(w.dir, "data-prom"), Mode: "monitor", Config: agentCfg,
		Extra:   []string{"--xds-addr", fmt.Sprintf("127.0.0.1:%d", xdsPort)},
		LogFile: filepath.Join(w.dir, "agent-prom.log")})

	// Prometheus on loopback, scraping every second.
	promPort, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(w.dir, "prometheus.yml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: apiwarden
    static_configs: [{targets: [%q]}]
`, strings.TrimPrefix(a.Base, "http://"))), 0o644)
	prom, err := harness.StartInNS("", "prometheus", filepath.Join(w.dir, "prometheus.log"), nil, promBin,
		"--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(w.dir, "tsdb"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", promPort))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		prom.Kill()
		if t.Failed() {
			t.Logf("prometheus log (tail):\n%s", tailStr(prom.Output(), 3000))
		}
	})
	promURL := fmt.Sprintf("http://127.0.0.1:%d", promPort)
	query := func(q string) (status string, n int, err error) {
		resp, err := http.Get(promURL + "/api/v1/query?" + url.Values{"query": {q}}.Encode())
		if err != nil {
			return "", 0, err
		}
		defer resp.Body.Close()
		var r struct {
			Status string
			Error  string
			Data   struct{ Result []json.RawMessage }
		}
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			return "", 0, err
		}
		if r.Status != "success" {
			return r.Status, 0, fmt.Errorf("%s", r.Error)
		}
		return r.Status, len(r.Data.Result), nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	await := func(what, q string) {
		t.Helper()
		for ctx.Err() == nil {
			if _, n, err := query(q); err == nil && n > 0 {
				return
			}
			time.Sleep(250 * time.Millisecond)
		}
		t.Fatalf("%s: %s never returned data", what, q)
	}
	await("scrape", `up{job="apiwarden"} == 1`)

	// The workload: plain calls, a 404 and an attack (recorded in monitor mode).
	goapi := "http://" + w.goapi.Addr
	for i := 0; i < 5; i++ {
		for _, path := range []string{"/api/v1/users", fmt.Sprintf("/api/v1/users/%d", i+1), "/api/v1/ping", "/nope"} {
			if _, err := w.clients.Curl(ctx, "-o", "/dev/null", goapi+path); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := w.clients.Curl(ctx, "-o", "/dev/null", goapi+"/api/v1/search?q=1%27%20UNION%20SELECT%20username,password%20FROM%20users--%20"); err != nil {
			t.Fatal(err)
		}
	}
	await("calls", `sum(http_server_request_duration_seconds_count) >= 20`)
	await("attacks", `sum(apiwarden_attacks_detected_total) > 0`)
	// The SQLi finding went out as a JSON line and as an OTLP log.
	for ctx.Err() == nil {
		b, _ := os.ReadFile(eventsFile)
		otlpMu.Lock()
		sent := strings.Join(otlpBodies, "\n")
		otlpMu.Unlock()
		if strings.Contains(string(b), `"class":"sqli"`) && strings.Contains(sent, "/v1/logs ") && strings.Contains(sent, `"stringValue":"sqli"`) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if ctx.Err() != nil {
		t.Fatal("sqli event not exported to eventsFile and OTLP")
	}
	// bpfStats: the kernel counts the capture programs' runs and time.
	await("bpf stats", `sum(apiwarden_bpf_program_runs_total) > 0 and sum(apiwarden_bpf_program_run_seconds_total) > 0`)

	// promtool check metrics on what Prometheus scrapes.
	if promtool, err := exec.LookPath("promtool"); err == nil {
		resp, err := http.Get(a.Base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		var body bytes.Buffer
		body.ReadFrom(resp.Body)
		resp.Body.Close()
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = &body
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
	}

	qs := dashboardQueries(t, "30s")
	keys := make([]string, 0, len(qs))
	for k := range qs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	withData := 0
	for _, k := range keys {
		q := qs[k]
		var n int
		for {
			_, got, err := query(q)
			if err != nil {
				t.Errorf("%s: %q does not run: %v", k, q, err)
				break
			}
			n = got
			if n > 0 || mayBeEmpty[k] != "" || ctx.Err() != nil {
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
		switch {
		case n > 0:
			withData++
		case mayBeEmpty[k] != "":
			t.Logf("%s: empty as expected (%s)", k, mayBeEmpty[k])
		default:
			t.Errorf("%s: %q returned no data", k, q)
		}
	}
	t.Logf("%d of %d dashboard queries returned data", withData, len(keys))
}

package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiwarden/apiwarden/apiserver"
)

// eventsBackend serves a fixed event log, filtered like the agent's
// (service, class, action, since, limit; newest first), and remembers the
// filter it was asked for.
type eventsBackend struct {
	fakeBackend
	mu   sync.Mutex
	last apiserver.EventFilter
}

var anomalyT0 = time.Date(2026, 12, 7, 2, 0, 0, 0, time.UTC)

var testEvents = []apiserver.Event{
	{ID: "7", Time: anomalyT0.Add(6 * time.Minute), Service: "goapi", Endpoint: "GET /api/v1/internal/debug", Client: "10.232.7.2",
		Class: "abuse", RuleID: "abuse-shadow-endpoint", Severity: "medium", Part: "path", Action: "monitor",
		Excerpt: "GET /api/v1/internal/debug is not in the imported spec of goapi"},
	{ID: "6", Time: anomalyT0.Add(5 * time.Minute), Service: "goapi", Endpoint: "GET /api/v1/payments/{paymentId}", Client: "10.232.7.2",
		Class: "abuse", RuleID: "abuse-sensitive-exposure", Severity: "high", Part: "response", Action: "monitor",
		Excerpt: "endpoint now returns credit-card, never returned while learning"},
	{ID: "5", Time: anomalyT0.Add(4 * time.Minute), Service: "goapi", Endpoint: "PUT /api/v1/users/{userId}", Client: "10.233.7.11",
		Class: "abuse", RuleID: "abuse-mass-assignment", Severity: "high", Part: "json:isAdmin", Action: "blocked",
		Excerpt: "privileged field json:isAdmin never sent to this endpoint while learning"},
	{ID: "4", Time: anomalyT0.Add(3 * time.Minute), Service: "shop", Endpoint: "GET /search", Client: "10.0.0.9",
		Class: "sqli", RuleID: "942100", Severity: "critical", Part: "query:q", Action: "blocked", Excerpt: "1' OR '1'='1"},
	{ID: "3", Time: anomalyT0.Add(2 * time.Minute), Service: "goapi", Endpoint: "POST /api/v1/login", Client: "10.233.7.12",
		Class: "abuse", RuleID: "abuse-credential-stuffing", Severity: "high", Part: "json:account", Action: "blocked",
		Excerpt: "21 failed logins for account acct:3f746f2bf42ee779 from 3 clients within 1m0s"},
	{ID: "2", Time: anomalyT0.Add(time.Minute), Service: "goapi", Endpoint: "POST /api/v1/login", Client: "10.233.7.10",
		Class: "abuse", RuleID: "abuse-credential-stuffing", Severity: "high", Part: "json:account", Action: "blocked",
		Excerpt: "20 failed logins for account acct:3f746f2bf42ee779 from 3 clients within 1m0s"},
	{ID: "1", Time: anomalyT0, Service: "goapi", Endpoint: "PUT /api/v1/users/{userId}", Client: "10.232.7.2",
		Class: "abuse", RuleID: "abuse-type-drift", Severity: "medium", Part: "json:\x1b[2Jname", Action: "monitor",
		Excerpt: "json:\x1b[2Jname is integer, learned string"},
}

func (b *eventsBackend) Events(_ context.Context, f apiserver.EventFilter) ([]apiserver.Event, error) {
	b.mu.Lock()
	b.last = f
	b.mu.Unlock()
	var out []apiserver.Event
	for _, e := range testEvents {
		if f.Service != "" && e.Service != f.Service || f.Class != "" && e.Class != f.Class ||
			f.Action != "" && e.Action != f.Action || !f.Since.IsZero() && e.Time.Before(f.Since) {
			continue
		}
		if len(out) == f.Limit {
			break
		}
		out = append(out, e)
	}
	return out, nil
}

func (b *eventsBackend) filter() apiserver.EventFilter {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last
}

func startEventsAgent(t *testing.T) (string, *eventsBackend) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	be := &eventsBackend{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- apiserver.New(apiserver.Config{}, be, nil, nil).ServeListener(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String(), be
}

// goldenFile compares got with testdata/name (rewritten with -update).
func goldenFile(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test -update to accept):\n--- got\n%s--- want\n%s", path, got, want)
	}
}

func TestAnomaliesGolden(t *testing.T) {
	old := displayZone
	displayZone = time.UTC // the table prints local times
	t.Cleanup(func() { displayZone = old })
	addr, be := startEventsAgent(t)
	for _, tc := range []struct {
		golden string
		args   []string
		want   apiserver.EventFilter // what the agent is asked (Since checked apart)
	}{
		{"anomalies.golden", []string{"anomalies"}, apiserver.EventFilter{Class: "abuse", Limit: 100}},
		{"anomalies-detector.golden", []string{"anomalies", "--detector", "credential_stuffing", "--service", "goapi"},
			apiserver.EventFilter{Class: "abuse", Service: "goapi", Limit: 10000}},
		{"anomalies-limit.golden", []string{"anomalies", "--action", "blocked", "--limit", "1", "--detector", "abuse-credential-stuffing"},
			apiserver.EventFilter{Class: "abuse", Action: "blocked", Limit: 10000}},
		{"anomalies-since.golden", []string{"anomalies", "--since", anomalyT0.Add(150 * time.Second).Format(time.RFC3339)},
			apiserver.EventFilter{Class: "abuse", Since: anomalyT0.Add(150 * time.Second), Limit: 100}},
		{"anomalies.json.golden", []string{"anomalies", "--json", "--detector", "Shadow-Endpoint"},
			apiserver.EventFilter{Class: "abuse", Limit: 10000}},
		{"anomalies-empty.golden", []string{"anomalies", "--service", "nope"},
			apiserver.EventFilter{Class: "abuse", Service: "nope", Limit: 100}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			code, out, errs := ctl(t, addr, tc.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			if f := be.filter(); f != tc.want {
				t.Errorf("agent asked for %+v, want %+v", f, tc.want)
			}
			goldenFile(t, tc.golden, out)
		})
	}
}

func TestAnomaliesUsageErrors(t *testing.T) {
	addr, _ := startEventsAgent(t)
	for _, args := range [][]string{
		{"anomalies", "--detector", "sqli"},
		{"anomalies", "-o", "yaml"},
		{"anomalies", "--since", "yesterday"},
		{"anomalies", "extra"},
	} {
		code, out, errs := ctl(t, addr, args...)
		if code != 2 || out != "" || !strings.Contains(errs, "usage") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errs)
		}
	}
	if _, _, errs := ctl(t, addr, "anomalies", "--detector", "bogus"); !strings.Contains(errs, "credential-stuffing") {
		t.Errorf("unknown detector error does not list the detectors: %s", errs)
	}
}

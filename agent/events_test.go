package agent

import (
	"bufio"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/apiwarden/apiwarden/apiserver"
	"github.com/apiwarden/apiwarden/otlplog"
	"github.com/apiwarden/apiwarden/store"
)

// TestEventsExportedAsJSONLines: eventsFile gets one JSON object per event,
// in the API's shape, appended to what the file already holds.
func TestEventsExportedAsJSONLines(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(filepath.Join(dir, "data"), log)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	path := filepath.Join(dir, "events.jsonl")
	os.WriteFile(path, []byte(`{"class":"older"}`+"\n"), 0o600)
	e := newEventLog(st, log)
	if err := e.exportTo(path); err != nil {
		t.Fatal(err)
	}
	e.Record(apiserver.Event{Class: "sqli", RuleID: "sqli-union", Action: "blocked", Service: "shop", Endpoint: "GET /items/{id}"})
	e.Record(apiserver.Event{Class: "jndi", Action: "monitor"})
	if err := e.closeExport(); err != nil {
		t.Fatal(err)
	}
	e.Record(apiserver.Event{Class: "after-close"}) // stored, not exported

	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var classes []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var ev apiserver.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if ev.Class != "older" && (ev.ID == "" || ev.Time.IsZero()) {
			t.Errorf("event without id or time: %q", sc.Text())
		}
		classes = append(classes, ev.Class)
	}
	if len(classes) != 3 || classes[0] != "older" || classes[1] != "sqli" || classes[2] != "jndi" {
		t.Fatalf("lines %v", classes)
	}
	b, _ := os.ReadFile(path)
	for _, key := range []string{`"ruleId":"sqli-union"`, `"endpoint":"GET /items/{id}"`, `"action":"blocked"`, `"time":"`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("export lacks %s:\n%s", key, b)
		}
	}
	if s := e.Stats(); s.Recorded != 3 || s.ExportErrors != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// TestEventsExportedAsOTLPLogs sends events to a fake collector.
func TestEventsExportedAsOTLPLogs(t *testing.T) {
	var mu sync.Mutex
	var got []otlplog.ExportLogsServiceRequest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req otlplog.ExportLogsServiceRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || r.URL.Path != "/v1/logs" {
			http.Error(w, "bad", 400)
			return
		}
		mu.Lock()
		got = append(got, req)
		mu.Unlock()
	}))
	defer srv.Close()
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(filepath.Join(dir, "data"), log)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e := newEventLog(st, log)
	if e.otlp, err = otlplog.New(otlplog.Config{Endpoint: srv.URL}, log); err != nil {
		t.Fatal(err)
	}
	e.Record(apiserver.Event{Class: "sqli", RuleID: "sqli-union", Action: "blocked", Service: "shop", Client: "203.0.113.7:4242"})
	e.otlp.Close()
	if len(got) != 1 {
		t.Fatalf("%d requests", len(got))
	}
	attrs := map[string]string{}
	for _, kv := range got[0].ResourceLogs[0].ScopeLogs[0].LogRecords[0].Attributes {
		attrs[kv.Key] = kv.Value.StringValue
	}
	if attrs["apiwarden.class"] != "sqli" || attrs["apiwarden.rule_id"] != "sqli-union" || attrs["client.address"] != "203.0.113.7:4242" || attrs["service.name"] != "shop" || attrs["apiwarden.event.id"] == "" {
		t.Fatalf("attributes %v", attrs)
	}
	if s := e.Stats(); s.OTLPSent != 1 {
		t.Fatalf("stats %+v", s)
	}
}

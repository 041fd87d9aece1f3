package otlplog

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// collector is a fake OTLP/HTTP receiver.
type collector struct {
	mu      sync.Mutex
	reqs    []ExportLogsServiceRequest
	headers []http.Header
	status  int
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/logs" || r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "bad request shape", http.StatusBadRequest)
		return
	}
	var req ExportLogsServiceRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reqs = append(c.reqs, req)
	c.headers = append(c.headers, r.Header.Clone())
	if c.status != 0 {
		w.WriteHeader(c.status)
		return
	}
	w.Write([]byte(`{}`))
}

func TestExporterSendsOTLPJSON(t *testing.T) {
	c := &collector{}
	srv := httptest.NewServer(c)
	defer srv.Close()
	e, err := New(Config{Endpoint: srv.URL, Headers: map[string]string{"Authorization": "Bearer t"},
		Resource: map[string]string{"host.name": "node-1"}, BatchSize: 2, Interval: time.Hour}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Unix(1700000000, 5)
	e.Emit(Record{Time: at, Severity: SeverityWarn, Body: "sqli blocked", Attributes: map[string]string{"class": "sqli", "action": "blocked", "empty": ""}})
	e.Emit(Record{Time: at, Severity: SeverityInfo, Body: "second"})
	e.Emit(Record{Time: at, Severity: SeverityInfo, Body: "third (flushed by Close)"})
	e.Close()

	if len(c.reqs) != 2 {
		t.Fatalf("%d requests, want 2 (a full batch, then the rest on Close)", len(c.reqs))
	}
	rl := c.reqs[0].ResourceLogs[0]
	if got := rl.Resource.Attributes; len(got) != 2 || got[0].Key != "host.name" || got[1].Key != "service.name" || got[1].Value.StringValue != "apiwarden" {
		t.Fatalf("resource %+v", got)
	}
	lr := rl.ScopeLogs[0].LogRecords[0]
	if lr.TimeUnixNano != "1700000000000000005" || lr.SeverityNumber != 13 || lr.SeverityText != "WARN" || lr.Body.StringValue != "sqli blocked" {
		t.Fatalf("record %+v", lr)
	}
	if len(lr.Attributes) != 2 || lr.Attributes[0].Key != "action" || lr.Attributes[1].Value.StringValue != "sqli" {
		t.Fatalf("attributes %+v (sorted, empty values left out)", lr.Attributes)
	}
	if c.headers[0].Get("Authorization") != "Bearer t" {
		t.Fatal("header not sent")
	}
	if s := e.Stats(); s.Sent != 3 || s.Dropped != 0 || s.Failed != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestExporterCountsRefusedAndDropped(t *testing.T) {
	c := &collector{status: http.StatusServiceUnavailable}
	srv := httptest.NewServer(c)
	defer srv.Close()
	e, err := New(Config{Endpoint: srv.URL + "/v1/logs", QueueSize: 1, Interval: time.Hour}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	// The run loop may take one record off the queue; at least one of
	// three must be dropped, none may block.
	for i := 0; i < 3; i++ {
		e.Emit(Record{Time: time.Now(), Body: "x"})
	}
	e.Close()
	s := e.Stats()
	if s.Dropped == 0 || s.Sent != 0 || s.Failed+s.Dropped != 3 {
		t.Fatalf("stats %+v", s)
	}
}

func TestEndpointMustBeHTTP(t *testing.T) {
	if _, err := New(Config{Endpoint: "collector:4317"}, quiet); err == nil {
		t.Fatal("endpoint without scheme accepted")
	}
}

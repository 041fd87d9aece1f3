// Package otlplog sends records to an OpenTelemetry collector as OTLP logs
// over HTTP with the JSON encoding (POST {endpoint}/v1/logs), so security
// events land in whatever log backend the collector feeds. It is written
// against the OTLP specification with the standard library: the official
// SDK would bring a large dependency tree for one POST.
//
// Records are queued without blocking the caller and sent in batches; when
// the queue is full a record is dropped and counted, never waited for.
package otlplog

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Record is one log record: a body and string attributes.
type Record struct {
	Time       time.Time
	Severity   Severity
	Body       string
	Attributes map[string]string
}

// Severity is an OTLP severity number (SeverityNumber in logs.proto).
type Severity int

// The severities apiwarden uses.
const (
	SeverityInfo Severity = 9
	SeverityWarn Severity = 13
)

func (s Severity) text() string {
	if s >= SeverityWarn {
		return "WARN"
	}
	return "INFO"
}

// Config of an Exporter.
type Config struct {
	// Endpoint is the collector's OTLP/HTTP base URL (http://host:4318);
	// /v1/logs is appended unless the URL already ends with it.
	Endpoint string
	// Headers are sent with every request (e.g. an authorization token).
	Headers map[string]string
	// Resource attributes (service.name defaults to "apiwarden").
	Resource map[string]string
	// BatchSize and Interval bound a batch (defaults 256 and 1s).
	BatchSize int
	Interval  time.Duration
	// QueueSize is how many records wait at most (default 4096).
	QueueSize int
	Client    *http.Client
}

// Exporter batches records to a collector.
type Exporter struct {
	cfg   Config
	url   string
	log   *slog.Logger
	queue chan Record
	done  chan struct{}
	once  sync.Once

	sent, dropped, failed atomic.Uint64
}

// Stats are the exporter's counters.
type Stats struct {
	Sent    uint64 // records the collector accepted
	Dropped uint64 // records dropped because the queue was full
	Failed  uint64 // records in batches the collector refused or never got
}

// New starts an exporter; Close flushes and stops it.
func New(cfg Config, log *slog.Logger) (*Exporter, error) {
	if !strings.HasPrefix(cfg.Endpoint, "http://") && !strings.HasPrefix(cfg.Endpoint, "https://") {
		return nil, fmt.Errorf("otlp endpoint %q: want http:// or https://", cfg.Endpoint)
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 256
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 4096
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	url := strings.TrimRight(cfg.Endpoint, "/")
	if !strings.HasSuffix(url, "/v1/logs") {
		url += "/v1/logs"
	}
	e := &Exporter{cfg: cfg, url: url, log: log.With("component", "otlplog"),
		queue: make(chan Record, cfg.QueueSize), done: make(chan struct{})}
	go e.run()
	return e, nil
}

// Emit queues r; it never blocks.
func (e *Exporter) Emit(r Record) {
	select {
	case e.queue <- r:
	default:
		e.dropped.Add(1)
	}
}

// Stats returns the counters.
func (e *Exporter) Stats() Stats {
	return Stats{Sent: e.sent.Load(), Dropped: e.dropped.Load(), Failed: e.failed.Load()}
}

// Close sends what is queued and stops.
func (e *Exporter) Close() {
	e.once.Do(func() { close(e.queue) })
	<-e.done
}

func (e *Exporter) run() {
	defer close(e.done)
	tick := time.NewTicker(e.cfg.Interval)
	defer tick.Stop()
	var batch []Record
	flush := func() {
		if len(batch) > 0 {
			e.send(batch)
			batch = nil
		}
	}
	for {
		select {
		case r, ok := <-e.queue:
			if !ok {
				flush()
				return
			}
			batch = append(batch, r)
			if len(batch) >= e.cfg.BatchSize {
				flush()
			}
		case <-tick.C:
			flush()
		}
	}
}

func (e *Exporter) send(batch []Record) {
	body, err := json.Marshal(Request(e.cfg.Resource, batch))
	if err == nil {
		err = e.post(body)
	}
	if err != nil {
		if e.failed.Add(uint64(len(batch))) == uint64(len(batch)) {
			e.log.Warn("otlp logs not delivered", "url", e.url, "err", err)
		}
		return
	}
	e.sent.Add(uint64(len(batch)))
}

func (e *Exporter) post(body []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range e.cfg.Headers {
		req.Header.Set(k, v)
	}
	resp, err := e.cfg.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("collector answered %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// The OTLP JSON shapes (opentelemetry/proto/collector/logs/v1 and
// logs/v1, proto3 JSON mapping: lowerCamelCase names, 64-bit integers as
// strings).
type (
	ExportLogsServiceRequest struct {
		ResourceLogs []ResourceLogs `json:"resourceLogs"`
	}
	ResourceLogs struct {
		Resource  Resource    `json:"resource"`
		ScopeLogs []ScopeLogs `json:"scopeLogs"`
	}
	Resource struct {
		Attributes []KeyValue `json:"attributes"`
	}
	ScopeLogs struct {
		Scope      Scope       `json:"scope"`
		LogRecords []LogRecord `json:"logRecords"`
	}
	Scope struct {
		Name string `json:"name"`
	}
	LogRecord struct {
		TimeUnixNano         string     `json:"timeUnixNano"`
		ObservedTimeUnixNano string     `json:"observedTimeUnixNano"`
		SeverityNumber       int        `json:"severityNumber"`
		SeverityText         string     `json:"severityText"`
		Body                 AnyValue   `json:"body"`
		Attributes           []KeyValue `json:"attributes"`
	}
	KeyValue struct {
		Key   string   `json:"key"`
		Value AnyValue `json:"value"`
	}
	AnyValue struct {
		StringValue string `json:"stringValue"`
	}
)

// Request builds the export request for records (pure, for tests).
func Request(resource map[string]string, records []Record) ExportLogsServiceRequest {
	res := map[string]string{"service.name": "apiwarden"}
	for k, v := range resource {
		res[k] = v
	}
	now := strconv.FormatInt(time.Now().UnixNano(), 10)
	lrs := make([]LogRecord, 0, len(records))
	for _, r := range records {
		lrs = append(lrs, LogRecord{
			TimeUnixNano:         strconv.FormatInt(r.Time.UnixNano(), 10),
			ObservedTimeUnixNano: now,
			SeverityNumber:       int(r.Severity),
			SeverityText:         r.Severity.text(),
			Body:                 AnyValue{StringValue: r.Body},
			Attributes:           keyValues(r.Attributes),
		})
	}
	return ExportLogsServiceRequest{ResourceLogs: []ResourceLogs{{
		Resource:  Resource{Attributes: keyValues(res)},
		ScopeLogs: []ScopeLogs{{Scope: Scope{Name: "apiwarden"}, LogRecords: lrs}},
	}}}
}

func keyValues(m map[string]string) []KeyValue {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]KeyValue, 0, len(keys))
	for _, k := range keys {
		if m[k] != "" {
			out = append(out, KeyValue{Key: k, Value: AnyValue{StringValue: m[k]}})
		}
	}
	return out
}

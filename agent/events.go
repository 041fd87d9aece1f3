package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apiwarden/apiwarden/apiserver"
	"github.com/apiwarden/apiwarden/otlplog"
	"github.com/apiwarden/apiwarden/store"
)

// eventKind is the store bucket of detection and enforcement events.
const eventKind = "security"

// maxStoredEvents bounds the event history; the oldest go first.
const maxStoredEvents = 100000

// eventLog persists events and answers queries over them.
type eventLog struct {
	st  *store.Store
	log *slog.Logger
	seq atomic.Uint64

	stored, dropped, trimmed atomic.Uint64

	// jsonl, when set, receives every event as one JSON line (eventsFile),
	// so users can ship events with the log pipeline they already run.
	jsonlMu      sync.Mutex
	jsonl        io.WriteCloser
	exportErrors atomic.Uint64
	// otlp, when set, receives every event as an OTLP log record.
	otlp *otlplog.Exporter
}

// EventStats are the event log's counters.
type EventStats struct {
	Recorded uint64 // events written
	Dropped  uint64 // events that could not be written
	Trimmed  uint64 // old events removed by the bound
	// ExportErrors are events not written to eventsFile.
	ExportErrors uint64
	// OTLP log export: accepted by the collector, dropped (queue full),
	// failed (refused or undelivered).
	OTLPSent, OTLPDropped, OTLPFailed uint64
}

// exportTo appends every event from now on to path as JSON lines. The file
// is opened O_APPEND, so logrotate's copytruncate works on it.
func (e *eventLog) exportTo(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("events file: %w", err)
	}
	e.jsonlMu.Lock()
	e.jsonl = f
	e.jsonlMu.Unlock()
	return nil
}

// closeExport closes the events file.
func (e *eventLog) closeExport() error {
	e.jsonlMu.Lock()
	defer e.jsonlMu.Unlock()
	if e.jsonl == nil {
		return nil
	}
	err := e.jsonl.Close()
	e.jsonl = nil
	return err
}

// exportedEvent is an event as exported: the REST API's field names.
type exportedEvent struct {
	ID       string    `json:"id"`
	Time     time.Time `json:"time"`
	Service  string    `json:"service,omitempty"`
	Endpoint string    `json:"endpoint,omitempty"`
	Client   string    `json:"client,omitempty"`
	Class    string    `json:"class"`
	RuleID   string    `json:"ruleId,omitempty"`
	Severity string    `json:"severity,omitempty"`
	Part     string    `json:"part,omitempty"`
	Excerpt  string    `json:"excerpt,omitempty"`
	Action   string    `json:"action"`
}

// otlpRecord is an event as an OTLP log record; attribute names follow
// the OpenTelemetry semantic conventions where one exists.
func otlpRecord(ev apiserver.Event) otlplog.Record {
	return otlplog.Record{
		Time:     ev.Time,
		Severity: otlplog.SeverityWarn,
		Body:     fmt.Sprintf("apiwarden %s %s %s", ev.Class, ev.Action, ev.Endpoint),
		Attributes: map[string]string{
			"event.name":         "apiwarden.security",
			"apiwarden.event.id": ev.ID,
			"apiwarden.class":    ev.Class,
			"apiwarden.rule_id":  ev.RuleID,
			"apiwarden.severity": ev.Severity,
			"apiwarden.part":     ev.Part,
			"apiwarden.excerpt":  ev.Excerpt,
			"apiwarden.action":   ev.Action,
			"service.name":       ev.Service,
			"apiwarden.endpoint": ev.Endpoint,
			"client.address":     ev.Client,
		},
	}
}

func (e *eventLog) export(ev apiserver.Event) {
	if e.otlp != nil {
		e.otlp.Emit(otlpRecord(ev))
	}
	e.jsonlMu.Lock()
	defer e.jsonlMu.Unlock()
	if e.jsonl == nil {
		return
	}
	b, err := json.Marshal(exportedEvent(ev))
	if err == nil {
		// One write per line: O_APPEND keeps concurrent writers' lines whole.
		_, err = e.jsonl.Write(append(b, '\n'))
	}
	if err != nil {
		if e.exportErrors.Add(1) == 1 {
			e.log.Warn("event not exported", "err", err)
		}
	}
}

func newEventLog(st *store.Store, log *slog.Logger) *eventLog {
	e := &eventLog{st: st, log: log.With("component", "events")}
	e.seq.Store(uint64(time.Now().UnixNano()))
	return e
}

func (e *eventLog) Stats() EventStats {
	st := EventStats{Recorded: e.stored.Load(), Dropped: e.dropped.Load(), Trimmed: e.trimmed.Load(), ExportErrors: e.exportErrors.Load()}
	if e.otlp != nil {
		o := e.otlp.Stats()
		st.OTLPSent, st.OTLPDropped, st.OTLPFailed = o.Sent, o.Dropped, o.Failed
	}
	return st
}

// Record stores one event, giving it an id and time when missing.
func (e *eventLog) Record(ev apiserver.Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	if ev.ID == "" {
		ev.ID = strconv.FormatUint(e.seq.Add(1), 36)
	}
	b, err := json.Marshal(ev)
	if err == nil {
		e.export(ev)
		err = e.st.AppendEvent(eventKind, ev.Time, b)
	}
	if err != nil {
		e.dropped.Add(1)
		e.log.Warn("event not stored", "err", err)
		return
	}
	if n := e.stored.Add(1); n%1000 == 0 {
		if k, err := e.st.Trim(eventKind, maxStoredEvents); err == nil {
			e.trimmed.Add(uint64(k))
		}
	}
	e.log.Info("security event", "class", ev.Class, "rule", ev.RuleID, "service", ev.Service,
		"endpoint", ev.Endpoint, "client", ev.Client, "action", ev.Action)
}

// Query returns events matching f, newest first.
func (e *eventLog) Query(_ context.Context, f apiserver.EventFilter) ([]apiserver.Event, error) {
	raw, err := e.st.Events(eventKind, f.Since, 0)
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	var out []apiserver.Event
	for i := len(raw) - 1; i >= 0 && len(out) < f.Limit; i-- {
		var ev apiserver.Event
		if json.Unmarshal(raw[i], &ev) != nil {
			continue
		}
		if (f.Service != "" && ev.Service != f.Service) || (f.Class != "" && ev.Class != f.Class) ||
			(f.Action != "" && ev.Action != f.Action) {
			continue
		}
		out = append(out, ev)
	}
	return out, nil
}

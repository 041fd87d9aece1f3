package behavior

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Baseline is the learned state of one endpoint, as persisted and shown in
// the inventory API.
type Baseline struct {
	Service    string           `json:"service"`
	Endpoint   string           `json:"endpoint"` // "GET /users/{userId}"
	Calls      uint64           `json:"calls"`
	Learned    bool             `json:"learned"`
	RateEWMA   float64          `json:"rate_per_window"`
	ClientRate float64          `json:"client_rate_per_window"`
	ClientIDs  float64          `json:"client_distinct_ids_per_window"`
	LatencyMS  float64          `json:"latency_ms"`
	ReqSize    float64          `json:"request_bytes"`
	RespSize   float64          `json:"response_bytes"`
	RespMax    int64            `json:"response_bytes_max"`
	Status     [6]uint64        `json:"status_by_class"` // [none, 1xx, 2xx, 3xx, 4xx, 5xx]
	Fields     map[string]uint8 `json:"fields,omitempty"`
	Sensitive  []string         `json:"sensitive,omitempty"`
}

// Baselines returns every endpoint's baseline, most recently used first.
func (m *Model) Baselines() []Baseline {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Baseline
	m.endpoints.each(func(k string, e *endpointState) {
		svc, ep, _ := strings.Cut(k, " ")
		b := Baseline{Service: svc, Endpoint: ep, Calls: e.Calls, Learned: e.learned(&m.cfg), RateEWMA: e.RateEWMA,
			ClientRate: e.ClientRate, ClientIDs: e.ClientIDs, LatencyMS: e.LatencyMS, ReqSize: e.ReqSize,
			RespSize: e.RespSize, RespMax: e.RespMax, Status: e.Status, Fields: map[string]uint8{}}
		for f, t := range e.Fields {
			b.Fields[f] = t
		}
		for s := range e.Sensitive {
			b.Sensitive = append(b.Sensitive, s)
		}
		out = append(out, b)
	})
	return out
}

const stateVersion = 1

type stateDoc struct {
	Version   int        `json:"version"`
	Baselines []Baseline `json:"baselines"`
}

// MarshalState encodes the endpoint baselines (client windows are short
// lived and not persisted).
func (m *Model) MarshalState() ([]byte, error) {
	return json.Marshal(stateDoc{Version: stateVersion, Baselines: m.Baselines()})
}

// RestoreState loads baselines saved by MarshalState.
func (m *Model) RestoreState(b []byte) error {
	var doc stateDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		return err
	}
	if doc.Version != stateVersion {
		return fmt.Errorf("behaviour state version %d, want %d", doc.Version, stateVersion)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	// Least recently used first, so the LRU order survives.
	for i := len(doc.Baselines) - 1; i >= 0; i-- {
		bl := doc.Baselines[i]
		e := m.endpoints.get(bl.Service+" "+bl.Endpoint, func() *endpointState {
			return &endpointState{Fields: map[string]uint8{}, Sensitive: map[string]bool{}, fired: map[string]time.Time{}}
		})
		e.Calls, e.RateEWMA, e.ClientRate, e.ClientIDs = bl.Calls, bl.RateEWMA, bl.ClientRate, bl.ClientIDs
		e.LatencyMS, e.ReqSize, e.RespSize, e.RespMax, e.Status = bl.LatencyMS, bl.ReqSize, bl.RespSize, bl.RespMax, bl.Status
		for f, t := range bl.Fields {
			e.Fields[f] = t
		}
		for _, s := range bl.Sensitive {
			e.Sensitive[s] = true
		}
	}
	return nil
}

// Numbers returns the baseline as the flat map the inventory API shows.
func (b Baseline) Numbers() map[string]float64 {
	learned := 0.0
	if b.Learned {
		learned = 1
	}
	return map[string]float64{"calls": float64(b.Calls), "learned": learned, "rate_per_window": b.RateEWMA,
		"client_rate_per_window": b.ClientRate, "client_distinct_ids_per_window": b.ClientIDs,
		"latency_ms": b.LatencyMS, "request_bytes": b.ReqSize, "response_bytes": b.RespSize,
		"response_bytes_max": float64(b.RespMax)}
}

package xds

import (
	"maps"
	"slices"
	"sync"
	"time"
)

// Status is what the API reports about the server.
type Status struct {
	Version uint64
	// Nodes with a snapshot (an open stream), sorted by id.
	Nodes         []NodeStatus
	Pushes, NACKs uint64
	// LastError is the last NACK or failed policy build; zero time: none.
	LastError     string
	LastErrorTime time.Time
	// LastUpdate is when the policy last changed (zero: never).
	LastUpdate time.Time
}

// NodeStatus is one connected node.
type NodeStatus struct {
	ID string
	// GRPCListeners are the proxyless listener names it subscribes to.
	GRPCListeners []string
	// Acked is the last ACKed version by resource type URL.
	Acked map[string]string
}

// diagnostics keeps the last error and update time.
type diagnostics struct {
	mu         sync.Mutex
	lastErr    string
	lastErrAt  time.Time
	lastUpdate time.Time
}

func (d *diagnostics) fail(msg string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lastErr, d.lastErrAt = msg, time.Now()
}

func (d *diagnostics) updated() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lastUpdate = time.Now()
}

// Status returns the server's version, nodes, counters and last error.
func (s *Server) Status() Status {
	s.mu.Lock()
	st := Status{Version: s.version}
	for _, id := range slices.Sorted(maps.Keys(s.built)) {
		st.Nodes = append(st.Nodes, NodeStatus{ID: id, GRPCListeners: slices.Clone(s.built[id]), Acked: maps.Clone(s.acked[id])})
	}
	s.mu.Unlock()
	st.Pushes, st.NACKs = s.pushCount.Load(), s.nackCount.Load()
	s.diag.mu.Lock()
	st.LastError, st.LastErrorTime, st.LastUpdate = s.diag.lastErr, s.diag.lastErrAt, s.diag.lastUpdate
	s.diag.mu.Unlock()
	return st
}

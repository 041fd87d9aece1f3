package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/apiwarden/apiwarden/apimodel/inventory"
	"github.com/apiwarden/apiwarden/apimodel/openapi"
	"github.com/apiwarden/apiwarden/apiserver"
	"github.com/apiwarden/apiwarden/datapath/guard"
)

// backend answers the API from the agent's live state.
type backend struct{ a *Agent }

var _ apiserver.Backend = backend{}

// Inventory is the inventory snapshot with each endpoint's behavioural
// baseline attached.
func (b backend) Inventory() []inventory.Endpoint {
	eps := b.a.inv.Snapshot()
	if b.a.model == nil {
		return eps
	}
	bl := map[string]map[string]float64{}
	for _, x := range b.a.model.Baselines() {
		bl[x.Service+" "+x.Endpoint] = x.Numbers()
	}
	for i := range eps {
		eps[i].Baseline = bl[eps[i].Service.Name+" "+eps[i].Method+" "+eps[i].PathTemplate]
	}
	return eps
}

func (b backend) OpenAPI() ([]byte, error) {
	doc, err := openapi.Build(b.a.inv.Snapshot(), openapi.Info{Version: b.a.version})
	if err != nil {
		return nil, err
	}
	return openapi.JSON(doc)
}

// Processes lists the processes that have TCP sockets: what a user asks
// "which services does the agent see, and can it read them?".
func (b backend) Processes() ([]apiserver.ProcessStatus, error) {
	served := servedByPID(b.a.inv.Snapshot())
	var out []apiserver.ProcessStatus
	for _, p := range b.a.procs.Processes() {
		if p.Exited || (len(p.ListenPorts) == 0 && p.Connections == 0) {
			continue
		}
		vis, reason := b.a.visibility(p.PID)
		s := served[p.PID]
		out = append(out, apiserver.ProcessStatus{
			PID: p.PID, Comm: p.Comm, Exe: p.Exe, ContainerID: p.ContainerID,
			Ports: p.ListenPorts, Visibility: vis, Reason: reason,
			Protocols: s.protocols(), Calls: s.calls,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PID < out[j].PID })
	return out, nil
}

func (b backend) Events(ctx context.Context, f apiserver.EventFilter) ([]apiserver.Event, error) {
	return b.a.events.Query(ctx, f)
}

func (b backend) Blocks() ([]apiserver.Block, error) {
	if b.a.guard == nil {
		return nil, fmt.Errorf("%w: source guard not loaded", apiserver.ErrNotImplemented)
	}
	entries, err := b.a.guard.List()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	out := make([]apiserver.Block, 0, len(entries))
	for _, e := range entries {
		if !e.Expires.IsZero() && !e.Expires.After(now) {
			continue
		}
		meta := b.a.blocks.get(e.Prefix)
		reason := meta.reason
		if reason == "" {
			reason = e.Reason.String()
		}
		out = append(out, apiserver.Block{Prefix: e.Prefix, Reason: reason, Created: meta.created, Expires: e.Expires})
	}
	return out, nil
}

func (b backend) AddBlock(p netip.Prefix, ttl time.Duration, reason string) (apiserver.Block, error) {
	if b.a.guard == nil {
		return apiserver.Block{}, fmt.Errorf("%w: source guard not loaded", apiserver.ErrNotImplemented)
	}
	b.a.activateGuard()
	if err := b.a.guard.Block(p, ttl, guard.ReasonManual); err != nil {
		return apiserver.Block{}, err
	}
	if reason == "" {
		reason = "manual"
	}
	now := time.Now()
	blk := apiserver.Block{Prefix: p, Reason: reason, Created: now}
	if ttl > 0 {
		blk.Expires = now.Add(ttl)
	}
	b.a.blocks.put(p, blockMeta{reason: reason, created: now, expires: blk.Expires, manual: true})
	b.a.saveBlocklist()
	return blk, nil
}

func (b backend) DeleteBlock(p netip.Prefix) error {
	if b.a.guard == nil {
		return fmt.Errorf("%w: source guard not loaded", apiserver.ErrNotImplemented)
	}
	entries, err := b.a.guard.List()
	if err != nil {
		return err
	}
	found := false
	for _, e := range entries {
		found = found || e.Prefix == p
	}
	if !found {
		return apiserver.ErrNotFound
	}
	b.a.blocks.del(p)
	if err := b.a.guard.Unblock(p); err != nil {
		return err
	}
	b.a.saveBlocklist()
	return nil
}

func (b backend) Status() (apiserver.Status, error) {
	counters := b.a.counters()
	b.a.holdStatus(counters) // hold_* outcomes and verdict-path stage timings
	return apiserver.Status{
		Version:    b.a.version,
		Mode:       string(b.a.cfg.Mode),
		Interfaces: b.a.attachedNames(),
		Counters:   counters,
		Started:    b.a.started,
	}, nil
}

// blockMeta is what the API shows about a block beyond the kernel entry.
type blockMeta struct {
	reason  string
	created time.Time
	expires time.Time // zero: until removed
	manual  bool      // added through the API (persisted when asked)
}

// blockBook keeps block metadata by prefix; the kernel map stays the truth
// of what is blocked.
type blockBook struct {
	mu      sync.Mutex
	entries map[string]blockMeta
}

func (bb *blockBook) get(p netip.Prefix) blockMeta {
	bb.mu.Lock()
	defer bb.mu.Unlock()
	return bb.entries[p.String()]
}

func (bb *blockBook) put(p netip.Prefix, m blockMeta) {
	bb.mu.Lock()
	defer bb.mu.Unlock()
	bb.entries[p.String()] = m
}

// expire forgets the metadata of blocks whose TTL ran out (the guard's
// entries are collected at the same time), so automatic blocks of many
// sources do not pile up.
func (bb *blockBook) expire(now time.Time) {
	bb.mu.Lock()
	defer bb.mu.Unlock()
	for p, m := range bb.entries {
		if !m.expires.IsZero() && !m.expires.After(now) {
			delete(bb.entries, p)
		}
	}
}

func (bb *blockBook) del(p netip.Prefix) {
	bb.mu.Lock()
	defer bb.mu.Unlock()
	delete(bb.entries, p.String())
}

// persistedBlock is one manual block as stored.
type persistedBlock struct {
	Prefix  string    `json:"prefix"`
	Reason  string    `json:"reason"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires,omitzero"`
}

const blocklistState = "blocklist"

func (bb *blockBook) manual() []persistedBlock {
	bb.mu.Lock()
	defer bb.mu.Unlock()
	var out []persistedBlock
	for p, m := range bb.entries {
		if m.manual {
			out = append(out, persistedBlock{Prefix: p, Reason: m.reason, Created: m.created, Expires: m.expires})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Prefix < out[j].Prefix })
	return out
}

// saveBlocklist writes the manual blocks when the user asked for them to
// persist.
func (a *Agent) saveBlocklist() {
	if !a.cfg.PersistBlocklist {
		return
	}
	data, err := json.Marshal(a.blocks.manual())
	if err == nil {
		err = a.store.SaveState(blocklistState, data)
	}
	if err != nil {
		a.log.Warn("persist blocklist", "err", err)
	}
}

// restoreBlocklist puts persisted manual blocks back, with what is left of
// their TTL; expired ones are dropped.
func (a *Agent) restoreBlocklist() error {
	if !a.cfg.PersistBlocklist || a.guard == nil {
		return nil
	}
	data, err := a.store.LoadState(blocklistState)
	if err != nil || data == nil {
		return err
	}
	var saved []persistedBlock
	if err := json.Unmarshal(data, &saved); err != nil {
		return fmt.Errorf("stored blocklist: %w", err)
	}
	now := time.Now()
	for _, b := range saved {
		p, err := netip.ParsePrefix(b.Prefix)
		if err != nil || (!b.Expires.IsZero() && !b.Expires.After(now)) {
			continue
		}
		var ttl time.Duration
		if !b.Expires.IsZero() {
			ttl = b.Expires.Sub(now)
		}
		a.activateGuard()
		if err := a.guard.Block(p, ttl, guard.ReasonManual); err != nil {
			return fmt.Errorf("restore block %s: %w", p, err)
		}
		a.blocks.put(p, blockMeta{reason: b.Reason, created: b.Created, expires: b.Expires, manual: true})
	}
	a.log.Info("blocklist restored", "entries", len(saved))
	a.saveBlocklist()
	return nil
}

// served is what the inventory holds of one process's calls.
type served struct {
	calls uint64
	proto map[string]bool
}

func (s served) protocols() []string {
	if len(s.proto) == 0 {
		return nil
	}
	return slices.Sorted(maps.Keys(s.proto))
}

// servedByPID credits each endpoint's calls and protocols to the processes
// that served it, so /v1/processes says which protocols of a process are
// decoded (an HTTP/2 or gRPC server is not a blind spot). An endpoint
// served by several processes credits its whole count to each: the
// inventory does not split counts per process.
func servedByPID(eps []inventory.Endpoint) map[uint32]served {
	out := map[uint32]served{}
	for i := range eps {
		e := &eps[i]
		for _, p := range e.Processes {
			s := out[p.PID]
			if s.proto == nil {
				s.proto = map[string]bool{}
			}
			s.calls += e.RequestCount
			for proto, n := range e.Protocols {
				if n > 0 {
					s.proto[proto] = true
				}
			}
			if len(e.Protocols) == 0 && e.Protocol != "" {
				s.proto[e.Protocol] = true
			}
			out[p.PID] = s
		}
	}
	return out
}

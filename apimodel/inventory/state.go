package inventory

import (
	"encoding/json"
	"errors"
	"fmt"
)

// stateVersion is bumped when the persisted form changes incompatibly.
const stateVersion = 1

type stateDoc struct {
	Version  int            `json:"version"`
	Services []serviceState `json:"services"`
}

type serviceState struct {
	Name string `json:"name"`
	Exe  string `json:"exe"`
	Port uint16 `json:"port"`
	// Learned lists the canonical prefixes of learned positions, so that
	// after a restart new values keep folding into the same templates.
	Learned   [][]string  `json:"learned,omitempty"`
	Endpoints []*endpoint `json:"endpoints"`
}

// ErrStateVersion is returned by RestoreState for state written by an
// incompatible version.
var ErrStateVersion = errors.New("unsupported inventory state version")

// MarshalState serialises the whole inventory, learned templates included.
func (inv *Inventory) MarshalState() ([]byte, error) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	doc := stateDoc{Version: stateVersion, Services: make([]serviceState, 0, len(inv.services))}
	for _, svc := range inv.services {
		ss := serviceState{Name: svc.Name, Exe: svc.Exe, Port: svc.Port,
			Endpoints: make([]*endpoint, 0, len(svc.endpoints))}
		collectLearned(svc.root, nil, &ss.Learned)
		for _, ep := range svc.endpoints {
			ss.Endpoints = append(ss.Endpoints, ep)
		}
		doc.Services = append(doc.Services, ss)
	}
	b, err := json.Marshal(&doc)
	if err != nil {
		return nil, fmt.Errorf("marshal inventory state: %w", err)
	}
	return b, nil
}

func collectLearned(n *node, prefix []string, out *[][]string) {
	if n.learned {
		*out = append(*out, append([]string{}, prefix...))
	}
	for k, c := range n.children {
		collectLearned(c, append(prefix, k), out)
	}
}

// RestoreState replaces the inventory's content with a MarshalState
// output. Bounds of the current Config apply: what does not fit is dropped
// and counted.
func (inv *Inventory) RestoreState(b []byte) error {
	var doc stateDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("decode inventory state: %w", err)
	}
	if doc.Version != stateVersion {
		return fmt.Errorf("%w: %d", ErrStateVersion, doc.Version)
	}
	services := map[serviceKey]*service{}
	total := 0
	for _, ss := range doc.Services {
		key := serviceKey{name: ss.Name, port: ss.Port}
		if _, dup := services[key]; dup {
			continue
		}
		if len(services) >= inv.cfg.MaxServices {
			inv.c.droppedServices.Add(1)
			continue
		}
		svc := &service{Name: ss.Name, Exe: ss.Exe, Port: ss.Port, root: &node{}, nodes: 1,
			endpoints: map[string]*endpoint{}}
		for _, prefix := range ss.Learned {
			if n := inv.insert(svc, prefix); n != nil {
				n.learned = true
			}
		}
		for _, ep := range ss.Endpoints {
			if ep == nil || ep.Method == "" {
				continue
			}
			if len(svc.endpoints) >= inv.cfg.MaxEndpoints || total >= inv.cfg.MaxTotalEndpoints ||
				inv.insert(svc, ep.Segs) == nil {
				inv.c.droppedEndpoints.Add(1)
				continue
			}
			svc.endpoints[endpointKey(ep.Method, ep.Segs)] = ep
			total++
		}
		services[key] = svc
	}
	inv.mu.Lock()
	inv.services = services
	inv.total = total
	clear(inv.paths) // its entries name the replaced services
	inv.mu.Unlock()
	return nil
}

// insert adds canonical segments to the trie without learning and returns
// the last node, or nil when the trie bound is hit.
func (inv *Inventory) insert(svc *service, segs []string) *node {
	n := svc.root
	for _, s := range segs {
		if n.learned && s != placeholder {
			s = placeholder
		}
		next := n.child(s)
		if next == nil {
			if svc.nodes >= inv.cfg.MaxTrieNodes {
				return nil
			}
			next = &node{}
			if n.children == nil {
				n.children = map[string]*node{}
			}
			n.children[s] = next
			svc.nodes++
			if s != placeholder {
				n.literals++
			}
		}
		n = next
	}
	return n
}

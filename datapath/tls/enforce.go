package tls

import (
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/apiwarden/apiwarden/datapath/enforce"
)

// Sizes of the sensor's own enforcement maps when no enforcer shares its
// maps: they are never written then (rule_count stays 0, so nothing
// matches), and the declared sizes (a 64 Ki-flow LRU, a 1 MiB ring) would
// only cost memory.
const (
	idleFlaggedFlows = 256
	idleEventRing    = 4096 // one page: the smallest ring buffer
)

// enforceOptions returns the load options that make the TLS programs use
// the enforcer's rule, flag and event maps, or shrinks the unused private
// copies when there is no enforcer.
func enforceOptions(spec *ebpf.CollectionSpec, e *enforce.Enforcer) (*ebpf.CollectionOptions, error) {
	if e == nil {
		spec.Maps["flagged_flows"].MaxEntries = idleFlaggedFlows
		spec.Maps["enforce_events"].MaxEntries = idleEventRing
		spec.Maps["hold_tls_read"].MaxEntries = idleFlaggedFlows
		spec.Maps["hold_tls_judged"].MaxEntries = idleFlaggedFlows
		return nil, nil
	}
	maps := e.Maps()
	for name := range maps {
		if spec.Maps[name] == nil {
			return nil, fmt.Errorf("share enforce map %s: not in the tls programs", name)
		}
	}
	return &ebpf.CollectionOptions{MapReplacements: maps}, nil
}

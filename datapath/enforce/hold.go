package enforce

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// MaxHoldPorts is how many server ports can be held at once
// (HOLD_MAX_PORTS in bpf/include/hold.h).
const MaxHoldPorts = 256

// SetHold configures protect mode's hold point: client->server data segments
// to one of ports get mark ORed into skb->mark at tcx ingress, which the
// agent's nftables rule queues to its verdict holder. mark 0 turns holding
// off (nothing is marked, whatever the ports). The ports are replaced
// before the mark is written, so turning holding on never marks a stale
// port set.
func (e *Enforcer) SetHold(mark uint32, ports []uint16) error {
	if len(ports) > MaxHoldPorts {
		return fmt.Errorf("%w: %d hold ports, at most %d", ErrRuleSet, len(ports), MaxHoldPorts)
	}
	want := map[uint16]bool{}
	for _, p := range ports {
		want[p] = true
	}
	var port uint16
	var one uint8
	var stale []uint16
	it := e.objs.HoldPorts.Iterate()
	for it.Next(&port, &one) {
		if !want[port] {
			stale = append(stale, port)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read hold ports: %w", err)
	}
	for _, p := range stale {
		if err := e.objs.HoldPorts.Delete(p); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete hold port %d: %w", p, err)
		}
	}
	for p := range want {
		if err := e.objs.HoldPorts.Put(p, uint8(1)); err != nil {
			return fmt.Errorf("write hold port %d: %w", p, err)
		}
	}
	if err := e.objs.HoldSettings.Put(uint32(0), &enforceHoldConfig{Mark: mark}); err != nil {
		return fmt.Errorf("write hold mark: %w", err)
	}
	return nil
}

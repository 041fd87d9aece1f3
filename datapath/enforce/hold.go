package enforce

import (
	"errors"
	"fmt"
	"net/netip"

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

// MaxHoldTLSFlows bounds the TLS flows whose responses can be held
// (HOLD_MAX_TLS_FLOWS in bpf/include/hold.h; LRU: past it the oldest flow
// is forgotten and its responses pass unheld).
const MaxHoldTLSFlows = 16384

// TLSRead returns the TLS stream offset past the request bytes the server
// end of client -> server has read, as the TLS read probe noted it; ok is
// false when the flow is not held (or was evicted).
func (e *Enforcer) TLSRead(client, server netip.AddrPort) (end uint32, ok bool) {
	k := flowKey(client, server)
	if err := e.objs.HoldTlsRead.Lookup(&k, &end); err != nil {
		return 0, false
	}
	return end, true
}

// SetTLSJudged tells the kernel that the decrypted request bytes of
// client -> server have been judged up to the stream offset end: response
// segments of the flow pass unmarked again until the server reads more.
func (e *Enforcer) SetTLSJudged(client, server netip.AddrPort, end uint32) error {
	k := flowKey(client, server)
	if err := e.objs.HoldTlsJudged.Put(&k, end); err != nil {
		return fmt.Errorf("tls judged %s->%s: %w", client, server, err)
	}
	return nil
}

// ForgetTLS drops a TLS flow's hold offsets (its socket closed).
func (e *Enforcer) ForgetTLS(client, server netip.AddrPort) {
	k := flowKey(client, server)
	_ = e.objs.HoldTlsRead.Delete(&k)
	_ = e.objs.HoldTlsJudged.Delete(&k)
}

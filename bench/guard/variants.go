package main

import (
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	"github.com/apiwarden/apiwarden/datapath/guard"
)

// variant is one way of dropping the flood at the attacker's host-side veth.
type variant interface {
	Name() string
	// Attach installs the drop and returns how it ended up attached
	// (e.g. "xdp-generic" after a native XDP failure).
	Attach() (string, error)
	Detach() error
	// Dropped returns the variant's own drop counter, when it has one, to
	// cross-check the interface counters.
	Dropped() (uint64, bool)
}

// noneVariant lets the flood through to the server: the cost of not dropping.
type noneVariant struct{}

func (noneVariant) Name() string            { return "none" }
func (noneVariant) Attach() (string, error) { return "-", nil }
func (noneVariant) Detach() error           { return nil }
func (noneVariant) Dropped() (uint64, bool) { return 0, false }

// trivialVariant is the floor: a tcx ingress program that is only
// "return TC_ACT_SHOT", so the hook itself is all that is measured.
type trivialVariant struct {
	ifindex int
	prog    *ebpf.Program
	l       link.Link
}

func newTrivial(ifindex int) (*trivialVariant, error) {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "awflood_drop",
		Type:         ebpf.SchedCLS,
		License:      "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2 /* TCX_DROP */), asm.Return()},
	})
	if err != nil {
		return nil, fmt.Errorf("load trivial drop program: %w", err)
	}
	return &trivialVariant{ifindex: ifindex, prog: prog}, nil
}

func (v *trivialVariant) Name() string { return "trivial-tcx" }

func (v *trivialVariant) Attach() (string, error) {
	l, err := link.AttachTCX(link.TCXOptions{Program: v.prog, Interface: v.ifindex, Attach: ebpf.AttachTCXIngress})
	if err != nil {
		return "", fmt.Errorf("attach trivial tcx: %w", err)
	}
	v.l = l
	return "tcx", nil
}

func (v *trivialVariant) Detach() error {
	if v.l == nil {
		return nil
	}
	err := v.l.Close()
	v.l = nil
	return err
}

func (v *trivialVariant) Dropped() (uint64, bool) { return 0, false }

func (v *trivialVariant) close() error { return errors.Join(v.Detach(), v.prog.Close()) }

// guardVariant is apiwarden's guard, as tcx or XDP, sharing one loaded guard.
type guardVariant struct {
	g       *guard.Guard
	ifindex int
	xdp     bool
}

func (v *guardVariant) Name() string {
	if v.xdp {
		return "guard-xdp"
	}
	return "guard-tcx"
}

func (v *guardVariant) Attach() (string, error) {
	if v.xdp {
		return v.g.AttachXDP(v.ifindex)
	}
	return "tcx", v.g.AttachTC(v.ifindex)
}

func (v *guardVariant) Detach() error { return v.g.Detach(v.ifindex) }

func (v *guardVariant) Dropped() (uint64, bool) {
	c, err := v.g.Counters()
	if err != nil {
		return 0, false
	}
	return c["dropped_blocklist"], true
}

// nftVariant is the incumbent: one nftables netdev ingress rule. It has no
// counter expression, as an operator's plain drop rule would not.
type nftVariant struct {
	table string
	dev   string
	src   netip.Addr
}

func (v *nftVariant) Name() string { return "nft-netdev" }

func (v *nftVariant) Attach() (string, error) {
	script := fmt.Sprintf("table netdev %[1]s {\n chain in {\n  type filter hook ingress device %[2]q priority 0;\n  ip saddr %[3]s drop\n }\n}\n",
		v.table, v.dev, v.src)
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("nft add table: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return "ingress", nil
}

func (v *nftVariant) Detach() error {
	out, err := exec.Command("nft", "list", "tables", "netdev").Output()
	if err != nil || !strings.Contains(string(out), v.table) {
		return nil
	}
	return sh("nft", "delete", "table", "netdev", v.table)
}

func (v *nftVariant) Dropped() (uint64, bool) { return 0, false }

// objVariant runs the guard from an ELF file instead of the committed
// object, to compare a candidate change of bpf/guard.c against the current
// guard in one run before regenerating it (-guard-obj).
type objVariant struct {
	coll    *ebpf.Collection
	ifindex int
	xdp     bool
	l       link.Link
}

// loadObj loads a guard ELF and blocks src/32 in it. The map layouts are
// those of bpf/include/guard_types.h.
func loadObj(path string, ifindex int, src netip.Addr) (*ebpf.Collection, error) {
	spec, err := ebpf.LoadCollectionSpec(path)
	if err != nil {
		return nil, fmt.Errorf("load guard object spec: %w", err)
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("load guard object: %+v", ve)
		}
		return nil, fmt.Errorf("load guard object: %w", err)
	}
	key := struct {
		Prefixlen uint32
		Addr      [4]byte
	}{32, src.As4()}
	val := struct {
		ExpiresNs uint64
		Reason    uint32
		Pad       uint32
	}{0, uint32(guard.ReasonManual), 0}
	m, ok := coll.Maps["guard_block_v4"]
	if !ok {
		coll.Close()
		return nil, errors.New("guard object has no guard_block_v4")
	}
	if err := m.Put(&key, &val); err != nil {
		coll.Close()
		return nil, fmt.Errorf("block in guard object: %w", err)
	}
	return coll, nil
}

func (v *objVariant) Name() string {
	if v.xdp {
		return "obj-xdp"
	}
	return "obj-tcx"
}

func (v *objVariant) Attach() (string, error) {
	var err error
	if v.xdp {
		v.l, err = link.AttachXDP(link.XDPOptions{Program: v.coll.Programs["guard_xdp"], Interface: v.ifindex, Flags: link.XDPDriverMode})
		if err != nil {
			return "", fmt.Errorf("attach object xdp: %w", err)
		}
		return "xdp-native", nil
	}
	v.l, err = link.AttachTCX(link.TCXOptions{Program: v.coll.Programs["guard_tc"], Interface: v.ifindex, Attach: ebpf.AttachTCXIngress})
	if err != nil {
		return "", fmt.Errorf("attach object tcx: %w", err)
	}
	return "tcx", nil
}

func (v *objVariant) Detach() error {
	if v.l == nil {
		return nil
	}
	err := v.l.Close()
	v.l = nil
	return err
}

func (v *objVariant) Dropped() (uint64, bool) {
	var per []uint64
	if err := v.coll.Maps["guard_counters"].Lookup(uint32(1) /* GUARD_CNT_DROP_BLOCKLIST */, &per); err != nil {
		return 0, false
	}
	var sum uint64
	for _, x := range per {
		sum += x
	}
	return sum, true
}

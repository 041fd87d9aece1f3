package tls

import (
	"fmt"
	"strings"
)

// probeKind says which program an attach point runs and how.
type probeKind uint8

const (
	probeLibEnter probeKind = iota // uprobe, tls_lib_enter
	probeLibRet                    // uretprobe, tls_lib_ret
	probeGoEnter                   // uprobe, tls_go_enter
	probeGoRet                     // uprobe on a RET instruction, tls_go_ret
)

func (k probeKind) String() string {
	return [...]string{"lib-enter", "lib-ret", "go-enter", "go-ret"}[k]
}

// Values of enum tls_dir and enum tls_mode in bpf/include/tls_types.h. The
// generated Go does not carry C enums, and the pair travels as the attach
// cookie, so they are restated here; TestCookieMatchesHeader keeps them true.
const (
	dirRead  = 0
	dirWrite = 1

	modeRetInt32  = 1
	modeRetEx     = 2
	modeRetInt64  = 3
	modeHandshake = 4
)

func cookie(dir, mode uint64) uint64 { return dir | mode<<8 }

// AttachPoint is one uprobe the sensor places, as reported by Sensor.Points.
type AttachPoint struct {
	Symbol string    // function it belongs to
	Addr   uint64    // virtual address of the probed instruction
	Offset uint64    // file offset handed to the kernel
	Kind   probeKind // program and probe type
	Cookie uint64    // direction and mode (cookie())
	Insn   string    // the probed instruction, disassembled
	// Slow is true when the kernel must single-step the instruction out of
	// line (~20x the cost of an emulated one on our VMs).
	Slow bool
}

func (p AttachPoint) String() string {
	speed := "fast"
	if p.Slow {
		speed = "slow"
	}
	return fmt.Sprintf("%s %s@%#x [%s] %s", p.Kind, p.Symbol, p.Addr, p.Insn, speed)
}

// plan is what one binary needs attached.
type plan struct {
	kind   string // "openssl", "gnutls", "go-tls"
	detail string
	// memBIO: the library is fed from a memory BIO (OpenSSL inside node),
	// so the socket fd comes from the thread's last read (tls_track_tgid).
	memBIO bool
	points []AttachPoint
}

// slowCount returns how many attach points hit the single-step path.
func (p *plan) slowCount() int {
	n := 0
	for _, a := range p.points {
		if a.Slow {
			n++
		}
	}
	return n
}

// point builds an attach point at vaddr, disassembling the instruction there
// to classify its cost.
func (ef *elfFile) point(sym string, vaddr uint64, kind probeKind, ck uint64) (AttachPoint, error) {
	off, err := ef.fileOffset(vaddr)
	if err != nil {
		return AttachPoint{}, fmt.Errorf("%s: %w", sym, err)
	}
	in, err := ef.firstInsn(vaddr)
	if err != nil {
		return AttachPoint{}, fmt.Errorf("%s: %w", sym, err)
	}
	return AttachPoint{
		Symbol: sym, Addr: vaddr, Offset: off, Kind: kind, Cookie: ck,
		Insn: strings.ToLower(in.String()), Slow: !emulated(in),
	}, nil
}

// enterAndRet returns the entry uprobe and uretprobe of a C function.
func (ef *elfFile) enterAndRet(sym string, vaddr, ck uint64) ([]AttachPoint, error) {
	enter, err := ef.point(sym, vaddr, probeLibEnter, ck)
	if err != nil {
		return nil, err
	}
	ret := enter
	ret.Kind = probeLibRet
	return []AttachPoint{enter, ret}, nil
}

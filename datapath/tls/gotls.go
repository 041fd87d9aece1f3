package tls

import (
	"debug/buildinfo"
	"debug/gosym"
	"fmt"
	"go/version"
	"io"

	"golang.org/x/arch/x86/x86asm"
)

// Go crypto/tls probing.
//
// Uretprobes must not be used on Go code: they overwrite the return address
// on the goroutine stack, which the runtime copies when it grows. So the
// sensor puts one uprobe at the entry of Read (arguments) and one where n
// is known, matched by the goroutine pointer in R14: the conditional jump
// that tests n right after the plaintext was copied (goReadDataPoint, an
// emulated instruction), or, when the compiled code has another shape, one
// at every RET (single-stepped: ~20 us a hit under load on our VM, a
// quarter of a Go HTTPS server's CPU in bench/http -proto https).
// Write gets only the entry probe and is emitted with n = len(b): it writes
// all of b unless the connection fails (then the stream is dead anyway),
// and RET probes are single-stepped, ~10 us each on our VMs.
//
// With the register ABI (Go >= 1.17) (*Conn).Read(b) enters with the
// receiver in RAX, b.ptr in RBX, b.len in RCX, and returns n in RAX.
//
// The socket fd is read from the receiver (layouts stable since Go 1.17,
// checked against go1.26's sources; bpf/tls.c holds the defaults):
//   tls.Conn{conn net.Conn, ...}  iface at +0: itab, then data ptr at +8
//   data = *net.TCPConn{conn{fd *netFD}}  -> *netFD at +0
//   netFD{pfd poll.FD, ...}; poll.FD{fdmu fdMutex{state uint64; rsema,
//   wsema uint32}; Sysfd int}  -> Sysfd at +16
// A tls.Conn over something other than a *net.TCPConn (a net.Pipe, a
// wrapper type) yields no socket; the kernel counts TLS_CNT_NOT_SOCKET.

const (
	goSymRead    = "crypto/tls.(*Conn).Read"
	goSymWrite   = "crypto/tls.(*Conn).Write"
	goSymMemmove = "runtime.memmove"
	// goMinVersion is the first release with the register ABI on amd64.
	goMinVersion = "go1.17"
)

// goFunc is a function's address range.
type goFunc struct{ entry, end uint64 }

// goFuncs looks the functions up in .symtab, or, in stripped binaries, in
// .gopclntab, which the runtime needs and so is never stripped.
func (ef *elfFile) goFuncs(names ...string) (map[string]goFunc, error) {
	out := map[string]goFunc{}
	for _, n := range names {
		if s, ok := ef.syms[n]; ok && s.Size > 0 {
			out[n] = goFunc{s.Value, s.Value + s.Size}
		}
	}
	if len(out) == len(names) {
		return out, nil
	}
	sec := ef.f.Section(".gopclntab")
	text := ef.f.Section(".text")
	if sec == nil || text == nil {
		return out, fmt.Errorf("no .gopclntab: %w", errNoSymbol)
	}
	data, err := sec.Data()
	if err != nil {
		return out, fmt.Errorf("read .gopclntab: %w", err)
	}
	tab, err := gosym.NewTable(nil, gosym.NewLineTable(data, text.Addr))
	if err != nil {
		return out, fmt.Errorf("parse .gopclntab: %w", err)
	}
	for _, n := range names {
		if fn := tab.LookupFunc(n); fn != nil {
			out[n] = goFunc{fn.Entry, fn.End}
		}
	}
	return out, nil
}

// goEntryPoint returns where to put the entry probe: the PUSH RBP after
// the stack-growth check when the prologue has the usual shape (the check
// reads only RSP/R14/R12 and leaves the argument registers alone, and a
// stack growth re-enters at the entry, so the point is still hit exactly
// once per call), else the entry itself (a CMP: single-stepped, slow).
func goEntryPoint(ins []insn) uint64 {
	for i, in := range ins {
		if i >= 4 {
			break
		}
		switch in.Op {
		case x86asm.PUSH:
			if in.Args[0] == x86asm.RBP {
				return in.addr
			}
			return ins[0].addr
		case x86asm.CMP, x86asm.JBE:
		case x86asm.LEA:
			if in.Args[0] != x86asm.R12 {
				return ins[0].addr
			}
		default:
			return ins[0].addr
		}
	}
	return ins[0].addr
}

// goTLSPlan finds crypto/tls in a Go executable. It returns errNoSymbol
// (wrapped) when the binary does not use crypto/tls.
func goTLSPlan(ef *elfFile, r io.ReaderAt) (*plan, error) {
	bi, err := buildinfo.Read(r)
	if err != nil {
		return nil, fmt.Errorf("go buildinfo: %w", err)
	}
	p := &plan{kind: "go-tls", detail: bi.GoVersion}
	if version.IsValid(bi.GoVersion) && version.Compare(bi.GoVersion, goMinVersion) < 0 {
		return nil, fmt.Errorf("%s before register ABI: %w", bi.GoVersion, errUnsupported)
	}
	if _, err := checkGoLayout(ef); err != nil {
		return nil, err
	}
	// One lookup for all three: in a stripped binary each goFuncs call
	// parses .gopclntab.
	fns, err := ef.goFuncs(goSymRead, goSymWrite, goSymMemmove)
	_, haveRead := fns[goSymRead]
	_, haveWrite := fns[goSymWrite]
	if !haveRead || !haveWrite {
		if err == nil {
			err = fmt.Errorf("crypto/tls: %w", errNoSymbol)
		}
		return nil, err
	}
	for _, fn := range []struct {
		sym string
		dir uint64
	}{{goSymRead, dirRead}, {goSymWrite, dirWrite}} {
		f := fns[fn.sym]
		code, err := ef.code(f.entry, f.end-f.entry)
		if err != nil {
			return nil, err
		}
		ins := decode(code, f.entry, 0)
		if len(ins) == 0 {
			return nil, fmt.Errorf("%s: undecodable", fn.sym)
		}
		enter, err := ef.point(fn.sym, goEntryPoint(ins), probeGoEnter, cookie(fn.dir, modeRetInt64))
		if err != nil {
			return nil, err
		}
		p.points = append(p.points, enter)
		if fn.dir == dirWrite {
			// Emitted at entry with n = len(b): see tls_go_enter.
			continue
		}
		// The data point: one emulated probe where n is known, instead
		// of a single-stepped one at every RET.
		if mm, ok := fns[goSymMemmove]; ok {
			if addr, reg, ok := goReadDataPoint(ins, mm.entry); ok {
				pt, err := ef.point(fn.sym, addr, probeGoRet, cookie(fn.dir, modeRetInt64)|uint64(reg)<<16)
				if err != nil {
					return nil, err
				}
				p.points = append(p.points, pt)
				continue
			}
		}
		rets := 0
		for _, in := range ins {
			if in.Op != x86asm.RET {
				continue
			}
			pt, err := ef.point(fn.sym, in.addr, probeGoRet, cookie(fn.dir, modeRetInt64))
			if err != nil {
				return nil, err
			}
			p.points = append(p.points, pt)
			rets++
		}
		if rets == 0 {
			return nil, fmt.Errorf("%s: no RET found", fn.sym)
		}
	}
	return p, nil
}

// Registers tls_go_ret can read n from (enum tls_reg in tls_types.h).
var goDataRegs = map[x86asm.Reg]uint8{
	x86asm.RAX: 0, x86asm.RBX: 1, x86asm.RCX: 2, x86asm.RDX: 3, x86asm.RSI: 4,
	x86asm.RDI: 5, x86asm.R8: 6, x86asm.R9: 7, x86asm.R10: 8, x86asm.R11: 9,
}

// goReadDataPoint finds where (*Conn).Read knows n without a RET probe.
// Read ends with the inlined bytes.(*Reader).Read of c.input:
//
//	n = copy(b, r.s[r.i:])   // CALL runtime.memmove (skipped when src == dst)
//	r.i += n                 // ADDQ Rn, off(Rx) (then maybe NOP padding)
//	if n != 0 && ...         // TESTQ Rn, Rn; Jcc
//
// and returns n. The Jcc is emulated by the kernel (no single step), every
// call that copies data passes it exactly once, the plaintext is in b by
// then, and Rn still holds n. The pattern must appear exactly once; any
// other shape (another compiler, an instrumented build) keeps the RET
// probes. Checked on go1.22 and go1.26 builds by the Go TLS tests.
func goReadDataPoint(ins []insn, memmove uint64) (uint64, uint8, bool) {
	var (
		found int
		addr  uint64
		reg   uint8
	)
	for i, in := range ins {
		if in.Op != x86asm.CALL {
			continue
		}
		rel, ok := in.Args[0].(x86asm.Rel)
		if !ok || in.addr+uint64(in.Len)+uint64(int64(rel)) != memmove {
			continue
		}
		// The ADD of n to the reader's offset, a few instructions on.
		for j := i + 1; j < len(ins) && j <= i+8; j++ {
			a := ins[j]
			if a.Op == x86asm.CALL || a.Op == x86asm.RET {
				break
			}
			if a.Op != x86asm.ADD {
				continue
			}
			_, dstMem := a.Args[0].(x86asm.Mem)
			rn, srcReg := a.Args[1].(x86asm.Reg)
			code, known := goDataRegs[rn]
			if !dstMem || !srcReg || !known {
				break
			}
			// Alignment padding may sit between the ADD and the test
			// (go1.22 puts a NOPW there).
			k := j + 1
			for k < len(ins) && ins[k].Op == x86asm.NOP {
				k++
			}
			if k+1 >= len(ins) {
				break
			}
			t, jc := ins[k], ins[k+1]
			if t.Op == x86asm.TEST && t.Args[0] == rn && t.Args[1] == rn && isJcc(jc.Op) && emulated(jc.Inst) {
				found++
				addr, reg = jc.addr, code
			}
			break
		}
	}
	return addr, reg, found == 1
}

func isJcc(op x86asm.Op) bool {
	switch op {
	case x86asm.JE, x86asm.JNE:
		return true
	}
	return false
}

package tls

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"

	"golang.org/x/arch/x86/x86asm"
)

// maxScanInsns bounds how far the analysers walk into a function when they
// look for a prologue end or an internal call: past it the pattern is not the
// one we know, and we fall back to the exported entry point.
const maxScanInsns = 16

// errNoSymbol reports a function that the binary does not define.
var (
	errNoSymbol    = errors.New("symbol not found")
	errUnsupported = errors.New("unsupported binary")
)

// elfFile is an opened ELF with its defined function symbols, both from
// .symtab and .dynsym (shared libraries only keep the latter).
type elfFile struct {
	f    *elf.File
	syms map[string]elf.Symbol
}

func openELF(r io.ReaderAt) (*elfFile, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("parse elf: %w", err)
	}
	if f.Machine != elf.EM_X86_64 {
		return nil, fmt.Errorf("elf machine %v: %w", f.Machine, errors.ErrUnsupported)
	}
	ef := &elfFile{f: f, syms: map[string]elf.Symbol{}}
	add := func(ss []elf.Symbol) {
		for _, s := range ss {
			if elf.ST_TYPE(s.Info) != elf.STT_FUNC || s.Section == elf.SHN_UNDEF || s.Value == 0 {
				continue
			}
			// Versioned dynamic names ("SSL_read@@OPENSSL_3.0.0") arrive
			// without the suffix from debug/elf; keep the first seen.
			if _, ok := ef.syms[s.Name]; !ok {
				ef.syms[s.Name] = s
			}
		}
	}
	if ss, err := f.Symbols(); err == nil {
		add(ss)
	}
	if ss, err := f.DynamicSymbols(); err == nil {
		add(ss)
	}
	return ef, nil
}

// fileOffset converts a virtual address to the file offset the kernel's
// uprobe API wants, through the executable PT_LOAD segment holding it.
func (ef *elfFile) fileOffset(vaddr uint64) (uint64, error) {
	for _, p := range ef.f.Progs {
		if p.Type != elf.PT_LOAD || p.Flags&elf.PF_X == 0 {
			continue
		}
		if vaddr >= p.Vaddr && vaddr < p.Vaddr+p.Memsz {
			return vaddr - p.Vaddr + p.Off, nil
		}
	}
	return 0, fmt.Errorf("address %#x in no executable segment", vaddr)
}

// code returns n bytes of machine code at vaddr.
func (ef *elfFile) code(vaddr, n uint64) ([]byte, error) {
	for _, p := range ef.f.Progs {
		if p.Type != elf.PT_LOAD || p.Flags&elf.PF_X == 0 {
			continue
		}
		if vaddr < p.Vaddr || vaddr >= p.Vaddr+p.Filesz {
			continue
		}
		if max := p.Vaddr + p.Filesz - vaddr; n > max {
			n = max
		}
		buf := make([]byte, n)
		if _, err := p.ReadAt(buf, int64(vaddr-p.Vaddr)); err != nil {
			return nil, fmt.Errorf("read code at %#x: %w", vaddr, err)
		}
		return buf, nil
	}
	return nil, fmt.Errorf("address %#x in no executable segment", vaddr)
}

// insn is one decoded instruction at a virtual address.
type insn struct {
	addr uint64
	x86asm.Inst
}

// decode disassembles code starting at vaddr, up to max instructions
// (0 = all). Undecodable bytes end the walk: the caller only trusts what it
// could read.
func decode(code []byte, vaddr uint64, max int) []insn {
	var out []insn
	for off := 0; off < len(code); {
		in, err := x86asm.Decode(code[off:], 64)
		if err != nil || in.Len == 0 {
			break
		}
		out = append(out, insn{addr: vaddr + uint64(off), Inst: in})
		off += in.Len
		if max > 0 && len(out) >= max {
			break
		}
	}
	return out
}

// emulated reports whether the kernel's x86 uprobe code runs this
// instruction without single-stepping it out of line. Single-stepping costs
// two traps; on our VMs a hit goes from ~0.5 us to ~10 us.
func emulated(in x86asm.Inst) bool {
	switch in.Op {
	case x86asm.NOP:
		// 1-byte nop and the 5-byte nop the kernel optimises to a call.
		return in.Len == 1 || in.Len == 5
	case x86asm.PUSH:
		_, isReg := in.Args[0].(x86asm.Reg)
		return isReg
	case x86asm.CALL, x86asm.JMP:
		_, isRel := in.Args[0].(x86asm.Rel)
		return isRel
	case x86asm.JA, x86asm.JAE, x86asm.JB, x86asm.JBE, x86asm.JE, x86asm.JNE,
		x86asm.JG, x86asm.JGE, x86asm.JL, x86asm.JLE, x86asm.JS, x86asm.JNS,
		x86asm.JO, x86asm.JNO, x86asm.JP, x86asm.JNP:
		return true
	}
	return false
}

// firstInsn returns the instruction at vaddr, for the slow-path check.
func (ef *elfFile) firstInsn(vaddr uint64) (x86asm.Inst, error) {
	code, err := ef.code(vaddr, 16)
	if err != nil {
		return x86asm.Inst{}, err
	}
	ins := decode(code, vaddr, 1)
	if len(ins) == 0 {
		return x86asm.Inst{}, fmt.Errorf("undecodable instruction at %#x", vaddr)
	}
	return ins[0].Inst, nil
}

// firstCallTarget returns the target of the first direct CALL in the first
// maxScanInsns instructions of the function at vaddr, if no RET or indirect
// jump comes before it.
func (ef *elfFile) firstCallTarget(vaddr uint64) (uint64, bool) {
	code, err := ef.code(vaddr, 128)
	if err != nil {
		return 0, false
	}
	for _, in := range decode(code, vaddr, maxScanInsns) {
		switch in.Op {
		case x86asm.RET:
			return 0, false
		case x86asm.JMP, x86asm.CALL:
			rel, ok := in.Args[0].(x86asm.Rel)
			if !ok {
				return 0, false
			}
			if in.Op == x86asm.CALL {
				return uint64(int64(in.addr) + int64(in.Len) + int64(rel)), true
			}
		}
	}
	return 0, false
}

// Package capture holds the plain Go values that the kernel side of apiwarden
// reports: payload chunks of TCP segments and TLS calls, socket life-cycle
// events and process events. datapath decodes ring-buffer records into these
// types; everything in apimodel consumes them without importing datapath, so
// the model is tested without root or a kernel.
package capture

import (
	"net/netip"
	"time"
)

// Source says where a chunk was seen.
type Source uint8

// Values mirror enum chunk_source in bpf/include/apiwarden_events.h.
const (
	SourceTCIngress Source = 1
	SourceTCEgress  Source = 2
	SourceTLSRead   Source = 3
	SourceTLSWrite  Source = 4
)

// IsTLS reports whether the chunk holds decrypted bytes from a TLS library.
func (s Source) IsTLS() bool { return s == SourceTLSRead || s == SourceTLSWrite }

func (s Source) String() string {
	switch s {
	case SourceTCIngress:
		return "tc-ingress"
	case SourceTCEgress:
		return "tc-egress"
	case SourceTLSRead:
		return "tls-read"
	case SourceTLSWrite:
		return "tls-write"
	}
	return "unknown"
}

// TCP flags carried by a Chunk (AW_TCP_* in the C header).
const (
	FlagFIN uint8 = 0x01
	FlagSYN uint8 = 0x02
	FlagRST uint8 = 0x04
	FlagPSH uint8 = 0x08
	FlagACK uint8 = 0x10
	// FlagSkipped is not a TCP flag: the chunk's missing tail (PayloadLen -
	// len(Data)) was past its message's copy budget, skipped on purpose.
	FlagSkipped uint8 = 0x80
)

// FlowKey is one direction of one TCP connection: Src sent the bytes.
type FlowKey struct {
	Src netip.AddrPort
	Dst netip.AddrPort
}

// Reverse returns the key of the opposite direction.
func (k FlowKey) Reverse() FlowKey { return FlowKey{Src: k.Dst, Dst: k.Src} }

// Chunk is a bounded copy of the payload of one TCP segment or TLS call.
type Chunk struct {
	Time time.Time
	Key  FlowKey
	// Seq is the TCP sequence number of Data[0]; for TLS chunks it is the
	// offset of Data[0] in the decrypted stream (mod 2^32).
	Seq uint32
	// Data is the captured payload. It may be shorter than PayloadLen when
	// the kernel truncated the copy; the missing tail is a gap.
	Data       []byte
	PayloadLen uint32
	Flags      uint8
	Source     Source
	Ifindex    uint32
	// PID and ConnID identify the process and its connection for TLS chunks
	// (ConnID is the socket fd for Go, the socket's address with bit 31 set
	// for C libraries; only compared); both are zero for TC chunks.
	PID    uint32
	ConnID uint32
}

// SockEventKind mirrors enum sock_event_kind.
type SockEventKind uint8

const (
	SockListen  SockEventKind = 1
	SockConnect SockEventKind = 2
	SockAccept  SockEventKind = 3
	SockClose   SockEventKind = 4
)

// SockEvent reports a socket life-cycle step with the process that made it.
// Local is this host's side of the socket.
type SockEvent struct {
	Time     time.Time
	Kind     SockEventKind
	Local    netip.AddrPort
	Remote   netip.AddrPort
	TGID     uint32
	PID      uint32
	NetNS    uint32
	CgroupID uint64
	Comm     string
}

// ProcEventKind mirrors enum proc_event_kind.
type ProcEventKind uint8

const (
	ProcExec ProcEventKind = 1
	ProcExit ProcEventKind = 2
)

// ProcEvent reports a process start (exec) or end (exit).
type ProcEvent struct {
	Time     time.Time
	Kind     ProcEventKind
	TGID     uint32
	PPID     uint32
	CgroupID uint64
	Comm     string
	Filename string
}

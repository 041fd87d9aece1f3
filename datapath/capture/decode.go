package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	apicap "github.com/apiwarden/apiwarden/apimodel/capture"
)

// Layout of struct chunk_event, taken from the bpf2go-generated type so the
// C header stays the one definition; decode reads the record bytes at these
// offsets instead of casting, so a short or odd record cannot panic.
const (
	// MaxChunkData is MAX_CHUNK_DATA: the most payload one record carries.
	MaxChunkData = len(captureChunkEvent{}.Data)
	// headerLen is offsetof(struct chunk_event, data): a record is
	// headerLen + len bytes.
	headerLen = int(unsafe.Offsetof(captureChunkEvent{}.Data))

	offTs         = int(unsafe.Offsetof(captureChunkEvent{}.TsNs))
	offKey        = int(unsafe.Offsetof(captureChunkEvent{}.Key))
	offSaddr      = offKey + int(unsafe.Offsetof(captureFlowKey{}.Saddr))
	offDaddr      = offKey + int(unsafe.Offsetof(captureFlowKey{}.Daddr))
	offSport      = offKey + int(unsafe.Offsetof(captureFlowKey{}.Sport))
	offDport      = offKey + int(unsafe.Offsetof(captureFlowKey{}.Dport))
	offFamily     = offKey + int(unsafe.Offsetof(captureFlowKey{}.Family))
	offSeq        = int(unsafe.Offsetof(captureChunkEvent{}.Seq))
	offLen        = int(unsafe.Offsetof(captureChunkEvent{}.Len))
	offPayloadLen = int(unsafe.Offsetof(captureChunkEvent{}.PayloadLen))
	offIfindex    = int(unsafe.Offsetof(captureChunkEvent{}.Ifindex))
	offPid        = int(unsafe.Offsetof(captureChunkEvent{}.Pid))
	offConnID     = int(unsafe.Offsetof(captureChunkEvent{}.ConnId))
	offFlags      = int(unsafe.Offsetof(captureChunkEvent{}.TcpFlags))
	offSource     = int(unsafe.Offsetof(captureChunkEvent{}.Source))
)

// AF_* values of flow_key.family (AW_AF_INET, AW_AF_INET6).
const (
	afInet  = 2
	afInet6 = 10
)

// Decode errors. Each makes the record count as a decode error; none panics.
var (
	ErrShortRecord = errors.New("record shorter than chunk header")
	ErrBadLength   = errors.New("chunk length exceeds record")
	ErrBadFamily   = errors.New("unknown address family")
)

// Clock turns bpf_ktime_get_ns values (CLOCK_MONOTONIC) into wall time. The
// offset is taken once: a later wall-clock step shifts new events, which is
// what an operator reading timestamps expects, only after a restart.
type Clock struct {
	offsetNs int64 // realtime - monotonic at construction
}

// NewClock reads both clocks back to back and remembers their difference.
func NewClock() (Clock, error) {
	var mono, real unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono); err != nil {
		return Clock{}, fmt.Errorf("read monotonic clock: %w", err)
	}
	if err := unix.ClockGettime(unix.CLOCK_REALTIME, &real); err != nil {
		return Clock{}, fmt.Errorf("read realtime clock: %w", err)
	}
	return Clock{offsetNs: real.Nano() - mono.Nano()}, nil
}

// ClockWithOffset builds a Clock with a known offset, for tests and replay.
func ClockWithOffset(offsetNs int64) Clock { return Clock{offsetNs: offsetNs} }

// Wall converts a monotonic kernel timestamp to wall time.
func (c Clock) Wall(monoNs uint64) time.Time {
	return time.Unix(0, int64(monoNs)+c.offsetNs)
}

// DecodeChunk parses one chunk_event record. Data is copied: rec may be a
// reused ring-buffer buffer. TLS sensors emit the same record, so they can
// share this decoder.
func DecodeChunk(rec []byte, clk Clock) (apicap.Chunk, error) {
	if len(rec) < headerLen {
		return apicap.Chunk{}, fmt.Errorf("decode chunk (%d bytes): %w", len(rec), ErrShortRecord)
	}
	le := binary.LittleEndian // bpf2go target is little-endian (bpfel)
	n := le.Uint32(rec[offLen:])
	if uint64(n) > uint64(len(rec)-headerLen) || int(n) > MaxChunkData {
		return apicap.Chunk{}, fmt.Errorf("decode chunk (len %d, record %d bytes): %w", n, len(rec), ErrBadLength)
	}
	var src, dst netip.Addr
	switch rec[offFamily] {
	case afInet:
		src = netip.AddrFrom4([4]byte(rec[offSaddr : offSaddr+4]))
		dst = netip.AddrFrom4([4]byte(rec[offDaddr : offDaddr+4]))
	case afInet6:
		// An IPv4-mapped address is the IPv4 peer of a dual-stack socket
		// (TLS probes read sockets): one spelling per address.
		src = netip.AddrFrom16([16]byte(rec[offSaddr : offSaddr+16])).Unmap()
		dst = netip.AddrFrom16([16]byte(rec[offDaddr : offDaddr+16])).Unmap()
	default:
		return apicap.Chunk{}, fmt.Errorf("decode chunk (family %d): %w", rec[offFamily], ErrBadFamily)
	}
	var data []byte
	if n > 0 {
		data = make([]byte, n)
		copy(data, rec[headerLen:headerLen+int(n)])
	}
	return apicap.Chunk{
		Time: clk.Wall(le.Uint64(rec[offTs:])),
		Key: apicap.FlowKey{
			Src: netip.AddrPortFrom(src, le.Uint16(rec[offSport:])),
			Dst: netip.AddrPortFrom(dst, le.Uint16(rec[offDport:])),
		},
		Seq:        le.Uint32(rec[offSeq:]),
		Data:       data,
		PayloadLen: le.Uint32(rec[offPayloadLen:]),
		Flags:      rec[offFlags],
		Source:     apicap.Source(rec[offSource]),
		Ifindex:    le.Uint32(rec[offIfindex:]),
		PID:        le.Uint32(rec[offPid:]),
		ConnID:     le.Uint32(rec[offConnID:]),
	}, nil
}

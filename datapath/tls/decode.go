package tls

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
	"unsafe"

	"github.com/apiwarden/apiwarden/apimodel/capture"
)

// chunkHeaderSize is the part of struct chunk_event before data[]: a ring
// buffer record is the header plus len bytes of data.
const chunkHeaderSize = int(unsafe.Offsetof(tlsBpfChunkEvent{}.Data))

// Offsets into a raw record, taken from the bpf2go type so they follow the
// C header.
var (
	offTs      = int(unsafe.Offsetof(tlsBpfChunkEvent{}.TsNs))
	offKey     = int(unsafe.Offsetof(tlsBpfChunkEvent{}.Key))
	offSeq     = int(unsafe.Offsetof(tlsBpfChunkEvent{}.Seq))
	offLen     = int(unsafe.Offsetof(tlsBpfChunkEvent{}.Len))
	offPayload = int(unsafe.Offsetof(tlsBpfChunkEvent{}.PayloadLen))
	offPid     = int(unsafe.Offsetof(tlsBpfChunkEvent{}.Pid))
	offConn    = int(unsafe.Offsetof(tlsBpfChunkEvent{}.ConnId))
	offSource  = int(unsafe.Offsetof(tlsBpfChunkEvent{}.Source))
)

var errShortRecord = errors.New("short chunk record")

// decodeChunk turns one ring buffer record into a capture.Chunk. bootTime is
// the wall-clock time of monotonic zero, to convert bpf_ktime_get_ns. The
// returned Data aliases raw.
func decodeChunk(raw []byte, bootTime time.Time) (capture.Chunk, error) {
	if len(raw) < chunkHeaderSize {
		return capture.Chunk{}, fmt.Errorf("%w: %d bytes", errShortRecord, len(raw))
	}
	le := binary.LittleEndian
	n := int(le.Uint32(raw[offLen:]))
	if n > len(raw)-chunkHeaderSize {
		return capture.Chunk{}, fmt.Errorf("%w: len %d, record %d", errShortRecord, n, len(raw))
	}
	k := raw[offKey:]
	var key capture.FlowKey
	sport, dport := le.Uint16(k[32:]), le.Uint16(k[34:])
	switch k[36] {
	case 2: // AW_AF_INET
		key.Src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(k[0:4])), sport)
		key.Dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(k[16:20])), dport)
	case 10: // AW_AF_INET6
		key.Src = netip.AddrPortFrom(netip.AddrFrom16([16]byte(k[0:16])).Unmap(), sport)
		key.Dst = netip.AddrPortFrom(netip.AddrFrom16([16]byte(k[16:32])).Unmap(), dport)
	}
	return capture.Chunk{
		Time:       bootTime.Add(time.Duration(le.Uint64(raw[offTs:]))),
		Key:        key,
		Seq:        le.Uint32(raw[offSeq:]),
		Data:       raw[chunkHeaderSize : chunkHeaderSize+n],
		PayloadLen: le.Uint32(raw[offPayload:]),
		Source:     capture.Source(raw[offSource]),
		PID:        le.Uint32(raw[offPid:]),
		ConnID:     le.Uint32(raw[offConn:]),
	}, nil
}

// MaxChunkData is the most plaintext bytes one Chunk carries
// (MAX_CHUNK_DATA); a TLS call moving more is split into several chunks.
const MaxChunkData = len(tlsBpfChunkEvent{}.Data)

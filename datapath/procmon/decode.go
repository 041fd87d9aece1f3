package procmon

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
	"unsafe"

	"github.com/apiwarden/apiwarden/apimodel/capture"
)

// Record kinds in the ring buffer header (enum procmon_record_type).
const (
	recProc = uint32(procmonProcmonRecordTypePROCMON_REC_PROC)
	recSock = uint32(procmonProcmonRecordTypePROCMON_REC_SOCK)
)

var (
	hdrSize       = int(unsafe.Sizeof(procmonProcmonHdr{}))
	procEventSize = int(unsafe.Sizeof(procmonAwProcEvent{}))
	sockEventSize = int(unsafe.Sizeof(procmonSockEvent{}))
)

// errShortRecord means a ring buffer record is smaller than its kind's struct:
// the object file and the Go bindings disagree, which go generate fixes.
var errShortRecord = errors.New("short record")

// clock turns bpf_ktime_get_ns() stamps (CLOCK_MONOTONIC) into wall time.
// The offset is taken once; NTP slews after that shift times by at most
// milliseconds, which attribution does not care about.
type clock struct{ bootWall time.Time }

func (c clock) wall(ktimeNS uint64) time.Time {
	return c.bootWall.Add(time.Duration(ktimeNS))
}

// decoded is one ring buffer record: exactly one of proc/sock is set.
type decoded struct {
	proc *capture.ProcEvent
	sock *capture.SockEvent
}

// decodeRecord parses one raw ring buffer record.
func decodeRecord(raw []byte, c clock) (decoded, error) {
	if len(raw) < hdrSize {
		return decoded{}, fmt.Errorf("record header: %w", errShortRecord)
	}
	typ := binary.LittleEndian.Uint32(raw)
	body := raw[hdrSize:]
	switch typ {
	case recProc:
		ev, err := decodeProc(body, c)
		if err != nil {
			return decoded{}, err
		}
		return decoded{proc: &ev}, nil
	case recSock:
		ev, err := decodeSock(body, c)
		if err != nil {
			return decoded{}, err
		}
		return decoded{sock: &ev}, nil
	}
	return decoded{}, fmt.Errorf("unknown record type %d", typ)
}

func decodeProc(b []byte, c clock) (capture.ProcEvent, error) {
	var raw procmonAwProcEvent
	if len(b) < procEventSize {
		return capture.ProcEvent{}, fmt.Errorf("proc event: %w", errShortRecord)
	}
	if _, err := binary.Decode(b[:procEventSize], binary.LittleEndian, &raw); err != nil {
		return capture.ProcEvent{}, fmt.Errorf("proc event: %w", err)
	}
	return capture.ProcEvent{
		Time:     c.wall(raw.TsNs),
		Kind:     capture.ProcEventKind(raw.Kind),
		TGID:     raw.Tgid,
		PPID:     raw.Ppid,
		CgroupID: raw.CgroupId,
		Comm:     cString(raw.Comm[:]),
		Filename: cString(raw.Filename[:]),
	}, nil
}

func decodeSock(b []byte, c clock) (capture.SockEvent, error) {
	var raw procmonSockEvent
	if len(b) < sockEventSize {
		return capture.SockEvent{}, fmt.Errorf("sock event: %w", errShortRecord)
	}
	if _, err := binary.Decode(b[:sockEventSize], binary.LittleEndian, &raw); err != nil {
		return capture.SockEvent{}, fmt.Errorf("sock event: %w", err)
	}
	k := raw.Key
	return capture.SockEvent{
		Time:     c.wall(raw.TsNs),
		Kind:     capture.SockEventKind(raw.Kind),
		Local:    addrPort(k.Family, k.Saddr, k.Sport),
		Remote:   addrPort(k.Family, k.Daddr, k.Dport),
		TGID:     raw.Tgid,
		PID:      raw.Pid,
		NetNS:    raw.Netns,
		CgroupID: raw.CgroupId,
		Comm:     cString(raw.Comm[:]),
	}, nil
}

// addrPort builds an address from a flow_key half. IPv4-mapped IPv6
// addresses (a dual-stack socket serving an IPv4 peer) are unmapped so they
// match what the packet path sees.
func addrPort(family uint8, a [16]uint8, port uint16) netip.AddrPort {
	var ip netip.Addr
	switch family {
	case afInet:
		ip = netip.AddrFrom4([4]byte(a[:4]))
	case afInet6:
		ip = netip.AddrFrom16(a).Unmap()
	default:
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ip, port)
}

// Address families as in AW_AF_INET / AW_AF_INET6.
const (
	afInet  = 2
	afInet6 = 10
)

// cString converts a NUL-terminated C char array.
func cString(s []int8) string {
	b := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(s))
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

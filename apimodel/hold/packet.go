package hold

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/apiwarden/apiwarden/apimodel/capture"
)

// ParsePacket reads the flow and the sequence range of a queued packet from
// its first bytes (an IPv4 or IPv6 header without extension headers, then
// TCP). The lengths come from the IP header, so a copy of the headers is
// enough, and a GSO packet handed over whole counts all its bytes.
func ParsePacket(id uint32, b []byte, received time.Time) (Packet, bool) {
	if len(b) < 1 {
		return Packet{}, false
	}
	var src, dst netip.Addr
	var l4, total int
	switch b[0] >> 4 {
	case 4:
		if len(b) < 20 || b[9] != 6 {
			return Packet{}, false
		}
		l4 = int(b[0]&0x0f) * 4
		total = int(binary.BigEndian.Uint16(b[2:]))
		src = netip.AddrFrom4([4]byte(b[12:16]))
		dst = netip.AddrFrom4([4]byte(b[16:20]))
	case 6:
		if len(b) < 40 || b[6] != 6 {
			return Packet{}, false
		}
		l4 = 40
		total = 40 + int(binary.BigEndian.Uint16(b[4:]))
		src = netip.AddrFrom16([16]byte(b[8:24]))
		dst = netip.AddrFrom16([16]byte(b[24:40]))
	default:
		return Packet{}, false
	}
	if l4 < 20 || len(b) < l4+20 {
		return Packet{}, false
	}
	tcp := b[l4:]
	doff := int(tcp[12]>>4) * 4
	if doff < 20 || l4+doff > total {
		return Packet{}, false
	}
	seq := binary.BigEndian.Uint32(tcp[4:])
	return Packet{
		ID: id,
		Key: capture.FlowKey{
			Src: netip.AddrPortFrom(src, binary.BigEndian.Uint16(tcp[0:])),
			Dst: netip.AddrPortFrom(dst, binary.BigEndian.Uint16(tcp[2:])),
		},
		Seq:      seq,
		End:      seq + uint32(total-l4-doff),
		Received: received,
	}, true
}

package capture

import (
	"encoding/binary"
	"net/netip"
)

// Hand-built test packets: Ethernet + IPv4/IPv6 + TCP with no checksums
// (tc programs never verify them). Small enough to read, no gopacket.

type tcpSeg struct {
	src, dst   netip.AddrPort
	seq        uint32
	flags      uint8 // AW_TCP_* / capture.Flag*
	payload    []byte
	ipOptions  int  // IPv4 option bytes (multiple of 4)
	hopByHop   bool // IPv6: prepend an 8-byte hop-by-hop header
	fragOffset uint16
	padTo      int // pad the frame with zeros to this size (Ethernet minimum)
}

const (
	etherTypeIPv4 = 0x0800
	etherTypeIPv6 = 0x86DD
	etherTypeARP  = 0x0806
	protoTCP      = 6
	protoUDP      = 17
)

func ethHeader(etherType uint16) []byte {
	b := make([]byte, 14) // zero MACs, like loopback
	binary.BigEndian.PutUint16(b[12:], etherType)
	return b
}

func tcpHeader(s tcpSeg) []byte {
	b := make([]byte, 20)
	binary.BigEndian.PutUint16(b[0:], s.src.Port())
	binary.BigEndian.PutUint16(b[2:], s.dst.Port())
	binary.BigEndian.PutUint32(b[4:], s.seq)
	b[12] = 5 << 4
	b[13] = s.flags
	binary.BigEndian.PutUint16(b[14:], 65535)
	return b
}

func (s tcpSeg) bytes() []byte {
	l4 := append(tcpHeader(s), s.payload...)
	var pkt []byte
	if s.src.Addr().Is4() {
		pkt = append(ethHeader(etherTypeIPv4), ipv4Header(s.src.Addr(), s.dst.Addr(), protoTCP, s.ipOptions, s.fragOffset, len(l4))...)
	} else {
		next := uint8(protoTCP)
		var ext []byte
		if s.hopByHop {
			ext = []byte{protoTCP, 0, 1, 4, 0, 0, 0, 0} // PadN option
			next = 0
		}
		pkt = append(ethHeader(etherTypeIPv6), ipv6Header(s.src.Addr(), s.dst.Addr(), next, len(ext)+len(l4))...)
		pkt = append(pkt, ext...)
	}
	pkt = append(pkt, l4...)
	for len(pkt) < s.padTo {
		pkt = append(pkt, 0)
	}
	return pkt
}

func ipv4Header(src, dst netip.Addr, proto uint8, optLen int, fragOffset uint16, l4Len int) []byte {
	hl := 20 + optLen
	b := make([]byte, hl)
	b[0] = 0x40 | uint8(hl/4)
	binary.BigEndian.PutUint16(b[2:], uint16(hl+l4Len))
	binary.BigEndian.PutUint16(b[6:], fragOffset&0x1FFF)
	b[8] = 64
	b[9] = proto
	s4, d4 := src.As4(), dst.As4()
	copy(b[12:], s4[:])
	copy(b[16:], d4[:])
	for i := 20; i < hl; i++ {
		b[i] = 1 // NOP options
	}
	return b
}

func ipv6Header(src, dst netip.Addr, next uint8, plen int) []byte {
	b := make([]byte, 40)
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], uint16(plen))
	b[6] = next
	b[7] = 64
	s16, d16 := src.As16(), dst.As16()
	copy(b[8:], s16[:])
	copy(b[24:], d16[:])
	return b
}

func udpPacket() []byte {
	udp := make([]byte, 8+5)
	binary.BigEndian.PutUint16(udp[0:], 5353)
	binary.BigEndian.PutUint16(udp[2:], 53)
	binary.BigEndian.PutUint16(udp[4:], uint16(len(udp)))
	src, dst := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	return append(append(ethHeader(etherTypeIPv4), ipv4Header(src, dst, protoUDP, 0, 0, len(udp))...), udp...)
}

func arpPacket() []byte {
	return append(ethHeader(etherTypeARP), make([]byte, 28)...)
}

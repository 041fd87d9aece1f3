// Package nfqueue is apiwarden's verdict queue: it binds an NFQUEUE queue,
// receives the packets the kernel hands it (only their headers are copied)
// and sends each one's verdict back (accept or drop). It also installs the
// nftables rule that queues the packets protect mode's tcx program marked
// (rule.go).
//
// The client is written by hand on github.com/mdlayher/netlink because the
// Go NFQUEUE library (github.com/florianl/go-nfqueue) is not available from
// the module proxy this project builds with, and the part of the protocol
// needed here is small: one bind, three settings, a packet message and a
// verdict message (include/uapi/linux/netfilter/nfnetlink_queue.h).
package nfqueue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Netlink constants of nfnetlink_queue (uapi). x/sys/unix has the subsystem
// and a few attributes, not the queue's messages and settings.
const (
	nfnlSubsysQueue = 3

	msgPacket  = 0 // NFQNL_MSG_PACKET
	msgVerdict = 1 // NFQNL_MSG_VERDICT
	msgConfig  = 2 // NFQNL_MSG_CONFIG

	cfgCmd    = 1 // NFQA_CFG_CMD
	cfgParams = 2 // NFQA_CFG_PARAMS
	cfgMaxLen = 3 // NFQA_CFG_QUEUE_MAXLEN
	cfgMask   = 4 // NFQA_CFG_MASK
	cfgFlags  = 5 // NFQA_CFG_FLAGS

	cmdBind = 1 // NFQNL_CFG_CMD_BIND

	copyPacket = 2 // NFQNL_COPY_PACKET

	flagFailOpen = 0x01 // NFQA_CFG_F_FAIL_OPEN: over maxlen, accept
	flagGSO      = 0x04 // NFQA_CFG_F_GSO: hand over GSO packets whole

	attrPacketHdr  = 1  // NFQA_PACKET_HDR
	attrVerdictHdr = 2  // NFQA_VERDICT_HDR
	attrMark       = 3  // NFQA_MARK
	attrIfIndexIn  = 5  // NFQA_IFINDEX_INDEV
	attrPayload    = 10 // NFQA_PAYLOAD

	verdictDrop   = 0 // NF_DROP
	verdictAccept = 1 // NF_ACCEPT
)

// Config sets up a queue.
type Config struct {
	// Num is the queue number the nftables rule queues to.
	Num uint16
	// MaxLen bounds the packets the kernel keeps waiting for a verdict;
	// beyond it the kernel accepts them (fail open).
	MaxLen uint32
	// CopyRange is how many bytes of each packet are copied to userspace
	// (headers are enough for a verdict by flow and sequence number).
	CopyRange uint32
}

// Packet is one queued packet.
type Packet struct {
	ID      uint32
	Mark    uint32
	Ifindex uint32
	// Data is the start of the IP packet (up to CopyRange bytes); valid
	// only during the callback.
	Data []byte
	// Received is when the agent read it.
	Received time.Time
}

// Queue is a bound NFQUEUE queue.
type Queue struct {
	c      *netlink.Conn
	num    uint16
	closed atomic.Bool
}

// ErrNotSupported is wrapped when the kernel has no NFQUEUE support.
var ErrNotSupported = errors.New("nfnetlink_queue not supported")

// Open binds queue cfg.Num in the caller's network namespace. Only one
// process may bind a queue number.
func Open(cfg Config) (*Queue, error) {
	if cfg.MaxLen == 0 {
		cfg.MaxLen = 1024
	}
	if cfg.CopyRange == 0 {
		cfg.CopyRange = 128
	}
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return nil, fmt.Errorf("nfqueue netlink socket: %w", err)
	}
	// A burst beyond the socket buffer must not break the receive loop
	// (ENOBUFS): the kernel drops what does not fit, TCP resends it.
	_ = c.SetOption(netlink.NoENOBUFS, true)
	_ = c.SetReadBuffer(4 << 20)
	q := &Queue{c: c, num: cfg.Num}

	cmd := []byte{cmdBind, 0, 0, 0} // command, pad, pf (unused on bind)
	params := make([]byte, 5)
	binary.BigEndian.PutUint32(params, cfg.CopyRange)
	params[4] = copyPacket
	flags := make([]byte, 4)
	binary.BigEndian.PutUint32(flags, flagFailOpen|flagGSO)
	maxLen := make([]byte, 4)
	binary.BigEndian.PutUint32(maxLen, cfg.MaxLen)
	steps := []struct {
		what  string
		attrs []netlink.Attribute
	}{
		{"bind", []netlink.Attribute{{Type: cfgCmd, Data: cmd}}},
		{"copy mode", []netlink.Attribute{{Type: cfgParams, Data: params}}},
		{"max length", []netlink.Attribute{{Type: cfgMaxLen, Data: maxLen}}},
		{"flags", []netlink.Attribute{{Type: cfgFlags, Data: flags}, {Type: cfgMask, Data: flags}}},
	}
	for _, s := range steps {
		if err := q.config(s.attrs); err != nil {
			c.Close()
			if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EPROTONOSUPPORT) {
				return nil, fmt.Errorf("nfqueue %s: %w: %v", s.what, ErrNotSupported, err)
			}
			if errors.Is(err, os.ErrPermission) {
				return nil, fmt.Errorf("nfqueue %s (queue %d bound by another process?): %w", s.what, cfg.Num, err)
			}
			return nil, fmt.Errorf("nfqueue %s: %w", s.what, err)
		}
	}
	return q, nil
}

// nfgen is the nfgenmsg header: family, version, resource id (the queue).
func (q *Queue) nfgen() []byte {
	b := []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0}
	binary.BigEndian.PutUint16(b[2:], q.num)
	return b
}

func (q *Queue) config(attrs []netlink.Attribute) error {
	data, err := netlink.MarshalAttributes(attrs)
	if err != nil {
		return err
	}
	_, err = q.c.Execute(netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(nfnlSubsysQueue<<8 | msgConfig),
			Flags: netlink.Request | netlink.Acknowledge,
		},
		Data: append(q.nfgen(), data...),
	})
	return err
}

// Run receives packets and calls fn for each until Close. fn runs on the
// receiving goroutine; it must hand long waits elsewhere and call Verdict
// (from any goroutine) exactly once per packet.
func (q *Queue) Run(fn func(Packet)) error {
	for {
		msgs, err := q.c.Receive()
		if err != nil {
			if q.closed.Load() || errors.Is(err, os.ErrClosed) {
				return nil
			}
			// ENOBUFS: a burst overflowed the socket. ENOENT: the
			// kernel's answer to a verdict for a packet it no longer
			// holds (already let go). Neither ends the queue.
			if errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.ENOENT) {
				continue
			}
			return fmt.Errorf("nfqueue receive: %w", err)
		}
		now := time.Now()
		for _, m := range msgs {
			if m.Header.Type != netlink.HeaderType(nfnlSubsysQueue<<8|msgPacket) || len(m.Data) < 4 {
				continue
			}
			p, ok := decodePacket(m.Data[4:])
			if !ok {
				continue
			}
			p.Received = now
			fn(p)
		}
	}
}

// decodePacket reads the attributes of one NFQNL_MSG_PACKET.
func decodePacket(b []byte) (Packet, bool) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return Packet{}, false
	}
	ad.ByteOrder = binary.BigEndian
	var p Packet
	var haveID bool
	for ad.Next() {
		switch ad.Type() {
		case attrPacketHdr:
			if d := ad.Bytes(); len(d) >= 4 {
				p.ID = binary.BigEndian.Uint32(d)
				haveID = true
			}
		case attrMark:
			p.Mark = ad.Uint32()
		case attrIfIndexIn:
			p.Ifindex = ad.Uint32()
		case attrPayload:
			p.Data = ad.Bytes()
		}
	}
	return p, haveID && ad.Err() == nil
}

// Accept lets packet id go on through the stack.
func (q *Queue) Accept(id uint32) error { return q.verdict(id, verdictAccept) }

// Drop discards packet id.
func (q *Queue) Drop(id uint32) error { return q.verdict(id, verdictDrop) }

func (q *Queue) verdict(id, v uint32) error {
	hdr := make([]byte, 8)
	binary.BigEndian.PutUint32(hdr, v)
	binary.BigEndian.PutUint32(hdr[4:], id)
	data, err := netlink.MarshalAttributes([]netlink.Attribute{{Type: attrVerdictHdr, Data: hdr}})
	if err != nil {
		return err
	}
	// No acknowledgement: a verdict is fire-and-forget on the hot path; an
	// unknown id (a packet the kernel already let go) is harmless.
	_, err = q.c.Send(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(nfnlSubsysQueue<<8 | msgVerdict), Flags: netlink.Request},
		Data:   append(q.nfgen(), data...),
	})
	if err != nil {
		return fmt.Errorf("nfqueue verdict: %w", err)
	}
	return nil
}

// Close unbinds the queue: the kernel drops what is still queued (TCP
// resends it) and, with the rule's bypass, accepts everything after.
func (q *Queue) Close() error {
	q.closed.Store(true)
	return q.c.Close()
}

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
	"sync"
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
//
// It owns its socket directly (not a netlink.Conn) to choose the socket's
// descriptor: a process killed with SIGKILL has its files released last
// opened... more precisely in reverse descriptor order (the kernel queues
// each close as task work, which runs newest first), and releasing
// hundreds of TLS uprobe links takes seconds. On a high descriptor the
// queue socket is released first, so what the dead agent held is dropped
// at once (TCP resends it, the rule's bypass passes it) instead of after
// the uprobes. The message encoding is still mdlayher/netlink's.
type Queue struct {
	num uint16

	mu      sync.RWMutex // write-held only to close fd
	fd      int
	closed  bool
	running bool
	done    chan struct{}
	seq     atomic.Uint32
}

// highFD is where the queue socket is moved (see Queue), within the
// process's descriptor limit.
func highFD() int {
	const want = 1 << 16
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err == nil && rl.Cur < want+1 {
		return max(int(rl.Cur)-64, 3)
	}
	return want
}

// recvTimeout bounds how long Close waits for the receiving goroutine.
const recvTimeout = 100 * time.Millisecond

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
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("nfqueue netlink socket: %w", err)
	}
	if hi, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, highFD()); err == nil {
		unix.Close(fd)
		fd = hi
	}
	q := &Queue{num: cfg.Num, fd: fd, done: make(chan struct{})}
	fail := func(what string, err error) (*Queue, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("nfqueue %s: %w", what, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fail("bind socket", err)
	}
	// A burst beyond the socket buffer must not break the receive loop
	// (ENOBUFS): the kernel drops what does not fit, TCP resends it.
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_NO_ENOBUFS, 1)
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	}
	tv := unix.NsecToTimeval(int64(recvTimeout))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fail("receive timeout", err)
	}

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
			if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EPROTONOSUPPORT) {
				err = fmt.Errorf("%w: %v", ErrNotSupported, err)
			} else if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EBUSY) {
				err = fmt.Errorf("queue %d bound by another process? %w", cfg.Num, err)
			}
			return fail(s.what, err)
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

// send writes one message (fd must be held open by the caller's lock).
func (q *Queue) send(m netlink.Message) error {
	m.Header.Sequence = q.seq.Add(1)
	m.Header.Length = uint32(nlmsgHdrLen + len(m.Data))
	b, err := m.MarshalBinary()
	if err != nil {
		return err
	}
	return unix.Sendto(q.fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
}

const nlmsgHdrLen = 16

// config sends one configuration message and waits for its acknowledgement.
func (q *Queue) config(attrs []netlink.Attribute) error {
	data, err := netlink.MarshalAttributes(attrs)
	if err != nil {
		return err
	}
	m := netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(nfnlSubsysQueue<<8 | msgConfig),
			Flags: netlink.Request | netlink.Acknowledge,
		},
		Data: append(q.nfgen(), data...),
	}
	if err := q.send(m); err != nil {
		return err
	}
	want := q.seq.Load()
	buf := make([]byte, 8192)
	for {
		n, _, err := unix.Recvfrom(q.fd, buf, 0)
		if err != nil {
			return fmt.Errorf("acknowledgement: %w", err)
		}
		var got bool
		var errno error
		forEachMessage(buf[:n], func(typ uint16, seq uint32, data []byte) {
			if typ == unix.NLMSG_ERROR && seq == want {
				got, errno = true, nlError(data)
			}
		})
		if got {
			return errno
		}
	}
}

// forEachMessage walks the netlink messages of one datagram.
func forEachMessage(b []byte, fn func(typ uint16, seq uint32, data []byte)) {
	for len(b) >= nlmsgHdrLen {
		l := int(binary.NativeEndian.Uint32(b))
		if l < nlmsgHdrLen || l > len(b) {
			return
		}
		fn(binary.NativeEndian.Uint16(b[4:]), binary.NativeEndian.Uint32(b[8:]), b[nlmsgHdrLen:l])
		b = b[min((l+3)&^3, len(b)):]
	}
}

// nlError returns the error an NLMSG_ERROR carries (nil for an ack).
func nlError(data []byte) error {
	if len(data) < 4 {
		return errors.New("short netlink error message")
	}
	if e := int32(binary.NativeEndian.Uint32(data)); e != 0 {
		return unix.Errno(-e)
	}
	return nil
}

// Run receives packets and calls fn for each until Close. fn runs on the
// receiving goroutine; it must hand long waits elsewhere and call Accept or
// Drop (from any goroutine) exactly once per packet.
func (q *Queue) Run(fn func(Packet)) error {
	q.mu.Lock()
	if q.closed || q.running {
		q.mu.Unlock()
		return nil
	}
	q.running = true
	q.mu.Unlock()
	defer func() {
		q.mu.Lock()
		unix.Close(q.fd)
		q.fd = -1
		q.mu.Unlock()
		close(q.done)
	}()
	buf := make([]byte, 1<<16)
	for {
		q.mu.RLock()
		closed := q.closed
		q.mu.RUnlock()
		if closed {
			return nil
		}
		n, _, err := unix.Recvfrom(q.fd, buf, 0)
		if err != nil {
			// EAGAIN: the receive timeout (a chance to see Close).
			// ENOBUFS: a burst overflowed the socket; TCP resends.
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) || errors.Is(err, unix.ENOBUFS) {
				continue
			}
			return fmt.Errorf("nfqueue receive: %w", err)
		}
		now := time.Now()
		forEachMessage(buf[:n], func(typ uint16, _ uint32, data []byte) {
			// NLMSG_ERROR here answers a verdict for a packet the kernel
			// no longer holds (ENOENT): harmless.
			if typ != nfnlSubsysQueue<<8|msgPacket || len(data) < 4 {
				return
			}
			p, ok := decodePacket(data[4:])
			if !ok {
				return
			}
			p.Received = now
			fn(p)
		})
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
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.closed || q.fd < 0 {
		return errors.New("nfqueue closed")
	}
	// No acknowledgement: a verdict is fire-and-forget on the hot path; an
	// unknown id (a packet the kernel already let go) is harmless.
	err = q.send(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(nfnlSubsysQueue<<8 | msgVerdict), Flags: netlink.Request},
		Data:   append(q.nfgen(), data...),
	})
	if err != nil {
		return fmt.Errorf("nfqueue verdict: %w", err)
	}
	return nil
}

// Close unbinds the queue: the kernel drops what is still queued (TCP
// resends it) and, with the rule's bypass, accepts everything after. It
// waits for Run (at most its receive timeout).
func (q *Queue) Close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	running := q.running
	if !running {
		unix.Close(q.fd)
		q.fd = -1
	}
	q.mu.Unlock()
	if running {
		<-q.done
	}
	return nil
}

package nfqueue

import (
	"encoding/binary"
	"net"
	"os"
	"runtime"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

const testMark = 0x00400000

// inScratchNetns runs the test on an OS thread moved into a fresh network
// namespace (lo up), restored and destroyed afterwards.
func inScratchNetns(t *testing.T) netns.NsHandle {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, nftables, NFQUEUE)")
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	ns, err := netns.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		netns.Set(orig)
		ns.Close()
		orig.Close()
		runtime.UnlockOSThread()
	})
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		t.Fatal(err)
	}
	return ns
}

// markedSender is a UDP socket whose packets carry mark (SO_MARK), as a
// segment marked by the tcx program would.
func markedSender(t *testing.T, to net.Addr, mark int) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, mark) })
		if err != nil {
			return err
		}
		return serr
	}}
	c, err := d.Dial("udp", to.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// udpPayload returns the UDP payload of a queued IPv4 packet.
func udpPayload(b []byte) string {
	if len(b) < 28 || b[0]>>4 != 4 {
		return ""
	}
	ihl := int(b[0]&0xf) * 4
	n := int(binary.BigEndian.Uint16(b[2:]))
	if n > len(b) {
		n = len(b)
	}
	return string(b[ihl+8 : n])
}

func TestQueueVerdictsAndBypass(t *testing.T) {
	ns := inScratchNetns(t)
	if err := InstallRule(RuleConfig{Table: "awtest_hold", Mark: testMark, Num: 7, NetNS: int(ns)}); err != nil {
		t.Fatal(err)
	}
	if ok, err := TableExists("awtest_hold", int(ns)); err != nil || !ok {
		t.Fatalf("table after install: %v %v", ok, err)
	}
	// Installing again replaces the table instead of failing or doubling.
	if err := InstallRule(RuleConfig{Table: "awtest_hold", Mark: testMark, Num: 7, NetNS: int(ns)}); err != nil {
		t.Fatal(err)
	}
	q, err := Open(Config{Num: 7, MaxLen: 64, CopyRange: 128})
	if err != nil {
		t.Fatal(err)
	}
	pkts := make(chan Packet, 8)
	done := make(chan error, 1)
	go func() {
		done <- q.Run(func(p Packet) {
			p.Data = append([]byte(nil), p.Data...)
			pkts <- p
		})
	}()

	rx, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	marked := markedSender(t, rx.LocalAddr(), testMark|0x3)
	plain := markedSender(t, rx.LocalAddr(), 0x3)
	recv := func() string {
		buf := make([]byte, 64)
		n, _, err := rx.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		return string(buf[:n])
	}

	marked.Write([]byte("drop-me"))
	p := <-pkts
	if got := udpPayload(p.Data); got != "drop-me" || p.Mark != testMark|0x3 {
		t.Fatalf("queued %q mark %#x", got, p.Mark)
	}
	if err := q.Drop(p.ID); err != nil {
		t.Fatal(err)
	}
	marked.Write([]byte("accept-me"))
	p = <-pkts
	if err := q.Accept(p.ID); err != nil {
		t.Fatal(err)
	}
	// The dropped datagram never arrives: the first one read is the
	// accepted one.
	if got := recv(); got != "accept-me" {
		t.Fatalf("first datagram %q, want accept-me", got)
	}
	// Without the mark bit a packet is not queued at all.
	plain.Write([]byte("unmarked"))
	if got := recv(); got != "unmarked" {
		t.Fatalf("got %q", got)
	}
	// A verdict for an id the kernel does not hold is harmless.
	if err := q.Accept(p.ID + 1000); err != nil {
		t.Fatal(err)
	}

	// Agent gone: with nobody bound, bypass passes marked packets.
	q.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	marked.Write([]byte("bypassed"))
	if got := recv(); got != "bypassed" {
		t.Fatalf("got %q", got)
	}
	if err := RemoveRule("awtest_hold", int(ns)); err != nil {
		t.Fatal(err)
	}
	if ok, _ := TableExists("awtest_hold", int(ns)); ok {
		t.Fatal("table left after RemoveRule")
	}
}

package capture

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	apicap "github.com/apiwarden/apiwarden/apimodel/capture"
)

// vethPair creates awcap-h0 (this namespace, 10.251.77.1) <-> awcap-c0
// (namespace awcap-cap, 10.251.77.2) and returns the host ifindex and the
// namespace handle. Everything is removed on cleanup.
func vethPair(t *testing.T) (int, netns.NsHandle) {
	t.Helper()
	sh := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	exec.Command("ip", "link", "del", "awcap-h0").Run() // leftovers of a killed run
	exec.Command("ip", "netns", "del", "awcap-cap").Run()
	sh("netns", "add", "awcap-cap")
	t.Cleanup(func() { exec.Command("ip", "netns", "del", "awcap-cap").Run() })
	sh("link", "add", "awcap-h0", "type", "veth", "peer", "name", "awcap-c0", "netns", "awcap-cap")
	t.Cleanup(func() { exec.Command("ip", "link", "del", "awcap-h0").Run() })
	sh("addr", "add", "10.251.77.1/30", "dev", "awcap-h0")
	sh("link", "set", "awcap-h0", "up")
	sh("-n", "awcap-cap", "addr", "add", "10.251.77.2/30", "dev", "awcap-c0")
	sh("-n", "awcap-cap", "link", "set", "awcap-c0", "up")
	sh("-n", "awcap-cap", "link", "set", "lo", "up")
	ifc, err := net.InterfaceByName("awcap-h0")
	if err != nil {
		t.Fatal(err)
	}
	h, err := netns.GetFromName("awcap-cap")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return ifc.Index, h
}

// dialIn opens a TCP connection from inside a namespace: the socket keeps
// the namespace it was created in after the thread switches back.
func dialIn(ns netns.NsHandle, addr string) (net.Conn, error) {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	conn, dialErr := net.DialTimeout("tcp", addr, 5*time.Second)
	if err := netns.Set(orig); err != nil {
		// Leave the thread locked: the runtime discards it with the
		// goroutine instead of reusing a thread in the wrong namespace.
		return conn, fmt.Errorf("restore netns: %w", err)
	}
	runtime.UnlockOSThread()
	return conn, dialErr
}

// TestCaptureOverVeth runs a real TCP exchange across a veth pair and
// rebuilds the request and a 256 KiB response (GSO super-packets on veth)
// from the chunks.
func TestCaptureOverVeth(t *testing.T) {
	requireRoot(t)
	ifindex, ns := vethPair(t)
	exchange(t, ifindex, "10.251.77.1:0", func(addr string) (net.Conn, error) { return dialIn(ns, addr) })
}

// TestCaptureOnLoopback does the same over lo (zeroed Ethernet header,
// 64 KiB MTU). The port filter keeps other loopback traffic out.
func TestCaptureOnLoopback(t *testing.T) {
	requireRoot(t)
	exchange(t, 1, "127.0.0.1:0", func(addr string) (net.Conn, error) {
		return net.DialTimeout("tcp", addr, 5*time.Second)
	})
}

// exchange attaches a sensor filtered to a fresh server port on ifindex,
// runs one request/response with a 256 KiB body, and checks that both
// directions rebuild byte-exact from the chunks, with SYN and FIN seen and
// nothing lost or truncated.
func exchange(t *testing.T, ifindex int, listen string, dial func(string) (net.Conn, error)) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srvAddr := netip.MustParseAddrPort(ln.Addr().String())
	request := []byte("GET /awcap HTTP/1.1\r\nHost: awcap\r\n\r\n")
	body := bytes.Repeat([]byte("0123456789abcdef"), 16<<10) // 256 KiB
	response := append([]byte(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(body))), body...)

	s := newTestSensor(t, Config{Ports: []uint16{srvAddr.Port()}})
	if err := s.Attach(ifindex); err != nil {
		t.Fatal(err)
	}
	if err := s.Attach(ifindex); err != nil { // idempotent
		t.Fatal(err)
	}

	var mu sync.Mutex
	var chunks []apicap.Chunk
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() {
		runDone <- s.Run(ctx, func(c apicap.Chunk) {
			mu.Lock()
			chunks = append(chunks, c)
			mu.Unlock()
		})
	}()

	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, len(request))
		if _, err := io.ReadFull(c, buf); err == nil {
			c.Write(response)
		}
	}()
	conn, err := dial(srvAddr.String())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	conn.Write(request)
	got, err := io.ReadAll(conn)
	conn.Close()
	if err != nil || !bytes.Equal(got, response) {
		t.Fatalf("client read %d bytes (err %v), want %d", len(got), err, len(response))
	}

	cli := netip.MustParseAddrPort(conn.LocalAddr().String())
	deadline := time.Now().Add(5 * time.Second)
	var reqBuf, respBuf []byte
	for {
		mu.Lock()
		reqBuf, respBuf = rebuild(chunks, cli, srvAddr)
		mu.Unlock()
		if len(respBuf) >= len(response) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // let the FIN/ACK tail arrive
	cancel()
	if err := <-runDone; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !bytes.Equal(reqBuf, request) {
		t.Errorf("request rebuilt as %q", reqBuf)
	}
	if !bytes.Equal(respBuf, response) {
		t.Errorf("response rebuilt: %d bytes, want %d", len(respBuf), len(response))
	}
	var sawSYN, sawFIN, sawIngress, sawEgress bool
	for _, c := range chunks {
		sawSYN = sawSYN || c.Flags&apicap.FlagSYN != 0
		sawFIN = sawFIN || c.Flags&apicap.FlagFIN != 0
		sawIngress = sawIngress || c.Source == apicap.SourceTCIngress
		sawEgress = sawEgress || c.Source == apicap.SourceTCEgress
		if c.Ifindex != uint32(ifindex) {
			t.Errorf("chunk ifindex %d, want %d", c.Ifindex, ifindex)
		}
	}
	// Loopback traffic crosses lo's egress and ingress; only ingress keeps
	// it, so every segment arrives exactly once. A veth sees both ways.
	wantEgress := !isLoopback(ifindex)
	if !sawSYN || !sawFIN || !sawIngress || sawEgress != wantEgress {
		t.Errorf("syn %v fin %v ingress %v egress %v (want egress %v)", sawSYN, sawFIN, sawIngress, sawEgress, wantEgress)
	}
	if cnt := counters(t, s); !wantEgress && cnt["seen_elsewhere"] == 0 {
		t.Errorf("lo egress not skipped: %v", cnt)
	}
	for _, c := range chunks {
		if c.PayloadLen != uint32(len(c.Data)) {
			t.Logf("short chunk %v seq %d len %d payload_len %d flags %#x src %v", c.Key, c.Seq, len(c.Data), c.PayloadLen, c.Flags, c.Source)
		}
	}
	cnt := counters(t, s)
	t.Logf("%d chunks, counters %v", len(chunks), cnt)
	if cnt["chunks_lost"] != 0 || cnt["chunks_truncated"] != 0 || cnt["decode_errors"] != 0 {
		t.Errorf("lost/truncated/decode errors: %v", cnt)
	}

	if err := s.Detach(ifindex); err != nil || len(s.Attached()) != 0 {
		t.Fatalf("detach: %v, attached %v", err, s.Attached())
	}
}

// rebuild lays the captured payload of each direction out by sequence
// number, starting after the SYN. It stops at the first hole.
func rebuild(chunks []apicap.Chunk, cli, srv netip.AddrPort) (req, resp []byte) {
	dir := func(from, to netip.AddrPort) []byte {
		var isn uint32
		var haveSYN bool
		for _, c := range chunks {
			if c.Key.Src == from && c.Key.Dst == to && c.Flags&apicap.FlagSYN != 0 {
				isn, haveSYN = c.Seq, true
			}
		}
		if !haveSYN {
			return nil
		}
		var buf []byte
		have := map[uint32][]byte{}
		for _, c := range chunks {
			if c.Key.Src == from && c.Key.Dst == to && len(c.Data) > 0 {
				have[c.Seq-isn-1] = c.Data
			}
		}
		for {
			d, ok := have[uint32(len(buf))]
			if !ok {
				return buf
			}
			buf = append(buf, d...)
		}
	}
	return dir(cli, srv), dir(srv, cli)
}

package reset

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

func newResetter(t *testing.T) *Resetter {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	r, err := New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// pair returns a connected client/server pair on addr.
func pair(t *testing.T, network, addr string) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Skipf("listen %s: %v", addr, err)
	}
	t.Cleanup(func() { ln.Close() })
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	client, err = net.Dial(network, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-acc
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func connOf(c net.Conn) Conn {
	return Conn{
		Local:  c.LocalAddr().(*net.TCPAddr).AddrPort(),
		Remote: c.RemoteAddr().(*net.TCPAddr).AddrPort(),
	}
}

func TestDestroyCutsOnlyTheTarget(t *testing.T) {
	r := newResetter(t)
	for _, tc := range []struct{ name, network, addr string }{
		{"ipv4", "tcp4", "127.0.0.1:0"},
		{"ipv6", "tcp6", "[::1]:0"},
		{"dual-stack-v4mapped", "tcp", "127.0.0.1:0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, server := pair(t, tc.network, tc.addr)
			otherClient, _ := pair(t, tc.network, tc.addr)

			n, err := r.Destroy("", []Conn{connOf(server)})
			if err != nil || n != 1 {
				t.Fatalf("Destroy = %d, %v; want 1", n, err)
			}
			// The server side fails locally, the client gets a RST.
			if _, err := server.Write([]byte("x")); err == nil {
				t.Error("write on destroyed server socket succeeded")
			}
			client.SetReadDeadline(time.Now().Add(2 * time.Second))
			_, err = client.Read(make([]byte, 1))
			if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.EOF) {
				t.Errorf("client read after reset: %v, want ECONNRESET", err)
			}
			// An untargeted connection lives on.
			if _, err := otherClient.Write([]byte("still here")); err != nil {
				t.Errorf("untargeted connection broken: %v", err)
			}
		})
	}
	cnt, err := r.Counters()
	if err != nil || cnt["sockets_destroyed"] != 3 {
		t.Errorf("counters %v, %v", cnt, err)
	}
}

func TestDestroyInOtherNetns(t *testing.T) {
	r := newResetter(t)
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("no ip command")
	}
	ns := "awreset-test"
	exec.Command("ip", "netns", "del", ns).Run()
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Skipf("ip netns add: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	exec.Command("ip", "-n", ns, "link", "set", "lo", "up").Run()

	// A server and a client inside the namespace, made by a helper process.
	srv := exec.Command("ip", "netns", "exec", ns, "python3", "-c", `
import socket,sys,time
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1",18081)); s.listen()
c=socket.create_connection(("127.0.0.1",18081)); a,_=s.accept()
print(c.getsockname()[1], flush=True)
c.settimeout(5)
try:
    d=c.recv(1)
    print("eof" if d==b"" else "data", flush=True)
except ConnectionResetError:
    print("reset", flush=True)
except Exception as e:
    print("err", e, flush=True)
`)
	stdout, _ := srv.StdoutPipe()
	if err := srv.Start(); err != nil {
		t.Skipf("python3: %v", err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	var port int
	if _, err := fmt.Fscan(stdout, &port); err != nil {
		t.Fatalf("read client port: %v", err)
	}
	target := Conn{Local: netip.MustParseAddrPort("127.0.0.1:18081"), Remote: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))}
	// In the agent's own namespace the tuple does not exist.
	if n, err := r.Destroy("", []Conn{target}); err != nil || n != 0 {
		t.Fatalf("Destroy in own netns = %d, %v; want 0", n, err)
	}
	n, err := r.Destroy("/run/netns/"+ns, []Conn{target})
	if err != nil || n != 1 {
		t.Fatalf("Destroy in %s = %d, %v; want 1", ns, n, err)
	}
	var verdict string
	fmt.Fscan(stdout, &verdict)
	if verdict != "reset" {
		t.Errorf("client in netns saw %q, want reset", verdict)
	}
}

func TestTooManyTargets(t *testing.T) {
	r := newResetter(t)
	conns := make([]Conn, MaxTargets+1)
	if _, err := r.Destroy("", conns); !errors.Is(err, ErrTooManyTargets) {
		t.Fatalf("err = %v, want ErrTooManyTargets", err)
	}
	// Exactly at the bound is accepted (none exist, so none destroyed).
	for i := range conns[:MaxTargets] {
		conns[i] = Conn{Local: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), 1), Remote: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), uint16(i+1))}
	}
	if n, err := r.Destroy("", conns[:MaxTargets]); err != nil || n != 0 {
		t.Fatalf("Destroy at bound = %d, %v", n, err)
	}
}

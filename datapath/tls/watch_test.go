package tls

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/apiwarden/apiwarden/apimodel/capture"
)

// fdWatched is the kernel's count of socket I/O that passed the tls_watch
// filter.
func fdWatched(t *testing.T, s *Sensor) uint64 {
	t.Helper()
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return st.Kernel["fd_watched"]
}

// fileWrites makes n write syscalls to /dev/null from this process.
func fileWrites(t *testing.T, n int) {
	t.Helper()
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := []byte{0}
	for i := 0; i < n; i++ {
		if _, err := unix.Write(int(f.Fd()), b); err != nil {
			t.Fatal(err)
		}
	}
}

// writes makes n one-byte write syscalls on a loopback TCP connection
// from this process (the peer drains them).
func writes(t *testing.T, n int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(io.Discard, c)
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	b := []byte{0}
	var werr error
	for i := 0; i < n && werr == nil; i++ {
		if err := raw.Write(func(fd uintptr) bool {
			_, werr = unix.Write(int(fd), b)
			return werr != unix.EAGAIN
		}); err != nil {
			t.Fatal(err)
		}
	}
	if werr != nil {
		t.Fatal(werr)
	}
	c.Close()
	<-done
}

// TestUnwatchedTgidSkipsTracepoints: the socket I/O tracepoints stop at
// the tls_watch bit for a process that made no TLS call (this test
// process), work for it once its bit is set, and stop again once it is
// cleared; I/O that is not on a socket never reaches them. Other processes
// on the host may add to the counter (and this process's peer reads), so
// the bounds are n (every write counted) against fewer than n.
func TestUnwatchedTgidSkipsTracepoints(t *testing.T) {
	s, _ := startSensor(t)
	const n = 20000
	pid := os.Getpid()
	if s.watched(pid) {
		t.Fatalf("test process watched before any TLS call")
	}
	before := fdWatched(t, s)
	writes(t, n)
	if d := fdWatched(t, s) - before; d >= n {
		t.Errorf("unwatched: %d of %d writes passed the filter", d, n)
	}
	s.mu.Lock()
	err := s.setWatched(pid, true)
	s.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	before = fdWatched(t, s)
	writes(t, n)
	if d := fdWatched(t, s) - before; d < n {
		t.Errorf("watched: %d of %d writes passed the filter", d, n)
	}
	if s.socketIO != "syscalls" {
		before = fdWatched(t, s)
		fileWrites(t, n)
		if d := fdWatched(t, s) - before; d >= n {
			t.Errorf("watched, /dev/null: %d of %d writes reached the socket tracepoints", d, n)
		}
	}
	s.OnExit(pid) // clears the bit like a real exit
	if s.watched(pid) {
		t.Fatalf("bit kept after exit")
	}
	before = fdWatched(t, s)
	writes(t, n)
	if d := fdWatched(t, s) - before; d >= n {
		t.Errorf("after exit: %d of %d writes passed the filter", d, n)
	}
}

// TestFirstTLSCallMarksProcess: a curl started after the sensor, never
// attached, is marked by its first TLS call through the host libssl, and
// its first request is still joined to its socket (keys carry the port).
func TestFirstTLSCallMarksProcess(t *testing.T) {
	s, c := startSensor(t)
	spid, cpid, port, wantReq := curlAttachedServer(t, s)
	if !s.watched(cpid) || !s.watched(spid) {
		t.Errorf("watched: client %v server %v, want both", s.watched(cpid), s.watched(spid))
	}
	chunks := awaitStream(t, c, cpid, capture.SourceTLSWrite, wantReq, "client write stream = %q")
	checkKeys(t, chunks, port, false)
}

// TestPerProcessProbesSkipUnwatched: with PerProcess probes, a watched
// python server (libssl dlopened after the attach) is read from its first
// request, and a curl client using the same libssl, never attached, pays
// no probe: its entry probe never ran (its tls_watch bit, set by the entry
// probe's first hit, stays clear) and it reports no chunk.
func TestPerProcessProbesSkipUnwatched(t *testing.T) {
	s, c := startSensorCfg(t, Config{PerProcess: true})
	spid, cpid, port, wantReq := curlAttachedServer(t, s)
	chunks := awaitStream(t, c, spid, capture.SourceTLSRead, wantReq, "server read stream = %q")
	checkKeys(t, chunks, port, true)
	if s.watched(cpid) {
		t.Errorf("unwatched curl hit a probe")
	}
	for _, src := range []capture.Source{capture.SourceTLSRead, capture.SourceTLSWrite} {
		if got, _ := c.stream(t, cpid, src); len(got) != 0 {
			t.Errorf("unwatched curl reported %d bytes (%s)", len(got), src)
		}
	}
	s.OnExit(spid)
	s.mu.Lock()
	_, kept := s.pids[spid]
	s.mu.Unlock()
	if kept {
		t.Errorf("server state kept after exit")
	}
}

// awaitStream waits until pid's src stream starts with want and returns its
// chunks; what names the stream in the failure.
func awaitStream(t *testing.T, c *collector, pid int, src capture.Source, want, what string) []capture.Chunk {
	t.Helper()
	var req []byte
	var chunks []capture.Chunk
	waitFor(t, 5*time.Second, func() bool {
		req, chunks = c.stream(t, pid, src)
		return bytes.HasPrefix(req, []byte(want))
	})
	if !bytes.HasPrefix(req, []byte(want)) {
		t.Fatalf(what, req)
	}
	return chunks
}

// curlAttachedServer starts a python TLS server, attaches the sensor to it
// and has curl (not attached) fetch 5 bytes from it; wantReq is the start
// of curl's request.
func curlAttachedServer(t *testing.T, s *Sensor) (spid, cpid, port int, wantReq string) {
	t.Helper()
	spid, port = startPyServer(t, "1.3")
	if err := s.AttachPID(spid); err != nil {
		t.Fatal(err)
	}
	cpid, body := runClient(t, "curl", "-sk", "--http1.1", fmt.Sprintf("https://127.0.0.1:%d/size/%d", port, 5))
	if len(body) != 5 {
		t.Fatalf("curl got %d bytes", len(body))
	}
	return spid, cpid, port, fmt.Sprintf("GET /size/5 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n", port)
}

package tls

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestOnExitDetachesUnusedBinary: a Go binary's probes go away with its
// last process; the host libssl's stay.
func TestOnExitDetachesUnusedBinary(t *testing.T) {
	s, _ := startSensor(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "awtls-gotls")
	buildGo(t, bin, "-ldflags=-s -w")
	cert, key := writeCert(t, dir)
	port := freePort(t)
	srv := exec.Command(bin, "-mode=server", fmt.Sprintf("-addr=127.0.0.1:%d", port), "-cert="+cert, "-key="+key)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	pid := srv.Process.Pid
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	if err := s.AttachPID(pid); err != nil {
		t.Fatal(err)
	}
	before, _ := s.Stats()
	srv.Process.Kill()
	srv.Wait()
	s.OnExit(pid)
	after, _ := s.Stats()
	if after.Files != before.Files-1 {
		t.Errorf("probed files %d -> %d, want one fewer", before.Files, after.Files)
	}
	if k, _ := s.Visibility(pid); k != "unknown" {
		t.Errorf("visibility after exit %q", k)
	}
	if err := s.AttachPID(pid); err == nil {
		t.Errorf("attach to exited pid succeeded")
	}
	if after.Skips[SkipExited] != 0 {
		t.Errorf("exited counted before the second attach")
	}
	if st, _ := s.Stats(); st.Skips[SkipExited] != 1 {
		t.Errorf("exited skips %d", st.Skips[SkipExited])
	}
}

// TestScanAll attaches to everything running and reports what it saw.
func TestScanAll(t *testing.T) {
	s, _ := startSensor(t)
	start := time.Now()
	s.ScanAll()
	st, _ := s.Stats()
	t.Logf("ScanAll took %v: %d files probed, %d points (%d single-stepped), skips %v",
		time.Since(start), st.Files, st.Points, st.SlowPoints, st.Skips)
	k, d := s.Visibility(os.Getppid())
	t.Logf("parent: %s %q", k, d)
}

package iface

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// fakeAttacher records attach state and fails for chosen interface names.
type fakeAttacher struct {
	mu       sync.Mutex
	attached map[int]bool
	failFor  func(ifindex int) bool
}

func (f *fakeAttacher) Attach(ifindex int) error {
	if f.failFor != nil && f.failFor(ifindex) {
		return errors.New("refused")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attached[ifindex] = true
	return nil
}

func (f *fakeAttacher) Detach(ifindex int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.attached, ifindex)
	return nil
}

func (f *fakeAttacher) has(ifindex int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attached[ifindex]
}

// testNS creates a network namespace awcap-<name> and returns its handle.
func testNS(t *testing.T, name string) (string, netns.NsHandle) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	ns := "awcap-" + name
	exec.Command("ip", "netns", "del", ns).Run() // leftover of a killed run
	ip(t, "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatalf("open netns: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	ip(t, "-n", ns, "link", "set", "lo", "up")
	return ns, h
}

func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// ifindexIn returns the ifindex of a link in a namespace.
func ifindexIn(t *testing.T, ns, name string) int {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "cat", "/sys/class/net/"+name+"/ifindex").Output()
	if err != nil {
		t.Fatalf("ifindex of %s: %v", name, err)
	}
	var i int
	fmt.Sscan(string(out), &i)
	return i
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestAllUpInterfacesFollowLinkUpdates(t *testing.T) {
	ns, h := testNS(t, "mgr-all")
	var badIndex int
	var badMu sync.Mutex
	fa := &fakeAttacher{attached: map[int]bool{}, failFor: func(i int) bool {
		badMu.Lock()
		defer badMu.Unlock()
		return i == badIndex
	}}
	m := New(Config{NetNS: h}, fa, nil)
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })

	// Loopback is up in the namespace and attached by the initial sync.
	if got := m.Attached(); len(got) != 1 || got[1] != "lo" || !fa.has(1) {
		t.Fatalf("after start: %v", got)
	}

	// A veth created later: the up end is attached, the down end is not.
	ip(t, "-n", ns, "link", "add", "awcap-v0", "type", "veth", "peer", "name", "awcap-v1")
	ip(t, "-n", ns, "link", "set", "awcap-v0", "up")
	v0, v1 := ifindexIn(t, ns, "awcap-v0"), ifindexIn(t, ns, "awcap-v1")
	eventually(t, "awcap-v0 attached", func() bool { return fa.has(v0) })
	if fa.has(v1) {
		t.Fatal("down peer awcap-v1 attached")
	}
	ip(t, "-n", ns, "link", "set", "awcap-v1", "up")
	eventually(t, "awcap-v1 attached once up", func() bool { return fa.has(v1) })

	// An interface that fails to attach is counted, not fatal.
	ip(t, "-n", ns, "link", "add", "awcap-bad0", "type", "veth", "peer", "name", "awcap-bad1")
	badMu.Lock()
	badIndex = ifindexIn(t, ns, "awcap-bad0")
	badMu.Unlock()
	ip(t, "-n", ns, "link", "set", "awcap-bad0", "up")
	eventually(t, "attach failure counted", func() bool { return m.Stats().AttachFailures > 0 })

	// Deleting the veth removes both ends; both are forgotten.
	ip(t, "-n", ns, "link", "del", "awcap-v0")
	eventually(t, "veth forgotten", func() bool { return !fa.has(v0) && !fa.has(v1) })
	if got := m.Attached(); len(got) != 1 {
		t.Fatalf("after delete: %v", got)
	}
	st := m.Stats()
	if st.Attaches != 3 || st.Detaches != 2 || st.Attached != 1 {
		t.Fatalf("stats %+v", st)
	}
	if err := m.Close(); err != nil || fa.has(1) {
		t.Fatalf("close: %v, lo still attached %v", err, fa.has(1))
	}
}

func TestNamedInterfacesOnly(t *testing.T) {
	ns, h := testNS(t, "mgr-named")
	ip(t, "-n", ns, "link", "add", "awcap-n0", "type", "veth", "peer", "name", "awcap-p0") // down, but named
	fa := &fakeAttacher{attached: map[int]bool{}}
	m := New(Config{Names: []string{"awcap-n0", "awcap-n1"}, NetNS: h}, fa, nil)
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	n0 := ifindexIn(t, ns, "awcap-n0")
	if got := m.Attached(); len(got) != 1 || got[n0] != "awcap-n0" {
		t.Fatalf("after start: %v", got)
	}
	ip(t, "-n", ns, "link", "add", "awcap-x0", "type", "veth", "peer", "name", "awcap-x1")
	ip(t, "-n", ns, "link", "set", "awcap-x0", "up")
	ip(t, "-n", ns, "link", "add", "awcap-n1", "type", "veth", "peer", "name", "awcap-p1")
	n1 := ifindexIn(t, ns, "awcap-n1")
	eventually(t, "awcap-n1 attached", func() bool { return fa.has(n1) })
	if x0 := ifindexIn(t, ns, "awcap-x0"); fa.has(x0) {
		t.Fatal("unnamed awcap-x0 attached")
	}
	// Renamed away from the list: forgotten.
	ip(t, "-n", ns, "link", "set", "awcap-n1", "name", "awcap-y1")
	eventually(t, "renamed link forgotten", func() bool { return !fa.has(n1) })
}

func TestStopsOnContextCancel(t *testing.T) {
	_, h := testNS(t, "mgr-ctx")
	fa := &fakeAttacher{attached: map[int]bool{}}
	m := New(Config{NetNS: h}, fa, nil)
	ctx, cancel := context.WithCancel(context.Background())
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case <-m.done:
	case <-time.After(5 * time.Second):
		t.Fatal("manager did not stop on cancel")
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
}

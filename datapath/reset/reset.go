// Package reset aborts TCP connections chosen by the agent: it loads an
// iter/tcp program that calls bpf_sock_destroy on the sockets whose 4-tuple
// it is given, in whichever network namespace the connection lives. The peer
// receives a RST and the local socket fails with ECONNABORTED.
package reset

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"runtime"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"golang.org/x/sys/unix"

	"github.com/apiwarden/apiwarden/datapath/percpu"
)

// MaxTargets is how many connections one Destroy call can cut.
const MaxTargets = 4096

// ErrTooManyTargets is returned by Destroy for more than MaxTargets tuples.
var ErrTooManyTargets = errors.New("too many reset targets")

// Conn names one connection as the socket to cut sees it: Local is this
// host's side (for a server, its listening address and port).
type Conn struct {
	Local  netip.AddrPort
	Remote netip.AddrPort
}

// Resetter owns the iterator program.
type Resetter struct {
	log  *slog.Logger
	mu   sync.Mutex // one pass at a time: targets are shared state
	objs resetObjects
	prog link.Link
}

// New loads the iter/tcp program. It fails on kernels without the
// bpf_sock_destroy kfunc (before 6.5).
func New(log *slog.Logger) (*Resetter, error) {
	spec, err := loadReset()
	if err != nil {
		return nil, fmt.Errorf("load reset spec: %w", err)
	}
	r := &Resetter{log: log.With("component", "reset")}
	if err := spec.LoadAndAssign(&r.objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("load reset (needs bpf_sock_destroy, Linux >= 6.5): %+v", ve)
		}
		return nil, fmt.Errorf("load reset (needs bpf_sock_destroy, Linux >= 6.5): %w", err)
	}
	l, err := link.AttachIter(link.IterOptions{Program: r.objs.ResetTcp})
	if err != nil {
		r.objs.Close()
		return nil, fmt.Errorf("attach iter/tcp: %w", err)
	}
	r.prog = l
	return r, nil
}

// Close releases the program and maps.
func (r *Resetter) Close() error {
	return errors.Join(r.prog.Close(), r.objs.Close())
}

func keyOf(c Conn) resetFlowKey {
	var k resetFlowKey
	la, ra := c.Local.Addr().Unmap(), c.Remote.Addr().Unmap()
	if la.Is4() {
		k.Family = unix.AF_INET
		a, b := la.As4(), ra.As4()
		copy(k.Saddr[:], a[:])
		copy(k.Daddr[:], b[:])
	} else {
		k.Family = unix.AF_INET6
		k.Saddr, k.Daddr = la.As16(), ra.As16()
	}
	k.Sport, k.Dport = c.Local.Port(), c.Remote.Port()
	return k
}

// Destroy aborts every listed connection that exists in the network
// namespace netnsPath (e.g. /proc/PID/ns/net; "" = the agent's own) and
// returns how many sockets it destroyed.
func (r *Resetter) Destroy(netnsPath string, conns []Conn) (int, error) {
	if len(conns) > MaxTargets {
		return 0, fmt.Errorf("destroy %d connections: %w (max %d)", len(conns), ErrTooManyTargets, MaxTargets)
	}
	if len(conns) == 0 {
		return 0, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	keys := make([]resetFlowKey, len(conns))
	var zero uint32
	for i, c := range conns {
		keys[i] = keyOf(c)
		if err := r.objs.ResetTargets.Put(&keys[i], &zero); err != nil {
			r.clear(keys[:i+1])
			return 0, fmt.Errorf("add reset target: %w", err)
		}
	}
	defer r.clear(keys)

	if err := r.iterate(netnsPath); err != nil {
		return 0, err
	}
	n := 0
	for i := range keys {
		var hits uint32
		if err := r.objs.ResetTargets.Lookup(&keys[i], &hits); err == nil {
			n += int(hits)
		}
	}
	return n, nil
}

func (r *Resetter) clear(keys []resetFlowKey) {
	for i := range keys {
		_ = r.objs.ResetTargets.Delete(&keys[i])
	}
}

// iterate runs one pass of the iterator. The TCP iterator walks the sockets
// of the network namespace current when it is opened, so for another
// namespace it is opened from a thread moved into it.
func (r *Resetter) iterate(netnsPath string) error {
	open := func() (io.ReadCloser, error) { return r.prog.(*link.Iter).Open() }
	var rc io.ReadCloser
	var err error
	if netnsPath == "" {
		rc, err = open()
	} else {
		rc, err = inNetns(netnsPath, open)
	}
	if err != nil {
		return fmt.Errorf("open tcp iterator: %w", err)
	}
	defer rc.Close()
	// Reading drives the program over every socket; it writes no output.
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return fmt.Errorf("run tcp iterator: %w", err)
	}
	return nil
}

// inNetns runs fn on a locked OS thread that has joined the namespace, then
// returns the thread to the original namespace. If it cannot go back, the
// thread stays locked and the runtime discards it when the goroutine ends.
func inNetns[T any](path string, fn func() (T, error)) (T, error) {
	var zero T
	target, err := os.Open(path)
	if err != nil {
		return zero, fmt.Errorf("open netns: %w", err)
	}
	defer target.Close()

	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("open own netns: %w", err)}
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("setns: %w", err)}
			return
		}
		v, err := fn()
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		done <- result{v, err}
	}()
	res := <-done
	return res.v, res.err
}

var counterNames = map[resetResetCounter]string{
	resetResetCounterRESET_CNT_SOCKETS_SEEN:   "sockets_scanned",
	resetResetCounterRESET_CNT_DESTROYED:      "sockets_destroyed",
	resetResetCounterRESET_CNT_DESTROY_FAILED: "destroy_failed",
}

// Counters sums the per-CPU counters.
func (r *Resetter) Counters() (map[string]uint64, error) {
	return percpu.Sum(r.objs.ResetCounters, counterNames)
}

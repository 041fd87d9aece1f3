// Package procmon loads and runs the process/socket attribution programs
// (bpf/procmon.c): it reports process exec/exit and TCP listen, connect,
// accept and close events, each with the process that caused it, as
// capture.ProcEvent and capture.SockEvent values.
//
// Event semantics (all tuples local -> remote, IPv4-mapped IPv6 unmapped,
// NetNS = inode of the socket's network namespace):
//   - ProcExec: after a successful execve; TGID, PPID, CgroupID, new Comm,
//     Filename as passed to exec (the binary, or the script for #!).
//   - ProcExit: the thread-group leader exited (other threads are ignored).
//   - SockListen: listen() on a TCP socket; TGID is the caller, Remote is
//     the unspecified address with port 0.
//   - SockConnect: an outgoing connection became ESTABLISHED; TGID is the
//     process that called connect() (remembered at SYN_SENT, because the
//     source port is chosen after that and ESTABLISHED runs in softirq).
//     Failed connects report nothing but a SockClose.
//   - SockAccept: accept()/accept4() returned a TCP socket; TGID is the
//     accepting process (an nginx worker, not the master).
//   - SockClose: the socket reached TCP_CLOSE; TGID/PID are 0. A listener's
//     close has a Remote of unspecified address and port 0.
//
// Both kinds share one ring buffer; every record starts with a
// procmon_hdr (bpf/include/procmon_types.h) naming its kind.
package procmon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/apiwarden/apiwarden/apimodel/capture"
)

// DefaultRingBufferBytes is the default size of the proc_events ring buffer.
const DefaultRingBufferBytes = 1 << 20

// ErrPermission is returned when the programs cannot be loaded or attached
// for lack of privileges (root, or CAP_BPF + CAP_PERFMON + tracefs access).
var ErrPermission = errors.New("procmon needs root or CAP_BPF+CAP_PERFMON")

// Config configures a Monitor.
type Config struct {
	// RingBufferBytes sizes the shared ring buffer (power of two, multiple of
	// the page size). 0 means DefaultRingBufferBytes.
	RingBufferBytes int
}

// Stats are the kernel-side counters (summed over CPUs) plus userspace ones.
type Stats struct {
	ProcEvents       uint64 // proc records written by the kernel
	SockEvents       uint64 // sock records written by the kernel
	Lost             uint64 // records dropped because the ring buffer was full
	ConnectUnmatched uint64 // client connections established without a seen connect()
	AcceptUnreadable uint64 // accepted fds whose socket could not be read
	DecodeErrors     uint64 // records userspace could not decode
}

// Monitor owns the loaded programs, their links and the ring buffer reader.
type Monitor struct {
	log   *slog.Logger
	objs  procmonObjects
	links []link.Link
	// acceptVia is the tracepoint that names accepting processes.
	acceptVia string
	reader    *ringbuf.Reader
	clock     clock
	decErrs   atomic.Uint64

	closeOnce sync.Once
}

// tracepoint is one attachment: group, event, program.
type tracepoint struct {
	group, name string
	prog        *ebpf.Program
}

// tracepoints lists the attachments every kernel has.
func (m *Monitor) tracepoints() []tracepoint {
	return []tracepoint{
		{"sched", "sched_process_exec", m.objs.ProcmonExec},
		{"sched", "sched_process_exit", m.objs.ProcmonExit},
		{"sock", "inet_sock_set_state", m.objs.ProcmonSockState},
	}
}

// acceptTracepoints name the serving process of an accepted socket, in
// order of preference: its first receive (sock_recv_length, Linux >= 6.3),
// or else the accept() syscalls' exits. Syscall tracepoints are the
// fallback only: attached at all, they send every syscall of every task
// on the host through the syscall-trace path.
func (m *Monitor) acceptTracepoints() [][]tracepoint {
	return [][]tracepoint{
		{{"sock", "sock_recv_length", m.objs.ProcmonSockRecv}},
		{{"syscalls", "sys_exit_accept4", m.objs.ProcmonAccept4}, {"syscalls", "sys_exit_accept", m.objs.ProcmonAccept}},
	}
}

// attach attaches every tracepoint of tps, or none: on an error the links
// made so far are closed.
func attach(tps []tracepoint) ([]link.Link, error) {
	var ls []link.Link
	for _, tp := range tps {
		l, err := link.Tracepoint(tp.group, tp.name, tp.prog, nil)
		if errors.Is(err, os.ErrNotExist) {
			// cilium/ebpf resolves tracepoint ids through tracefs.
			err = fmt.Errorf("%w (is tracefs mounted at /sys/kernel/tracing?)", err)
		}
		if err != nil {
			for _, l := range ls {
				l.Close()
			}
			return nil, fmt.Errorf("attach tracepoint %s/%s: %w", tp.group, tp.name, wrapPerm(err))
		}
		ls = append(ls, l)
	}
	return ls, nil
}

// New loads bpf/procmon.c, attaches its tracepoints and opens the ring
// buffer. Events start queueing at once; call Run to consume them.
func New(cfg Config, log *slog.Logger) (*Monitor, error) {
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "procmon")
	if cfg.RingBufferBytes == 0 {
		cfg.RingBufferBytes = DefaultRingBufferBytes
	}
	spec, err := loadProcmon()
	if err != nil {
		return nil, fmt.Errorf("load procmon spec: %w", err)
	}
	spec.Maps["proc_events"].MaxEntries = uint32(cfg.RingBufferBytes)

	ensureTracefs(log)
	m := &Monitor{log: log, clock: newClock()}
	if err := spec.LoadAndAssign(&m.objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("load procmon programs: %+v", ve)
		}
		return nil, fmt.Errorf("load procmon programs: %w", wrapPerm(err))
	}
	ls, err := attach(m.tracepoints())
	if err != nil {
		m.Close()
		return nil, err
	}
	m.links = ls
	for _, set := range m.acceptTracepoints() {
		if ls, err = attach(set); err == nil {
			m.links = append(m.links, ls...)
			m.acceptVia = set[0].group + "/" + set[0].name
			break
		}
		log.Debug("accept binding unavailable, trying the next", "err", err)
	}
	if err != nil {
		m.Close()
		return nil, err
	}
	m.reader, err = ringbuf.NewReader(m.objs.ProcEvents)
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("open proc_events ring buffer: %w", err)
	}
	log.Debug("procmon attached", "tracepoints", len(m.links), "accept_via", m.acceptVia, "ringbuf_bytes", cfg.RingBufferBytes)
	return m, nil
}

// tracefsDir is where cilium/ebpf looks up tracepoint ids first.
const tracefsDir = "/sys/kernel/tracing"

// ensureTracefs mounts tracefs when nothing is mounted there: minimal hosts
// and some container images boot without it, and tracepoints cannot be
// attached by name without it. Failure is only logged; attach reports it.
func ensureTracefs(log *slog.Logger) {
	if _, err := os.Stat(tracefsDir + "/events"); err == nil {
		return
	}
	if _, err := os.Stat("/sys/kernel/debug/tracing/events"); err == nil {
		return
	}
	if err := unix.Mount("tracefs", tracefsDir, "tracefs", 0, ""); err != nil {
		log.Warn("tracefs not mounted and mount failed", "dir", tracefsDir, "err", err)
		return
	}
	log.Info("mounted tracefs", "dir", tracefsDir)
}

// wrapPerm adds ErrPermission to permission failures so callers can test
// for it with errors.Is.
func wrapPerm(err error) error {
	if errors.Is(err, os.ErrPermission) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return fmt.Errorf("%w: %w", ErrPermission, err)
	}
	return err
}

func newClock() clock {
	var ts unix.Timespec
	now := time.Now()
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return clock{bootWall: now}
	}
	return clock{bootWall: now.Add(-time.Duration(ts.Nano()))}
}

// Run reads events until ctx is done or the Monitor is closed, calling
// onProc and onSock (either may be nil) from this goroutine in kernel order.
// Callbacks must be quick: while they run, the ring buffer fills.
func (m *Monitor) Run(ctx context.Context, onProc func(capture.ProcEvent), onSock func(capture.SockEvent)) error {
	// Flush, not SetDeadline: SetDeadline takes the reader's mutex, which a
	// blocked ReadInto holds, so on a quiet host cancellation waited for the
	// next process or socket event (minutes in CI). Flush wakes the poller
	// without the lock.
	stop := context.AfterFunc(ctx, func() { _ = m.reader.Flush() })
	defer stop()
	var rec ringbuf.Record
	for {
		if err := m.reader.ReadInto(&rec); err != nil {
			if errors.Is(err, ringbuf.ErrClosed) {
				return nil
			}
			if errors.Is(err, ringbuf.ErrFlushed) || errors.Is(err, os.ErrDeadlineExceeded) {
				if ctx.Err() != nil {
					return nil
				}
				continue
			}
			return fmt.Errorf("read proc_events: %w", err)
		}
		d, err := decodeRecord(rec.RawSample, m.clock)
		if err != nil {
			if m.decErrs.Add(1) == 1 {
				m.log.Warn("undecodable procmon record", "err", err)
			}
			continue
		}
		switch {
		case d.proc != nil && onProc != nil:
			onProc(*d.proc)
		case d.sock != nil && onSock != nil:
			onSock(*d.sock)
		}
	}
}

// Stats reads the per-CPU counters.
func (m *Monitor) Stats() (Stats, error) {
	var s Stats
	dst := []*uint64{&s.ProcEvents, &s.SockEvents, &s.Lost, &s.ConnectUnmatched, &s.AcceptUnreadable}
	for i, p := range dst {
		var perCPU []uint64
		if err := m.objs.ProcmonCounters.Lookup(uint32(i), &perCPU); err != nil {
			return s, fmt.Errorf("read procmon counter %d: %w", i, err)
		}
		for _, v := range perCPU {
			*p += v
		}
	}
	s.DecodeErrors = m.decErrs.Load()
	return s, nil
}

// Close detaches the programs and releases the maps. Run returns after it.
func (m *Monitor) Close() error {
	var errs []error
	m.closeOnce.Do(func() {
		if m.reader != nil {
			errs = append(errs, m.reader.Close())
		}
		for _, l := range m.links {
			errs = append(errs, l.Close())
		}
		errs = append(errs, m.objs.Close())
	})
	return errors.Join(errs...)
}

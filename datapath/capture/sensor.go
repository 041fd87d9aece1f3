// Package capture loads and runs the TC capture sensor (bpf/capture.c): two
// tcx programs that copy bounded chunks of TCP payload into a ring buffer,
// and the Go side that attaches them to interfaces and decodes the records
// into apimodel/capture.Chunk values.
package capture

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	apicap "github.com/apiwarden/apiwarden/apimodel/capture"
	"github.com/apiwarden/apiwarden/datapath/percpu"
	"github.com/apiwarden/apiwarden/datapath/ringbuf"
)

// Limits shared with bpf/capture.c.
const (
	// MaxChunksPerSKB is MAX_CHUNKS_PER_SKB: chunk events per packet; the
	// rest of a bigger super-packet is counted as truncated. 8 x 16 KiB
	// covers loopback, whose super-packets exceed 64 KiB (tot_len 0).
	MaxChunksPerSKB = 8
	// MaxPorts is MAX_PORTS: entries of the port filter.
	MaxPorts = 16
	// DefaultRingBufferBytes is the ring buffer size when Config leaves it 0.
	DefaultRingBufferBytes = 8 << 20
)

// Config tunes the sensor. The zero value captures every port with the
// largest chunks.
type Config struct {
	// ChunkMax is the most payload bytes per chunk event, 1..MaxChunkData;
	// 0 means MaxChunkData.
	ChunkMax int
	// Ports keeps only segments whose source or destination port is listed
	// (at most MaxPorts); empty means every port.
	Ports []uint16
	// RingBufferBytes sizes the ring buffer: a power of two, at least a
	// page. 0 means DefaultRingBufferBytes.
	RingBufferBytes int
	// WakeupBytes batches reader wakeups: the kernel wakes the reader only
	// once this many bytes are waiting, and Run polls every PollInterval
	// for the rest. 0 wakes the reader for every record.
	WakeupBytes  int
	PollInterval time.Duration
	// Budgets turns on copy budgets: each HTTP/1 message is copied up to
	// RequestBudget or ResponseBudget bytes from its first byte (0:
	// unlimited) and the rest only counted; SetPortBudgets overrides
	// them per server port. Off: every byte is copied.
	Budgets        bool
	RequestBudget  uint32
	ResponseBudget uint32
}

// MaxBudgetPorts is MAX_BUDGET_PORTS: per-port budget overrides.
const MaxBudgetPorts = 256

// PortBudget is the copy budget of one server port's messages (0:
// unlimited).
type PortBudget struct {
	Request, Response uint32
}

func (c Config) validate() error {
	if c.ChunkMax < 0 || c.ChunkMax > MaxChunkData {
		return fmt.Errorf("chunk max %d outside 0..%d", c.ChunkMax, MaxChunkData)
	}
	if len(c.Ports) > MaxPorts {
		return fmt.Errorf("%d ports, at most %d", len(c.Ports), MaxPorts)
	}
	if n := c.RingBufferBytes; n != 0 && (n < os.Getpagesize() || n&(n-1) != 0) {
		return fmt.Errorf("ring buffer size %d is not a power of two >= page size", n)
	}
	if c.WakeupBytes < 0 || (c.WakeupBytes > 0 && c.PollInterval <= 0) {
		return fmt.Errorf("wakeup bytes %d needs a positive poll interval", c.WakeupBytes)
	}
	return nil
}

// counterNames names the kernel counters in Counters(); indexed by enum
// capture_counter (constants generated from apiwarden_events.h).
var counterNames = [...]string{
	captureCaptureCounterCNT_SEGMENTS_SEEN:      "segments_seen",
	captureCaptureCounterCNT_CHUNKS_CAPTURED:    "chunks_captured",
	captureCaptureCounterCNT_BYTES_CAPTURED:     "bytes_captured",
	captureCaptureCounterCNT_CHUNKS_TRUNCATED:   "chunks_truncated",
	captureCaptureCounterCNT_BYTES_TRUNCATED:    "bytes_truncated",
	captureCaptureCounterCNT_CHUNKS_LOST:        "chunks_lost",
	captureCaptureCounterCNT_NON_TCP:            "non_tcp",
	captureCaptureCounterCNT_PORT_FILTERED:      "port_filtered",
	captureCaptureCounterCNT_MALFORMED:          "malformed",
	captureCaptureCounterCNT_NOT_PARSED:         "not_parsed",
	captureCaptureCounterCNT_SEEN_ELSEWHERE:     "seen_elsewhere",
	captureCaptureCounterCNT_SEGMENTS_SKIPPED:   "segments_skipped",
	captureCaptureCounterCNT_BYTES_SKIPPED:      "bytes_skipped",
	captureCaptureCounterCNT_BUDGET_FLOWS_LOST:  "budget_flows_lost",
	captureCaptureCounterCNT_CIPHERTEXT_SKIPPED: "ciphertext_segments_skipped",
}

// CounterDecodeErrors is the userspace counter of records DecodeChunk
// rejected, reported by Counters next to the kernel counters.
const CounterDecodeErrors = "decode_errors"

// Sensor owns the loaded capture programs, their maps and tcx links.
type Sensor struct {
	log    *slog.Logger
	objs   captureObjects
	reader *ringbuf.Reader
	clock  Clock
	poll   time.Duration // 0: the kernel wakes the reader for every record

	decodeErrors atomic.Uint64

	mu    sync.Mutex
	links map[int][2]link.Link // ifindex -> ingress, egress
}

// New loads the capture programs with cfg baked in. It needs root or
// CAP_BPF+CAP_NET_ADMIN+CAP_PERFMON. Nothing is attached yet.
func New(cfg Config, log *slog.Logger) (*Sensor, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("capture config: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "capture")
	clk, err := NewClock()
	if err != nil {
		return nil, err
	}
	spec, err := newSpec(cfg)
	if err != nil {
		return nil, err
	}
	s := &Sensor{log: log, clock: clk, links: map[int][2]link.Link{}}
	if err := spec.LoadAndAssign(&s.objs, nil); err != nil {
		return nil, loadError(err)
	}
	rd, err := ringbuf.NewReader(s.objs.Chunks)
	if err != nil {
		s.objs.Close()
		return nil, err
	}
	s.reader = rd
	if cfg.WakeupBytes > 0 {
		s.poll = cfg.PollInterval
		rd.SetDeadline(time.Now().Add(s.poll))
	}
	log.Info("capture loaded", "chunk_max", cfg.ChunkMax, "ports", cfg.Ports,
		"ring_buffer_bytes", spec.Maps[captureMapChunks].MaxEntries)
	return s, nil
}

// newSpec returns the collection spec with cfg written into its constants.
func newSpec(cfg Config) (*ebpf.CollectionSpec, error) {
	spec, err := loadCapture()
	if err != nil {
		return nil, fmt.Errorf("capture spec: %w", err)
	}
	chunkMax := uint32(cfg.ChunkMax)
	if chunkMax == 0 {
		chunkMax = uint32(MaxChunkData)
	}
	var ports [MaxPorts]uint16
	copy(ports[:], cfg.Ports)
	for name, v := range map[string]any{
		captureVarChunkMax:       chunkMax,
		captureVarPorts:          ports,
		captureVarN_ports:        uint32(len(cfg.Ports)),
		captureVarWakeupBytes:    uint32(cfg.WakeupBytes),
		captureVarBudgetsOn:      b2u(cfg.Budgets),
		captureVarRequestBudget:  cfg.RequestBudget,
		captureVarResponseBudget: cfg.ResponseBudget,
	} {
		if err := spec.Variables[name].Set(v); err != nil {
			return nil, fmt.Errorf("set %s: %w", name, err)
		}
	}
	ring := cfg.RingBufferBytes
	if ring == 0 {
		ring = DefaultRingBufferBytes
	}
	spec.Maps[captureMapChunks].MaxEntries = uint32(ring)
	return spec, nil
}

// loadError explains the two failures an operator can act on: missing
// privileges and a verifier rejection (whose log is the only useful clue).
func loadError(err error) error {
	if errors.Is(err, unix.EPERM) {
		return fmt.Errorf("load capture programs (need root or CAP_BPF+CAP_NET_ADMIN+CAP_PERFMON): %w", err)
	}
	var ve *ebpf.VerifierError
	if errors.As(err, &ve) {
		return fmt.Errorf("load capture programs: %w\nverifier log:\n%+v", err, ve)
	}
	return fmt.Errorf("load capture programs: %w", err)
}

// Attach hooks both programs to an interface (tcx ingress and egress).
// Attaching an interface twice is a no-op.
func (s *Sensor) Attach(ifindex int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.links[ifindex]; ok {
		return nil
	}
	in, err := link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: s.objs.CaptureIngress, Attach: ebpf.AttachTCXIngress})
	if err != nil {
		return fmt.Errorf("attach tcx ingress to ifindex %d: %w", ifindex, err)
	}
	eg, err := link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: s.objs.CaptureEgress, Attach: ebpf.AttachTCXEgress})
	if err != nil {
		in.Close()
		return fmt.Errorf("attach tcx egress to ifindex %d: %w", ifindex, err)
	}
	// Which hooks capture here (see watched_ifaces in capture.c). Loopback
	// traffic passes lo's egress and ingress: keep one. Until this entry
	// exists, both hooks capture, which reassembly de-duplicates anyway.
	watch := uint8(watchIngress | watchEgress)
	if isLoopback(ifindex) {
		watch = watchIngress
	}
	if err := s.objs.WatchedIfaces.Put(uint32(ifindex), watch); err != nil {
		in.Close()
		eg.Close()
		return fmt.Errorf("register watched ifindex %d: %w", ifindex, err)
	}
	s.links[ifindex] = [2]link.Link{in, eg}
	s.log.Debug("capture attached", "ifindex", ifindex)
	return nil
}

// Detach removes both programs from an interface. Detaching an interface
// that is not attached (or already gone) is not an error.
func (s *Sensor) Detach(ifindex int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.detachLocked(ifindex)
}

func (s *Sensor) detachLocked(ifindex int) error {
	l, ok := s.links[ifindex]
	if !ok {
		return nil
	}
	delete(s.links, ifindex)
	_ = s.objs.WatchedIfaces.Delete(uint32(ifindex))
	// A link of a deleted interface is already detached by the kernel;
	// closing the fd still succeeds, so any error here is real.
	if err := errors.Join(l[0].Close(), l[1].Close()); err != nil {
		return fmt.Errorf("detach ifindex %d: %w", ifindex, err)
	}
	s.log.Debug("capture detached", "ifindex", ifindex)
	return nil
}

// Attached lists the attached interfaces, sorted.
func (s *Sensor) Attached() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]int, 0, len(s.links))
	for i := range s.links {
		out = append(out, i)
	}
	sort.Ints(out)
	return out
}

// Run delivers every captured chunk to fn until ctx ends or the sensor is
// closed; fn runs on Run's goroutine and must not keep the sensor waiting
// (while it runs, the ring buffer fills and the kernel counts losses).
// Call Run once.
func (s *Sensor) Run(ctx context.Context, fn func(apicap.Chunk)) error {
	var rr ringbuf.RecordReader = s.reader
	if s.poll > 0 {
		rr = &pollingReader{r: s.reader, every: s.poll}
	}
	return runLoop(ctx, rr, s.clock, fn, &s.decodeErrors, s.log)
}

func b2u(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// SetPortBudgets replaces the per-port copy budget overrides (server port
// -> budgets; at most MaxBudgetPorts). Messages that start after it use
// them.
func (s *Sensor) SetPortBudgets(b map[uint16]PortBudget) error {
	if len(b) > MaxBudgetPorts {
		return fmt.Errorf("%d port budgets, at most %d", len(b), MaxBudgetPorts)
	}
	var stale []uint16
	var k uint16
	var v capturePortBudget
	it := s.objs.PortBudgets.Iterate()
	for it.Next(&k, &v) {
		if _, ok := b[k]; !ok {
			stale = append(stale, k)
		}
	}
	for _, k := range stale {
		if err := s.objs.PortBudgets.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete port budget %d: %w", k, err)
		}
	}
	for port, pb := range b {
		if err := s.objs.PortBudgets.Put(port, capturePortBudget{Request: pb.Request, Response: pb.Response}); err != nil {
			return fmt.Errorf("port budget %d: %w", port, err)
		}
	}
	return nil
}

// MaxWakePorts bounds SetWakePorts (capture.c MAX_WAKE_PORTS).
const MaxWakePorts = 256

// SetWakePorts names the server ports whose request segments wake the
// reader at once (the hold point's ports: their verdict waits on the
// chunk), replacing the previous set.
func (s *Sensor) SetWakePorts(ports []uint16) error {
	if len(ports) > MaxWakePorts {
		return fmt.Errorf("%d wake ports, at most %d", len(ports), MaxWakePorts)
	}
	want := make(map[uint16]bool, len(ports))
	for _, p := range ports {
		want[p] = true
	}
	var stale []uint16
	var k uint16
	var v uint8
	it := s.objs.WakePorts.Iterate()
	for it.Next(&k, &v) {
		if !want[k] {
			stale = append(stale, k)
		}
	}
	for _, k := range stale {
		if err := s.objs.WakePorts.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete wake port %d: %w", k, err)
		}
	}
	for p := range want {
		if err := s.objs.WakePorts.Put(p, uint8(1)); err != nil {
			return fmt.Errorf("wake port %d: %w", p, err)
		}
	}
	return nil
}

// Flush makes Run deliver every chunk waiting in the ring buffer now,
// without waiting for the kernel's batched wakeup or the next poll: the
// hold point calls it when a held segment arrives, since that segment's
// verdict waits on its chunk.
func (s *Sensor) Flush() error { return s.reader.Flush() }

// pollingReader turns read deadlines into periodic polls: with batched
// wakeups the kernel does not wake the reader for every record, so a Read
// must also return, empty-handed, every interval to collect the rest.
type pollingReader struct {
	r     *ringbuf.Reader
	every time.Duration
}

func (p *pollingReader) Read() ([]byte, error) {
	for {
		rec, err := p.r.Read()
		if errors.Is(err, ringbuf.ErrFlushed) {
			continue
		}
		if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
			return rec, err
		}
		p.r.SetDeadline(time.Now().Add(p.every))
	}
}

func (p *pollingReader) Close() error { return p.r.Close() }

// runLoop is Run without the kernel: tests drive it with ringbuf.Fake.
func runLoop(ctx context.Context, rr ringbuf.RecordReader, clk Clock, fn func(apicap.Chunk),
	decodeErrors *atomic.Uint64, log *slog.Logger) error {
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			rr.Close() // unblocks Read
		case <-done:
		}
	}()
	for {
		rec, err := rr.Read()
		if err != nil {
			if errors.Is(err, ringbuf.ErrClosed) {
				return nil
			}
			if errors.Is(err, ringbuf.ErrFlushed) {
				continue // Flush: everything waiting was delivered
			}
			return fmt.Errorf("read chunks: %w", err)
		}
		c, err := DecodeChunk(rec, clk)
		if err != nil {
			// Rate is bounded by the ring buffer; the counter is the
			// signal, the log line helps find a layout mismatch.
			if decodeErrors.Add(1) == 1 {
				log.Warn("bad chunk record", "err", err)
			}
			continue
		}
		fn(c)
	}
}

// Counters sums the per-CPU kernel counters and adds decode_errors.
func (s *Sensor) Counters() (map[string]uint64, error) {
	out, err := percpu.SumList(s.objs.CaptureCounters, counterNames[:])
	if err != nil {
		return nil, fmt.Errorf("capture counters: %w", err)
	}
	out[CounterDecodeErrors] = s.decodeErrors.Load()
	return out, nil
}

// Close detaches every interface, stops Run and unloads the programs.
func (s *Sensor) Close() error {
	s.mu.Lock()
	var errs []error
	for ifindex := range s.links {
		errs = append(errs, s.detachLocked(ifindex))
	}
	s.mu.Unlock()
	errs = append(errs, s.reader.Close(), s.objs.Close())
	return errors.Join(errs...)
}

// WATCH_* bits of capture.c.
const (
	watchIngress = 1
	watchEgress  = 2
)

// isLoopback reports whether ifindex is a loopback device in the caller's
// network namespace.
func isLoopback(ifindex int) bool {
	ifc, err := net.InterfaceByIndex(ifindex)
	return err == nil && ifc.Flags&net.FlagLoopback != 0
}

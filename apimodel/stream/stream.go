// Package stream reassembles one direction of a TCP connection (or of a
// decrypted TLS stream) from captured chunks into an ordered byte stream,
// reporting missing bytes as explicit gaps instead of guessing them.
package stream

// Default limits, used when a Config field is zero.
const (
	// DefaultMaxBufferedBytes bounds the out-of-order bytes held per
	// direction. Past it the direction skips its oldest hole (a gap) rather
	// than grow: a lost segment must not pin memory.
	DefaultMaxBufferedBytes = 256 << 10
	// DefaultMaxSegments bounds the number of out-of-order segments held
	// per direction, so many tiny segments cannot make insertion quadratic.
	DefaultMaxSegments = 256
)

// Config bounds one direction's reassembly.
type Config struct {
	MaxBufferedBytes int
	MaxSegments      int
	// Budget, if set, is shared by many directions and bounds the
	// out-of-order bytes they hold together.
	Budget *Budget
}

// Budget is a byte allowance shared by the directions of one assembler, so
// memory is bounded by configuration and not by the number of flows. Not
// safe for concurrent use.
type Budget struct {
	Max  int
	used int
}

// Used is the number of bytes held against the budget.
func (b *Budget) Used() int { return b.used }

func (b *Budget) fits(n int) bool { return b == nil || b.used+n <= b.Max }

func (c Config) withDefaults() Config {
	if c.MaxBufferedBytes <= 0 {
		c.MaxBufferedBytes = DefaultMaxBufferedBytes
	}
	if c.MaxSegments <= 0 {
		c.MaxSegments = DefaultMaxSegments
	}
	return c
}

// Stats counts what reassembly did. One Stats is usually shared by every
// direction of an assembler; it is not safe for concurrent use.
type Stats struct {
	Segments    uint64 // segments offered (including pure FIN/RST)
	Bytes       uint64 // payload bytes offered (captured)
	Delivered   uint64 // bytes delivered in order
	Duplicates  uint64 // segments whose bytes were all delivered or held already
	Overlaps    uint64 // segments partly overlapping delivered bytes (trimmed)
	OutOfOrder  uint64 // segments held for later delivery
	BufferLimit uint64 // times MaxBufferedBytes/MaxSegments forced a hole to be skipped
	BudgetLimit uint64 // times the shared Budget forced a hole to be skipped
	Gaps        uint64 // gaps reported
	GapBytes    uint64 // bytes skipped in gaps
	Truncated   uint64 // chunks whose Data was shorter than PayloadLen
	Skips       uint64 // skips reported (bytes past a copy budget)
	SkipBytes   uint64 // bytes skipped on purpose
}

// Output receives one direction's reassembled stream. Data's slice is only
// valid during the call.
type Output interface {
	Data(b []byte)
	// Gap reports n missing bytes between the previous Data and the next.
	Gap(n uint32)
	// End reports that the direction ended (FIN reached, RST or Flush with
	// end requested). No more calls follow.
	End()
}

// Skipper is implemented by Outputs that tell bytes skipped on purpose
// (past the kernel's copy budget) from lost ones; others get a Gap.
type Skipper interface {
	// Skip reports n bytes between the previous Data and the next that
	// were counted but deliberately not copied.
	Skip(n uint32)
}

// TCP flags understood by Add (same values as capture.Flag*).
const (
	flagFIN     = 0x01
	flagSYN     = 0x02
	flagRST     = 0x04
	flagSkipped = 0x80 // capture.FlagSkipped: the missing tail was skipped
)

type segment struct {
	seq uint32
	// data is a private copy; missing is the number of bytes after data
	// that the kernel did not copy (truncation) and that become a gap.
	data    []byte
	missing uint32
	skip    bool // missing was skipped on purpose (copy budget)
	fin     bool
}

// Dir reassembles one direction. The zero value is not usable; use NewDir.
type Dir struct {
	cfg     Config
	stats   *Stats
	started bool
	ended   bool
	next    uint32 // sequence number of the next byte to deliver
	// finSeq is where the stream ends once a FIN was seen.
	finSeen bool
	finSeq  uint32
	pending []segment // sorted by seq relative to next
	held    int       // bytes in pending
}

// NewDir returns an empty direction. stats must not be nil.
func NewDir(cfg Config, stats *Stats) *Dir {
	return &Dir{cfg: cfg.withDefaults(), stats: stats}
}

// Init sets up a Dir value in place (for callers embedding Dir in a larger
// struct to save an allocation).
func (d *Dir) Init(cfg Config, stats *Stats) {
	*d = Dir{cfg: cfg.withDefaults(), stats: stats, pending: d.pending[:0]}
}

// Started reports whether the direction has seen its first segment.
func (d *Dir) Started() bool { return d.started }

// Ended reports whether End was delivered.
func (d *Dir) Ended() bool { return d.ended }

// Next is the sequence number of the next byte expected.
func (d *Dir) Next() uint32 { return d.next }

// Held is the number of out-of-order bytes buffered.
func (d *Dir) Held() int { return d.held }

// diff is b-a in sequence space, correct across wrap-around as long as the
// two are within 2^31 of each other.
func diff(a, b uint32) int32 { return int32(b - a) }

// Add offers one captured segment. seq is the sequence number of data[0];
// payloadLen is the segment's real payload length (>= len(data); the
// difference was truncated by the kernel). A SYN sets the initial sequence;
// otherwise the first segment seen starts the stream.
func (d *Dir) Add(seq uint32, data []byte, payloadLen uint32, flags uint8, out Output) {
	st := d.stats
	st.Segments++
	st.Bytes += uint64(len(data))
	if d.ended {
		st.Duplicates++
		return
	}
	if payloadLen < uint32(len(data)) {
		payloadLen = uint32(len(data))
	}
	if flags&flagSYN != 0 {
		// The SYN occupies one sequence number; data (rare, TFO) follows.
		if !d.started {
			d.started = true
			d.next = seq + 1
		}
		seq++
	}
	if !d.started {
		d.started = true
		d.next = seq
	}
	missing := payloadLen - uint32(len(data))
	skip := flags&flagSkipped != 0 && missing > 0
	if missing > 0 && !skip {
		st.Truncated++
	}
	if flags&flagFIN != 0 && !d.finSeen {
		d.finSeen = true
		d.finSeq = seq + payloadLen
	}
	if flags&flagRST != 0 {
		// The peer is gone: deliver what can be delivered, then end.
		d.place(seq, data, missing, skip, out, false)
		d.Flush(out, true)
		return
	}
	d.place(seq, data, missing, skip, out, true)
	d.drain(out)
	d.maybeEnd(out)
}

// place delivers or buffers one segment.
func (d *Dir) place(seq uint32, data []byte, missing uint32, skip bool, out Output, count bool) {
	st := d.stats
	total := uint32(len(data)) + missing
	if total == 0 {
		return
	}
	off := diff(d.next, seq)
	if off < 0 {
		back := uint32(-off)
		if back >= total {
			if count {
				st.Duplicates++
			}
			return
		}
		if count {
			st.Overlaps++
		}
		if back >= uint32(len(data)) {
			missing -= back - uint32(len(data))
			data = nil
		} else {
			data = data[back:]
		}
		seq = d.next
		off = 0
	}
	if off == 0 {
		d.deliver(data, missing, skip, out)
		return
	}
	d.hold(seq, data, missing, skip, out)
}

func (d *Dir) deliver(data []byte, missing uint32, skip bool, out Output) {
	if len(data) > 0 {
		d.stats.Delivered += uint64(len(data))
		d.next += uint32(len(data))
		out.Data(data)
	}
	if missing == 0 {
		return
	}
	if sk, ok := out.(Skipper); ok && skip {
		d.stats.Skips++
		d.stats.SkipBytes += uint64(missing)
		d.next += missing
		sk.Skip(missing)
		return
	}
	d.gap(missing, out)
}

func (d *Dir) gap(n uint32, out Output) {
	d.stats.Gaps++
	d.stats.GapBytes += uint64(n)
	d.next += n
	out.Gap(n)
}

// hold buffers a segment ahead of next, skipping holes when over budget.
func (d *Dir) hold(seq uint32, data []byte, missing uint32, skip bool, out Output) {
	st := d.stats
	// Keep the list sorted; duplicates of a held segment are dropped.
	i := len(d.pending)
	for i > 0 && diff(d.pending[i-1].seq, seq) < 0 {
		i--
	}
	if i > 0 {
		p := &d.pending[i-1]
		if p.seq == seq && uint32(len(p.data))+p.missing >= uint32(len(data))+missing {
			st.Duplicates++
			return
		}
	}
	for len(d.pending) > 0 && (d.held+len(data) > d.cfg.MaxBufferedBytes || len(d.pending) >= d.cfg.MaxSegments || !d.cfg.Budget.fits(len(data))) {
		// Over budget: the hole before the oldest held segment will not be
		// filled in time. Skip it, deliver what follows, and retry.
		if d.cfg.Budget.fits(len(data)) {
			st.BufferLimit++
		} else {
			st.BudgetLimit++
		}
		d.skipHole(out)
		d.drain(out)
		if d.ended {
			return
		}
		off := diff(d.next, seq)
		if off <= 0 {
			d.place(seq, data, missing, skip, out, false)
			return
		}
		i = len(d.pending)
		for i > 0 && diff(d.pending[i-1].seq, seq) < 0 {
			i--
		}
	}
	if d.held+len(data) > d.cfg.MaxBufferedBytes || !d.cfg.Budget.fits(len(data)) {
		// Even alone the segment is too big to hold: treat the hole as lost.
		if d.cfg.Budget.fits(len(data)) {
			st.BufferLimit++
		} else {
			st.BudgetLimit++
		}
		d.gap(uint32(diff(d.next, seq)), out)
		d.deliver(data, missing, skip, out)
		return
	}
	st.OutOfOrder++
	cp := make([]byte, len(data))
	copy(cp, data)
	d.pending = append(d.pending, segment{})
	copy(d.pending[i+1:], d.pending[i:])
	d.pending[i] = segment{seq: seq, data: cp, missing: missing, skip: skip}
	d.held += len(cp)
	if d.cfg.Budget != nil {
		d.cfg.Budget.used += len(cp)
	}
}

// skipHole reports the gap up to the oldest held segment.
func (d *Dir) skipHole(out Output) {
	if len(d.pending) == 0 {
		return
	}
	if off := diff(d.next, d.pending[0].seq); off > 0 {
		d.gap(uint32(off), out)
	}
}

// drain delivers held segments that have become contiguous.
func (d *Dir) drain(out Output) {
	for len(d.pending) > 0 {
		p := d.pending[0]
		if diff(d.next, p.seq) > 0 {
			break
		}
		// Pop by copying down so the backing array is reused.
		n := copy(d.pending, d.pending[1:])
		d.pending[n] = segment{}
		d.pending = d.pending[:n]
		d.release(len(p.data))
		d.place(p.seq, p.data, p.missing, p.skip, out, false)
	}
}

func (d *Dir) release(n int) {
	d.held -= n
	if d.cfg.Budget != nil {
		d.cfg.Budget.used -= n
	}
}

// Release drops every held segment (and returns its bytes to the budget)
// without delivering them: for a direction that is being thrown away.
func (d *Dir) Release() {
	d.release(d.held)
	d.pending = nil
}

func (d *Dir) maybeEnd(out Output) {
	if d.finSeen && !d.ended && diff(d.next, d.finSeq) <= 0 {
		d.ended = true
		d.Release()
		out.End()
	}
}

// Flush delivers every held segment, reporting the holes between them as
// gaps (used when the flow idles or must be evicted). With end set it also
// ends the direction.
func (d *Dir) Flush(out Output, end bool) {
	if d.ended {
		return
	}
	for len(d.pending) > 0 {
		d.skipHole(out)
		d.drain(out)
	}
	if d.finSeen && diff(d.next, d.finSeq) > 0 {
		d.gap(uint32(diff(d.next, d.finSeq)), out)
	}
	d.maybeEnd(out)
	if end && !d.ended {
		d.ended = true
		d.Release()
		out.End()
	}
}

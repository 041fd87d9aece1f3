// Package assemble turns captured chunks into HTTP calls: it keeps a bounded
// table of connections, reassembles each direction, decides which side is
// the client and the protocol (HTTP/1.x, or HTTP/2 from its preface or its
// frames), and drives the parser that emits call.Call records.
package assemble

import (
	"bytes"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/apiwarden/apiwarden/apimodel/call"
	"github.com/apiwarden/apiwarden/apimodel/capture"
	"github.com/apiwarden/apiwarden/apimodel/http1"
	"github.com/apiwarden/apiwarden/apimodel/http2"
	"github.com/apiwarden/apiwarden/apimodel/stream"
)

// Default limits, used when a Config field is zero.
const (
	DefaultMaxFlows    = 65536
	DefaultIdleTimeout = 60 * time.Second
	// DefaultGapTimeout is how long a flow may sit on out-of-order data
	// before the hole in front of it is declared lost.
	DefaultGapTimeout = 2 * time.Second
	// DefaultCloseLinger keeps a closed flow as a tombstone, so the second
	// capture of its last segments (traffic crossing two watched
	// interfaces) is recognised and dropped instead of opening a new flow.
	DefaultCloseLinger = 5 * time.Second
	// DefaultMaxProbes is how many deliveries of a flow whose client side
	// is unknown are inspected before the flow is declared not HTTP.
	DefaultMaxProbes = 8
	// DefaultMaxBufferedBytes bounds the out-of-order bytes held by all
	// flows together.
	DefaultMaxBufferedBytes = 64 << 20
	// DefaultMaxBodyBytesTotal bounds the captured body bytes of all calls
	// not yet emitted.
	DefaultMaxBodyBytesTotal = 64 << 20
)

// TLSMarker is the call.Call.TLS value of calls rebuilt from decrypted TLS
// chunks; the caller, which knows the library it probed, replaces it.
const TLSMarker = "tls"

// Config bounds the assembler.
type Config struct {
	MaxFlows    int
	IdleTimeout time.Duration
	GapTimeout  time.Duration
	CloseLinger time.Duration
	MaxProbes   int
	// MaxBufferedBytes bounds out-of-order bytes across all flows;
	// Stream.MaxBufferedBytes bounds them per direction.
	MaxBufferedBytes int
	// MaxBodyBytesTotal bounds body bytes held for calls not yet emitted;
	// HTTP.MaxBodyBytes bounds them per message.
	MaxBodyBytesTotal int64
	Stream            stream.Config
	HTTP              http1.Config
	HTTP2             http2.Config
	// OnRequest, when set, is called with each complete request before its
	// response (see http1.Conn.OnRequest), under the assembler's lock.
	OnRequest func(*http1.Conn, *call.Request)
	// OnInvalidRequest, when set, is called with the head of each request
	// the parser rejected (see http1.Conn.OnInvalidRequest).
	OnInvalidRequest func(*http1.Conn, []byte)
}

func (c Config) withDefaults() Config {
	if c.MaxFlows <= 0 {
		c.MaxFlows = DefaultMaxFlows
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.GapTimeout <= 0 {
		c.GapTimeout = DefaultGapTimeout
	}
	if c.CloseLinger <= 0 {
		c.CloseLinger = DefaultCloseLinger
	}
	if c.MaxProbes <= 0 {
		c.MaxProbes = DefaultMaxProbes
	}
	if c.MaxBufferedBytes <= 0 {
		c.MaxBufferedBytes = DefaultMaxBufferedBytes
	}
	if c.MaxBodyBytesTotal <= 0 {
		c.MaxBodyBytesTotal = DefaultMaxBodyBytesTotal
	}
	c.HTTP = c.HTTP.WithDefaults()
	if c.HTTP2.MaxBodyBytes <= 0 {
		// The same body prefix as HTTP/1.
		c.HTTP2.MaxBodyBytes = c.HTTP.MaxBodyBytes
	}
	c.HTTP2 = c.HTTP2.WithDefaults()
	return c
}

// Stats are the assembler's counters (a snapshot).
type Stats struct {
	Chunks            uint64 // chunks added
	Bytes             uint64 // captured payload bytes added
	TLSChunks         uint64 // chunks of decrypted TLS
	FlowsActive       uint64 // flows in the table (gauge, tombstones included)
	BufferedBytes     uint64 // out-of-order bytes held (gauge)
	BodyBytes         uint64 // body bytes held for calls not yet emitted (gauge)
	FlowsCreated      uint64
	FlowsClosed       uint64 // ended by FIN/RST
	FlowsEvictedIdle  uint64 // evicted after IdleTimeout
	FlowsEvictedFull  uint64 // evicted because MaxFlows was reached (table full)
	LateChunks        uint64 // chunks for a closed flow (duplicates, stray retransmits)
	TLSCiphertextFlow uint64 // TC flows ignored because they carry TLS records
	NotHTTPFlows      uint64 // flows ignored because no side looked like HTTP
	HTTP2Flows        uint64 // flows decoded as HTTP/2 (preface, or frames when joined late)
	UndecidedBytes    uint64 // bytes dropped before the client side was known
	Stream            stream.Stats
	HTTP              http1.Stats
	HTTP2             http2.Stats
}

type flowKey struct {
	a, b   netip.AddrPort // TC: the two ends in canonical order
	pid    uint32         // TLS: process and connection id
	connID uint32
	tls    bool
}

type sink struct {
	a   *Assembler
	f   *flow
	dir int
}

func (s *sink) Data(b []byte)   { s.a.onData(s.f, s.dir, b) }
func (s *sink) Gap(n uint32)    { s.a.onGap(s.f, s.dir, n) }
func (s *sink) Skip(n uint32)   { s.a.onSkip(s.f, s.dir, n) }
func (s *sink) End()            { s.a.onEnd(s.f, s.dir) }
func (f *flow) out(d int) *sink { return &f.sinks[d] }

type flow struct {
	key   flowKey
	dirs  [2]stream.Dir
	sinks [2]sink
	addr  [2]netip.AddrPort // sender of each direction
	http  *http1.Conn
	h2    *http2.Conn
	isH2  bool
	// client is the index of the client's direction, -1 while unknown.
	client     int
	checked    [2]bool // first bytes of each direction inspected (TLS records, HTTP/2)
	undecided  [2]bool // bytes were dropped before the roles were known
	ended      [2]bool
	ignored    bool
	closed     bool
	finishing  bool
	probes     int
	last, now  time.Time
	prev, next *flow // LRU list, head = most recent
}

// Assembler is safe for concurrent use; emit is called with its lock held
// and must not call back into the Assembler.
type Assembler struct {
	mu    sync.Mutex
	cfg   Config
	log   *slog.Logger
	emit  func(*call.Call)
	flows map[flowKey]*flow
	head  *flow // most recently used
	tail  *flow // least recently used
	st    Stats
}

// New returns an assembler that calls emit for every call.
func New(cfg Config, log *slog.Logger, emit func(*call.Call)) *Assembler {
	if log == nil {
		log = slog.Default()
	}
	cfg = cfg.withDefaults()
	cfg.Stream.Budget = &stream.Budget{Max: cfg.MaxBufferedBytes}
	cfg.HTTP.BodyBudget = &http1.BodyBudget{Max: cfg.MaxBodyBytesTotal}
	cfg.HTTP2.BodyBudget = cfg.HTTP.BodyBudget
	return &Assembler{
		cfg:   cfg,
		log:   log.With("component", "assemble"),
		emit:  emit,
		flows: make(map[flowKey]*flow),
	}
}

// Stats returns a snapshot of the counters.
func (a *Assembler) Stats() Stats {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.st
	s.FlowsActive = uint64(len(a.flows))
	s.BufferedBytes = uint64(a.cfg.Stream.Budget.Used())
	s.BodyBytes = uint64(a.cfg.HTTP.BodyBudget.Used())
	return s
}

func keyOf(c *capture.Chunk) (flowKey, int) {
	if c.Source.IsTLS() {
		d := 0
		if c.Source == capture.SourceTLSRead {
			d = 1
		}
		return flowKey{pid: c.PID, connID: c.ConnID, tls: true}, d
	}
	s, t := c.Key.Src, c.Key.Dst
	if s.Compare(t) <= 0 {
		return flowKey{a: s, b: t}, 0
	}
	return flowKey{a: t, b: s}, 1
}

// Add feeds one captured chunk.
func (a *Assembler) Add(c capture.Chunk) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.st.Chunks++
	a.st.Bytes += uint64(len(c.Data))
	if c.Source.IsTLS() {
		a.st.TLSChunks++
		// TLS libraries report no TCP flags; a decrypted stream has no
		// handshake of its own.
		c.Flags &^= capture.FlagSYN | capture.FlagFIN | capture.FlagRST
	}
	key, d := keyOf(&c)
	syn := c.Flags&capture.FlagSYN != 0
	f := a.flows[key]
	if f != nil && f.closed {
		if !syn {
			a.st.LateChunks++
			return
		}
		// Port reuse: a new connection on the same tuple.
		a.remove(f)
		f = nil
	}
	if f != nil && key.tls && c.Seq == 0 && f.dirs[d].Started() && f.dirs[d].Next() != 0 {
		// TLS offsets never go back and are never retransmitted: offset 0
		// again means the process reused the connection id (fd).
		a.finish(f, c.Time)
		a.remove(f)
		f = nil
	}
	if f == nil {
		f = a.newFlow(key)
	}
	a.touch(f, c.Time)
	if c.Key.Src.IsValid() {
		f.addr[d] = c.Key.Src
		if !f.addr[1-d].IsValid() {
			f.addr[1-d] = c.Key.Dst
		}
	}
	if syn && f.client < 0 {
		// The SYN without ACK comes from the client, SYN+ACK from the server.
		if c.Flags&capture.FlagACK == 0 {
			f.client = d
		} else {
			f.client = 1 - d
		}
	}
	if f.ignored {
		// Not HTTP (or TLS ciphertext): skip reassembly, watch for the end.
		if c.Flags&capture.FlagFIN != 0 {
			f.ended[d] = true
		}
		if c.Flags&capture.FlagRST != 0 || (f.ended[0] && f.ended[1]) {
			a.st.FlowsClosed++
			a.finish(f, c.Time)
		}
		return
	}
	f.dirs[d].Add(c.Seq, c.Data, c.PayloadLen, c.Flags, f.out(d))
	if c.Flags&capture.FlagRST != 0 && !f.closed {
		f.dirs[1-d].Flush(f.out(1-d), true)
	}
}

func (a *Assembler) newFlow(key flowKey) *flow {
	if len(a.flows) >= a.cfg.MaxFlows && a.tail != nil {
		if a.st.FlowsEvictedFull == 0 {
			// Once: the counter tells how often it happens afterwards.
			a.log.Warn("flow table full, evicting least recently used flows", "max_flows", a.cfg.MaxFlows)
		}
		a.st.FlowsEvictedFull++
		old := a.tail
		a.finish(old, old.last)
		a.remove(old)
	}
	f := &flow{key: key, client: -1}
	for d := range f.dirs {
		f.dirs[d].Init(a.cfg.Stream, &a.st.Stream)
		f.sinks[d] = sink{a: a, f: f, dir: d}
	}
	a.flows[key] = f
	a.st.FlowsCreated++
	return f
}

func (a *Assembler) touch(f *flow, t time.Time) {
	f.last, f.now = t, t
	if a.head == f {
		return
	}
	a.unlink(f)
	f.next = a.head
	if a.head != nil {
		a.head.prev = f
	}
	a.head = f
	if a.tail == nil {
		a.tail = f
	}
}

func (a *Assembler) unlink(f *flow) {
	if f.prev != nil {
		f.prev.next = f.next
	} else if a.head == f {
		a.head = f.next
	}
	if f.next != nil {
		f.next.prev = f.prev
	} else if a.tail == f {
		a.tail = f.prev
	}
	f.prev, f.next = nil, nil
}

func (a *Assembler) remove(f *flow) {
	a.unlink(f)
	delete(a.flows, f.key)
}

var h2Preface = []byte("PRI * HTTP/2.0\r\n")

// looksTLS reports a TLS record header: handshake, alert, change cipher
// spec or application data, version 3.0-3.4 (TLS 1.3 still says 3.1-3.3).
func looksTLS(b []byte) bool {
	return len(b) >= 3 && b[0] >= 0x14 && b[0] <= 0x17 && b[1] == 0x03 && b[2] <= 0x04
}

func (a *Assembler) onData(f *flow, d int, b []byte) {
	if f.ignored || f.closed {
		return
	}
	if !f.checked[d] {
		f.checked[d] = true
		if !f.key.tls && looksTLS(b) {
			a.st.TLSCiphertextFlow++
			a.ignore(f)
			return
		}
		if !f.isH2 && f.http == nil {
			switch {
			case bytes.HasPrefix(b, h2Preface):
				// HTTP/2 with prior knowledge (h2c) or after ALPN h2.
				a.st.HTTP2Flows++
				f.isH2 = true
				f.client = d
			case f.client >= 0 && d != f.client:
				// The server may speak first: HTTP/2 servers (grpc-go,
				// Go after ALPN) send SETTINGS before reading the preface.
				if ok, side := http2.Detect(b); ok && side == 0 {
					a.st.HTTP2Flows++
					f.isH2 = true
				}
			}
		}
	}
	if f.client < 0 {
		switch http1.Detect(b) {
		case http1.KindRequest:
			f.client = d
		case http1.KindResponse:
			f.client = 1 - d
		default:
			if ok, side := http2.Detect(b); ok {
				// HTTP/2 frames without the preface: the server's first
				// SETTINGS, or a connection joined late. The side is
				// known from a HEADERS block's first field.
				if side >= 0 {
					a.st.HTTP2Flows++
					f.isH2 = true
					f.client = d
					if side == 0 {
						f.client = 1 - d
					}
					break
				}
			}
			a.st.UndecidedBytes += uint64(len(b))
			f.undecided[d] = true
			f.probes++
			if f.probes >= a.cfg.MaxProbes {
				a.st.NotHTTPFlows++
				a.ignore(f)
			}
			return
		}
	}
	if f.isH2 {
		h := a.conn2(f)
		if h.Stopped() {
			return
		}
		h.Feed(a.h2dir(f, d), b, f.now)
		return
	}
	h := a.conn(f)
	if h.Stopped() {
		return
	}
	h.Feed(a.hdir(f, d), b, f.now)
}

func (a *Assembler) h2dir(f *flow, d int) http2.Dir {
	if d == f.client {
		return http2.FromClient
	}
	return http2.FromServer
}

// conn2 returns the flow's HTTP/2 decoder, creating it once roles are known.
func (a *Assembler) conn2(f *flow) *http2.Conn {
	if f.h2 != nil {
		return f.h2
	}
	h := http2.NewConn(a.cfg.HTTP2, &a.st.HTTP2, a.emit)
	h.Client, h.Server = f.addr[f.client], f.addr[1-f.client]
	if f.key.tls {
		h.TLS = TLSMarker
		p := &call.Process{PID: f.key.pid}
		if f.client == 1 {
			h.ServerProcess = p
		} else {
			h.ClientProcess = p
		}
	}
	if a.cfg.OnRequest != nil {
		// The request hook takes an http1.Conn for the connection's
		// identity (addresses, TLS marker, processes): hand it a view.
		view := &http1.Conn{Client: h.Client, Server: h.Server, TLS: h.TLS,
			ServerProcess: h.ServerProcess, ClientProcess: h.ClientProcess}
		on := a.cfg.OnRequest
		h.OnRequest = func(_ *http2.Conn, r *call.Request) { on(view, r) }
	}
	f.h2 = h
	for d := range f.undecided {
		if f.undecided[d] {
			h.Gap(a.h2dir(f, d), 0, f.now)
		}
	}
	return h
}

func (a *Assembler) ignore(f *flow) {
	f.ignored = true
	if f.http != nil {
		f.http.Close(f.now)
	}
	if f.h2 != nil {
		f.h2.Close(f.now)
	}
}

func (a *Assembler) hdir(f *flow, d int) http1.Dir {
	if d == f.client {
		return http1.FromClient
	}
	return http1.FromServer
}

// conn returns the flow's HTTP parser, creating it once roles are known.
func (a *Assembler) conn(f *flow) *http1.Conn {
	if f.http != nil {
		return f.http
	}
	h := http1.NewConn(a.cfg.HTTP, &a.st.HTTP, a.emit)
	h.OnRequest = a.cfg.OnRequest
	h.OnInvalidRequest = a.cfg.OnInvalidRequest
	h.Client, h.Server = f.addr[f.client], f.addr[1-f.client]
	if f.key.tls {
		// The caller replaces the marker with the library's name. The
		// process doing the TLS calls serves if it reads the requests
		// (direction 1 is SSL_read).
		h.TLS = TLSMarker
		p := &call.Process{PID: f.key.pid}
		if f.client == 1 {
			h.ServerProcess = p
		} else {
			h.ClientProcess = p
		}
	}
	f.http = h
	for d := range f.undecided {
		if f.undecided[d] {
			// Earlier bytes were dropped: start that side by resyncing.
			h.Gap(a.hdir(f, d), 0, f.now)
		}
	}
	return h
}

func (a *Assembler) onGap(f *flow, d int, n uint32) {
	if f.ignored || f.closed {
		return
	}
	if f.client < 0 {
		f.undecided[d] = true
		return
	}
	if f.isH2 {
		a.conn2(f).Gap(a.h2dir(f, d), n, f.now)
		return
	}
	a.conn(f).Gap(a.hdir(f, d), n, f.now)
}

// onSkip passes bytes skipped by the kernel's copy budget to the parser;
// before the flow's roles are known they count as a gap.
func (a *Assembler) onSkip(f *flow, d int, n uint32) {
	if f.ignored || f.closed {
		return
	}
	if f.client < 0 {
		f.undecided[d] = true
		return
	}
	if f.isH2 {
		// HTTP/2 flows have no copy budget; a skip is a gap.
		a.conn2(f).Gap(a.h2dir(f, d), n, f.now)
		return
	}
	a.conn(f).Skip(a.hdir(f, d), n, f.now)
}

func (a *Assembler) onEnd(f *flow, d int) {
	f.ended[d] = true
	if !f.ignored && f.http != nil {
		f.http.End(a.hdir(f, d), f.now)
	}
	if !f.ignored && f.h2 != nil {
		f.h2.End(a.h2dir(f, d), f.now)
	}
	if f.ended[0] && f.ended[1] && !f.closed && !f.finishing {
		a.st.FlowsClosed++
		a.finish(f, f.now)
	}
}

// finish flushes and closes a flow, emitting what it still holds; the flow
// stays in the table as a tombstone until removed.
func (a *Assembler) finish(f *flow, now time.Time) {
	if f.closed || f.finishing {
		return
	}
	f.finishing = true
	f.now = now
	for d := range f.dirs {
		f.dirs[d].Flush(f.out(d), true)
	}
	if f.http != nil && !f.ignored {
		f.http.Close(now)
	}
	if f.h2 != nil && !f.ignored {
		f.h2.Close(now)
	}
	f.closed = true
	f.http, f.h2 = nil, nil
}

// EndConn finishes the decrypted TLS stream of one process connection
// (call it when the socket closes: connection ids are reused).
func (a *Assembler) EndConn(pid, connID uint32, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if f := a.flows[flowKey{pid: pid, connID: connID, tls: true}]; f != nil {
		a.st.FlowsClosed++
		a.finish(f, now)
		a.remove(f)
	}
}

// Tick evicts idle flows, skips holes that out-of-order data has waited on
// too long, and drops old tombstones. Call it periodically with the
// capture clock.
func (a *Assembler) Tick(now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for f := a.tail; f != nil; {
		prev := f.prev
		age := now.Sub(f.last)
		if age <= a.cfg.GapTimeout {
			break
		}
		switch {
		case f.closed:
			if age > a.cfg.CloseLinger {
				a.remove(f)
			}
		case age > a.cfg.IdleTimeout:
			a.st.FlowsEvictedIdle++
			a.finish(f, now)
			a.remove(f)
		default:
			for d := range f.dirs {
				if f.dirs[d].Held() > 0 {
					f.now = now
					f.dirs[d].Flush(f.out(d), false)
				}
			}
		}
		f = prev
	}
}

// Flush finishes every flow and emits everything held (shutdown, tests).
func (a *Assembler) Flush() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for f := a.tail; f != nil; {
		prev := f.prev
		a.finish(f, f.last)
		a.remove(f)
		f = prev
	}
}

package http1

import (
	"bytes"
	"net/netip"
	"time"
	"unsafe"

	"github.com/apiwarden/apiwarden/apimodel/call"
)

// Default limits, used when a Config field is zero.
const (
	DefaultMaxHeaderBytes = 16 << 10
	DefaultMaxHeaders     = 100
	DefaultMaxBodyBytes   = 64 << 10
	// DefaultMaxFailures is how many consecutive parse failures a
	// connection may have before it is ignored (binary protocol on an
	// HTTP port, or a stream we cannot resynchronise).
	DefaultMaxFailures = 3
	// DefaultMaxPipeline bounds requests waiting for their response.
	DefaultMaxPipeline = 32
	// resyncFactor times MaxHeaderBytes is how far resync may search for a
	// message start after a parse failure before failing again.
	resyncFactor = 4
	// maxChunkLine bounds a chunk-size line with its extensions.
	maxChunkLine = 4096
	// maxChunkSize rejects absurd chunk sizes (and hex overflow).
	maxChunkSize = 1 << 40
)

// Config bounds parsing.
type Config struct {
	MaxHeaderBytes int // head size (request/status line + headers)
	MaxHeaders     int // header fields per message
	MaxBodyBytes   int // body bytes kept per message; the rest is counted only
	MaxFailures    int
	MaxPipeline    int
	// BodyBudget, if set, bounds the body bytes held by all connections
	// sharing it for messages not yet emitted.
	BodyBudget *BodyBudget
}

// BodyBudget is a byte allowance for captured bodies shared by many
// connections: in-flight bodies are bounded by configuration, not by the
// number of connections times their pipelines. Not safe for concurrent use.
type BodyBudget struct {
	Max  int64
	used int64
}

// Used is the number of body bytes held against the budget.
func (b *BodyBudget) Used() int64 { return b.used }

// Take reserves up to n bytes and returns how many were granted (all of n
// without a budget); other parsers sharing the budget (HTTP/2) use it.
func (b *BodyBudget) Take(n int64) int64 {
	if b == nil {
		return n
	}
	n = max(min(n, b.Max-b.used), 0)
	b.used += n
	return n
}

// Release returns n bytes granted by Take.
func (b *BodyBudget) Release(n int64) { b.release(n) }

func (b *BodyBudget) release(n int64) {
	if b != nil {
		b.used -= n
	}
}

// WithDefaults fills zero fields with the Default* limits.
func (c Config) WithDefaults() Config {
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if c.MaxHeaders <= 0 {
		c.MaxHeaders = DefaultMaxHeaders
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MaxFailures <= 0 {
		c.MaxFailures = DefaultMaxFailures
	}
	if c.MaxPipeline <= 1 {
		c.MaxPipeline = DefaultMaxPipeline
	}
	return c
}

// Stats counts parser outcomes; shared by the connections of one assembler
// and not safe for concurrent use.
type Stats struct {
	Requests        uint64 // request heads parsed
	Responses       uint64 // final response heads parsed
	Interim         uint64 // 1xx interim responses skipped
	ParseErrors     uint64 // Invalid results
	HeaderLimit     uint64 // heads over MaxHeaderBytes or MaxHeaders
	BodyTruncated   uint64 // bodies larger than MaxBodyBytes
	BodyBudgetLimit uint64 // bodies cut short because the shared BodyBudget ran out
	Gaps            uint64 // gaps reported by reassembly
	Skips           uint64 // skips reported (bytes past the kernel's copy budget)
	Resyncs         uint64 // message starts found again after a gap or error
	IgnoredConns    uint64 // connections given up after MaxFailures
	Upgraded        uint64 // connections that switched protocol
	Calls           uint64 // calls emitted
	Unanswered      uint64 // calls emitted without a response
	OrphanResponses uint64 // responses with no request to pair with
	PipelineLimit   uint64 // requests emitted early because MaxPipeline was hit
}

// Dir says which side sent bytes.
type Dir uint8

const (
	FromClient Dir = 0
	FromServer Dir = 1
)

type pstate uint8

const (
	stHead pstate = iota
	stBody
	stUntilClose
	stChunkSize
	stChunkData
	stChunkCRLF
	stTrailer
	stResync
	stWaitUpgrade // request side after Upgrade/CONNECT: wait for the response
	stStopped     // upgraded or ignored
)

// headerArray is the inline header storage of a record: most API messages
// fit, so the header slice costs no allocation of its own; a larger array
// would make every record more expensive to allocate and scan.
const headerArray = 8

// headInline is the head (and small body) storage inside a record: a
// typical API message then needs no allocation besides its record. The array
// comes last so the garbage collector, which scans only up to the last
// pointer, never reads it. Sized so a request record fills a 1152-byte
// size class.
const headInline = 544

type reqRecord struct {
	c    call.Call
	r    call.Request
	hdr  [headerArray]call.Header
	head [headInline]byte
}

type respRecord struct {
	r    call.Response
	hdr  [headerArray]call.Header
	head [headInline]byte
}

// headString returns an immutable copy of b, in inline if it fits, and the
// inline space left after it (for a small body). The head bytes are never
// written again, so the string stays valid.
func headString(b []byte, inline *[headInline]byte) (string, []byte) {
	if len(b) > headInline || len(b) == 0 {
		return string(b), inline[:0]
	}
	n := copy(inline[:], b)
	return unsafe.String(&inline[0], n), inline[n:n]
}

type entry struct {
	req      *reqRecord
	resp     *respRecord
	reqDone  bool
	respDone bool
	gap      bool
	charged  int64 // body bytes held against the BodyBudget
}

// msgParser is the state of one direction.
type msgParser struct {
	isReq bool
	state pstate
	buf   []byte  // partial head or resync tail carried between feeds
	scan  int     // resume offset of the head-end scan in buf
	nl    []int32 // line ends found by the head-end scan so far

	start    time.Time
	hasStart bool

	// Current message.
	req        *reqRecord
	resp       *respRecord
	orphan     bool
	body       []byte
	bodySize   int64
	remaining  int64
	capture    bool // still copying body bytes (false after a gap)
	charged    int64
	gap        bool
	upgradeReq bool // request asked to switch protocol

	// Chunked decoding.
	chunkSize  uint64
	chunkDigit bool
	chunkExt   bool
	chunkLine  int
	trailer    int
	lineStart  bool // trailer: at a line start; resync: b[0] is a line start

	failures int
	// resyncBudget is what resync may still skip after a parse failure
	// before that counts as one more failure: garbage must end in Ignored.
	resyncBudget int
	afterFail    bool
}

// Conn parses one connection. Set Client and Server before feeding; they
// are copied into every emitted call. Not safe for concurrent use.
type Conn struct {
	Client, Server netip.AddrPort
	// TLS, ServerProcess and ClientProcess, when set, are copied into
	// every call (the processes as shared pointers).
	TLS                          string
	ServerProcess, ClientProcess *call.Process
	// OnRequest, when set, sees each request as soon as it is complete
	// (head and body), before its response: a verdict made here can still
	// stop the response. The request is the one the call will carry.
	OnRequest func(*Conn, *call.Request)
	// OnInvalidRequest, when set, sees the head of each request the parser
	// rejects once it is complete (framing or header syntax it will not
	// guess at, e.g. an obfuscated Transfer-Encoding): the server may
	// still act on a request the agent could not judge.
	OnInvalidRequest func(c *Conn, head []byte)

	cfg   Config
	stats *Stats
	emit  func(*call.Call)
	p     [2]msgParser
	queue []entry
	nresp int // entries at the front of queue that have a response head
	done  bool
}

// NewConn returns a connection parser that calls emit for every call.
func NewConn(cfg Config, stats *Stats, emit func(*call.Call)) *Conn {
	c := &Conn{cfg: cfg.WithDefaults(), stats: stats, emit: emit}
	c.p[FromClient].isReq = true
	return c
}

// Stopped reports whether the connection is no longer parsed (upgraded,
// ignored after failures, or closed).
func (c *Conn) Stopped() bool {
	return c.done || c.p[0].state == stStopped
}

// Feed parses data sent by dir at time t.
func (c *Conn) Feed(dir Dir, data []byte, t time.Time) {
	p := &c.p[dir]
	for len(data) > 0 && !c.done {
		if p.state == stStopped {
			return
		}
		if len(p.buf) == 0 {
			n := c.run(p, data, t)
			if n < len(data) {
				if !p.hasStart && p.state == stHead {
					p.start, p.hasStart = t, true
				}
				p.buf = append(p.buf[:0], data[n:]...)
			}
			return
		}
		// Join the carried prefix with just enough new bytes to decide;
		// run never leaves more than MaxHeaderBytes unconsumed, so room > 0.
		take := min(len(data), c.cfg.MaxHeaderBytes+1-len(p.buf))
		p.buf = append(p.buf, data[:take]...)
		data = data[take:]
		n := c.run(p, p.buf, t)
		if p.state == stStopped {
			p.buf = nil
			return
		}
		rest := copy(p.buf, p.buf[n:])
		p.buf = p.buf[:rest]
		if n > 0 {
			p.resetScan()
		}
	}
}

// Skip tells dir's parser that n bytes at this point were counted but not
// copied, on purpose (the kernel's copy budget keeps a head and a body
// prefix of each message). Inside a body of known length or one that runs
// until close they count toward its size and leave the body truncated, not
// the call broken. A chunked body cannot be followed without its bytes:
// the message ends there, truncated, and the parser finds the next one.
// Anywhere else a skip is a gap.
func (c *Conn) Skip(dir Dir, n uint32, t time.Time) {
	p := &c.p[dir]
	switch p.state {
	case stBody:
		c.stats.Skips++
		p.capture = false
		if int64(n) < p.remaining {
			p.remaining -= int64(n)
			p.bodySize += int64(n)
			return
		}
		if int64(n) == p.remaining {
			p.bodySize += p.remaining
			p.remaining = 0
			c.finish(p, t)
			return
		}
	case stUntilClose:
		c.stats.Skips++
		p.capture = false
		p.bodySize += int64(n)
		return
	case stChunkSize, stChunkData, stChunkCRLF, stTrailer:
		c.stats.Skips++
		p.capture = false
		p.bodySize += int64(n)
		c.finish(p, t)
		c.restartScan(p)
		return
	}
	c.Gap(dir, n, t)
}

// restartScan drops what p buffered and looks for the next message start.
func (c *Conn) restartScan(p *msgParser) {
	p.buf = p.buf[:0]
	p.resetScan()
	p.hasStart = false
	if p.state == stStopped {
		return
	}
	p.state = stResync
	p.lineStart = true
	p.afterFail = false
	c.stats.Resyncs++
}

// Gap tells dir's parser that n bytes are missing at this point.
func (c *Conn) Gap(dir Dir, n uint32, t time.Time) {
	p := &c.p[dir]
	c.stats.Gaps++
	switch p.state {
	case stStopped, stWaitUpgrade:
		return
	case stBody:
		p.gap = true
		p.capture = false
		if int64(n) < p.remaining {
			p.remaining -= int64(n)
			p.bodySize += int64(n)
			return
		}
		p.bodySize += p.remaining
		extra := int64(n) - p.remaining
		p.remaining = 0
		c.finish(p, t)
		if extra == 0 {
			// The message ended exactly at the gap's end; the next byte
			// is a message start.
			return
		}
	case stUntilClose:
		p.gap = true
		p.capture = false
		p.bodySize += int64(n)
		return
	case stChunkSize, stChunkData, stChunkCRLF, stTrailer:
		p.gap = true
		c.finish(p, t)
	}
	// Whatever was buffered is no longer contiguous with what follows.
	c.restartScan(p)
}

// End reports that dir's stream ended (FIN). A response without length
// ends here; any message cut short is finished with Gap set.
func (c *Conn) End(dir Dir, t time.Time) {
	p := &c.p[dir]
	switch p.state {
	case stUntilClose:
		c.finish(p, t)
	case stBody, stChunkSize, stChunkData, stChunkCRLF, stTrailer:
		p.gap = true
		c.finish(p, t)
	}
	p.buf = p.buf[:0]
}

// Close finishes the connection: cut-short messages are finished with Gap
// set and requests still waiting are emitted without a response.
func (c *Conn) Close(t time.Time) {
	if c.done {
		return
	}
	c.End(FromClient, t)
	c.End(FromServer, t)
	for i := range c.queue {
		e := &c.queue[i]
		if !e.reqDone {
			e.gap = true
		}
		if e.resp != nil && !e.respDone {
			e.gap = true
		}
		c.emitEntry(e)
	}
	clear(c.queue)
	c.queue = c.queue[:0]
	c.nresp = 0
	c.done = true
}

// run consumes a prefix of b and returns its length; it leaves bytes
// unconsumed only when a head (or a resync candidate) needs more data.
func (c *Conn) run(p *msgParser, b []byte, t time.Time) int {
	n := 0
	for n < len(b) {
		switch p.state {
		case stHead:
			if !p.hasStart {
				// Tolerate empty lines between messages (RFC 9112 2.2).
				for n < len(b) && (b[n] == '\r' || b[n] == '\n') {
					n++
				}
				if n == len(b) {
					return n
				}
			}
			end, resume, nl := findHeadEnd(b[n:], p.scan, p.nl)
			p.nl = nl
			if end < 0 {
				// Reject garbage before buffering a whole head. The start
				// line parsers apply the same rules to a complete head, so
				// the outcome does not depend on segmentation.
				if !plausiblePrefix(b[n:], p.isReq) {
					c.fail(p)
					continue
				}
				if len(b)-n > c.cfg.MaxHeaderBytes {
					c.stats.HeaderLimit++
					c.fail(p)
					continue
				}
				p.scan = resume
				return n
			}
			if end > c.cfg.MaxHeaderBytes {
				c.stats.HeaderLimit++
				c.fail(p)
				continue
			}
			if !p.hasStart {
				p.start = t
			}
			p.hasStart = false
			st := c.head(p, b[n:n+end], t)
			p.resetScan()
			if st == Invalid {
				if p.isReq && c.OnInvalidRequest != nil {
					c.OnInvalidRequest(c, b[n:n+end])
				}
				c.fail(p)
				continue
			}
			n += end
		case stBody:
			k := int(min(p.remaining, int64(len(b)-n)))
			c.bodyBytes(p, b[n:n+k])
			p.remaining -= int64(k)
			n += k
			if p.remaining == 0 {
				c.finish(p, t)
			}
		case stUntilClose:
			c.bodyBytes(p, b[n:])
			n = len(b)
		case stChunkSize, stChunkCRLF, stTrailer:
			k, st := c.chunkMeta(p, b[n:], t)
			n += k
			if st == Invalid {
				p.gap = true
				c.finish(p, t)
				c.fail(p)
			}
		case stChunkData:
			k := int(min(p.remaining, int64(len(b)-n)))
			c.bodyBytes(p, b[n:n+k])
			p.remaining -= int64(k)
			n += k
			if p.remaining == 0 {
				p.state = stChunkCRLF
			}
		case stResync:
			k, found := c.resync(p, b[n:])
			if p.afterFail && k > p.resyncBudget {
				// Fail at exactly the budget's end, whatever the feed
				// sizes, so the outcome does not depend on segmentation.
				n += p.resyncBudget
				c.fail(p)
				continue
			}
			p.resyncBudget -= k
			n += k
			if !found {
				return n
			}
			p.state = stHead
			p.hasStart = false
			p.resetScan()
		case stWaitUpgrade, stStopped:
			return len(b)
		}
	}
	return n
}

func (p *msgParser) resetScan() {
	p.scan = 0
	p.nl = p.nl[:0]
}

// fail records an Invalid parse and moves to resync past the current line.
func (c *Conn) fail(p *msgParser) {
	c.stats.ParseErrors++
	p.failures++
	p.hasStart = false
	p.resetScan()
	if p.failures >= c.cfg.MaxFailures {
		c.stats.IgnoredConns++
		c.stop()
		return
	}
	p.state = stResync
	p.lineStart = false
	p.afterFail = true
	p.resyncBudget = resyncFactor * c.cfg.MaxHeaderBytes
	c.stats.Resyncs++
}

// stop ends parsing of both directions; buffers are released by Feed,
// which may be iterating over one of them right now.
func (c *Conn) stop() {
	for i := range c.p {
		c.p[i].state = stStopped
		// A message cut off here is never finished: return its charge.
		c.cfg.BodyBudget.release(c.p[i].charged)
		c.p[i].charged = 0
	}
}

// resync looks for a line that starts a message. It returns how many bytes
// to drop and whether a start was found there; when not found, the bytes
// not consumed are a possible start needing more data.
func (c *Conn) resync(p *msgParser, b []byte) (int, bool) {
	i := 0
	if !p.lineStart {
		j := bytes.IndexByte(b, '\n')
		if j < 0 {
			return len(b), false
		}
		i = j + 1
	}
	for {
		p.lineStart = true
		if i >= len(b) {
			return len(b), false
		}
		k, more := startKind(b[i:])
		if more {
			return i, false
		}
		want := KindResponse
		if p.isReq {
			want = KindRequest
		}
		if k == want {
			p.lineStart = false
			return i, true
		}
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			p.lineStart = false
			return len(b), false
		}
		i += j + 1
	}
}

// head parses a complete head and sets up the body state.
func (c *Conn) head(p *msgParser, b []byte, t time.Time) State {
	nl := p.nl
	var f framing
	if p.isReq {
		rec := &reqRecord{}
		s, spare := headString(b, &rec.head)
		line := line(s, nl, 0)
		r := &rec.r
		if parseRequestLine(line, r) != Done {
			if line == "PRI * HTTP/2.0" {
				// HTTP/2 prior knowledge: not ours to parse.
				c.stats.Upgraded++
				c.stop()
				return EndOfStream
			}
			return Invalid
		}
		hs, st, tooMany := parseHeaders(s, nl, rec.hdr[:0], c.cfg.MaxHeaders, &f)
		if st != Done {
			if tooMany {
				c.stats.HeaderLimit++
			}
			return Invalid
		}
		if f.otherTE {
			return Invalid
		}
		r.Headers = hs
		if r.Host == "" {
			r.Host = f.host
		}
		r.Start = p.start
		c.stats.Requests++
		p.failures = 0
		c.push(rec)
		p.req = rec
		p.upgradeReq = f.upgrade || r.Method == "CONNECT"
		p.startBody(&f, false, c.cfg.MaxBodyBytes, spare)
		if p.state == stHead {
			c.finish(p, t)
		}
		return Done
	}
	rec := &respRecord{}
	s, spare := headString(b, &rec.head)
	line := line(s, nl, 0)
	r := &rec.r
	if parseStatusLine(line, r) != Done {
		return Invalid
	}
	hs, st, tooMany := parseHeaders(s, nl, rec.hdr[:0], c.cfg.MaxHeaders, &f)
	if st != Done {
		if tooMany {
			c.stats.HeaderLimit++
		}
		return Invalid
	}
	p.failures = 0
	if r.StatusCode < 200 && r.StatusCode != 101 {
		// 100 Continue, 102, 103: interim, never paired.
		c.stats.Interim++
		return Done
	}
	r.Headers = hs
	r.Start = p.start
	c.stats.Responses++
	p.resp = rec
	method := ""
	p.orphan = c.nresp >= len(c.queue)
	if p.orphan {
		c.stats.OrphanResponses++
	} else {
		e := &c.queue[c.nresp]
		e.resp = rec
		method = e.req.r.Method
		c.nresp++
	}
	switchProto := r.StatusCode == 101 || (method == "CONNECT" && r.StatusCode < 300)
	noBody := method == "HEAD" || r.StatusCode == 204 || r.StatusCode == 304 || switchProto
	p.state = stHead
	if !noBody {
		p.startBody(&f, true, c.cfg.MaxBodyBytes, spare)
	}
	if p.state == stHead {
		c.finish(p, t)
	}
	if switchProto {
		c.stats.Upgraded++
		c.flushReady()
		c.stop()
		return EndOfStream
	}
	return Done
}

// startBody picks the body state from the framing headers. spare is unused
// inline record space (len 0) where a small body is kept.
func (p *msgParser) startBody(f *framing, isResp bool, maxBody int, spare []byte) {
	p.body, p.bodySize, p.gap, p.capture = spare, 0, false, true
	switch {
	case f.chunked:
		p.state = stChunkSize
		p.chunkSize, p.chunkDigit, p.chunkExt, p.chunkLine = 0, false, false, 0
		if p.req != nil && p.isReq {
			p.req.r.Chunked = true
		} else if p.resp != nil {
			p.resp.r.Chunked = true
		}
	case f.contentLength > 0:
		p.state = stBody
		p.remaining = f.contentLength
		if want := min(f.contentLength, int64(maxBody)); want > int64(cap(spare)) {
			p.body = make([]byte, 0, want)
		} else {
			// Cap the slice so a consumer's append cannot reach past it.
			p.body = spare[:0:want]
		}
	case f.contentLength == 0:
		p.state = stHead
	case isResp:
		// No length: the body runs until the server closes (RFC 9112 6.3).
		p.state = stUntilClose
	default:
		p.state = stHead
	}
}

// bodyBytes counts body bytes and keeps the first MaxBodyBytes of them.
func (c *Conn) bodyBytes(p *msgParser, b []byte) {
	p.bodySize += int64(len(b))
	if !p.capture {
		return
	}
	take := min(c.cfg.MaxBodyBytes-len(p.body), len(b))
	if bb := c.cfg.BodyBudget; bb != nil {
		if avail := bb.Max - bb.used; int64(take) > avail {
			take = int(max(avail, 0))
			c.stats.BodyBudgetLimit++
			p.capture = false
		}
		bb.used += int64(take)
		p.charged += int64(take)
	}
	if take <= 0 {
		return
	}
	p.body = append(p.body, b[:take]...)
}

// chunkMeta parses chunk-size lines, the CRLF after chunk data and the
// trailer section, a byte at a time (they are short).
func (c *Conn) chunkMeta(p *msgParser, b []byte, t time.Time) (int, State) {
	for i := 0; i < len(b); i++ {
		ch := b[i]
		switch p.state {
		case stChunkSize:
			p.chunkLine++
			if p.chunkLine > maxChunkLine {
				return i, Invalid
			}
			switch {
			case ch == '\n':
				if !p.chunkDigit {
					return i, Invalid
				}
				if p.chunkSize == 0 {
					p.state = stTrailer
					p.lineStart = true
					p.trailer = 0
				} else {
					p.state = stChunkData
					p.remaining = int64(p.chunkSize)
				}
				p.chunkSize, p.chunkDigit, p.chunkExt, p.chunkLine = 0, false, false, 0
				return i + 1, NeedMore
			case p.chunkExt || ch == '\r':
			case ch == ';' || ch == ' ' || ch == '\t':
				p.chunkExt = true
			default:
				v := unhex(ch)
				if v < 0 {
					return i, Invalid
				}
				p.chunkSize = p.chunkSize<<4 | uint64(v)
				p.chunkDigit = true
				if p.chunkSize > maxChunkSize {
					return i, Invalid
				}
			}
		case stChunkCRLF:
			switch ch {
			case '\r':
			case '\n':
				p.state = stChunkSize
				return i + 1, NeedMore
			default:
				return i, Invalid
			}
		case stTrailer:
			p.trailer++
			if p.trailer > c.cfg.MaxHeaderBytes {
				c.stats.HeaderLimit++
				return i, Invalid
			}
			switch {
			case ch == '\n':
				if p.lineStart {
					c.finish(p, t)
					return i + 1, Done
				}
				p.lineStart = true
			case ch == '\r':
			default:
				p.lineStart = false
			}
		default:
			return i, NeedMore
		}
	}
	return len(b), NeedMore
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// push queues a request head, emitting the oldest early when the pipeline
// bound is reached.
func (c *Conn) push(rec *reqRecord) {
	if len(c.queue) >= c.cfg.MaxPipeline {
		c.stats.PipelineLimit++
		e := c.queue[0]
		if !e.reqDone {
			e.gap = true
		}
		if e.resp != nil && !e.respDone {
			// Its response is being parsed: drop that response.
			c.p[FromServer].orphan = true
			e.resp = nil
		}
		c.emitEntry(&e)
		c.pop()
	}
	c.queue = append(c.queue, entry{req: rec})
}

func (c *Conn) pop() {
	copy(c.queue, c.queue[1:])
	c.queue[len(c.queue)-1] = entry{}
	c.queue = c.queue[:len(c.queue)-1]
	if c.nresp > 0 {
		c.nresp--
	}
}

// finish completes the current message of p.
func (c *Conn) finish(p *msgParser, t time.Time) {
	p.state = stHead
	truncated := p.bodySize > int64(len(p.body))
	if len(p.body) == 0 {
		p.body = nil
	}
	if truncated {
		c.stats.BodyTruncated++
	}
	if p.isReq {
		rec := p.req
		p.req = nil
		if rec == nil {
			c.dropBody(p)
			return
		}
		rec.r.Body, rec.r.BodySize, rec.r.BodyTruncated = p.body, p.bodySize, truncated
		rec.r.End = t
		if c.OnRequest != nil {
			c.OnRequest(c, &rec.r)
		}
		for i := len(c.queue) - 1; i >= 0; i-- {
			if c.queue[i].req == rec {
				c.queue[i].reqDone = true
				c.queue[i].gap = c.queue[i].gap || p.gap
				c.queue[i].charged += p.charged
				p.charged = 0
				break
			}
		}
		if p.upgradeReq {
			// The client speaks the new protocol once the server agrees;
			// hold off until the response says yes (stop) or no (resync).
			p.state = stWaitUpgrade
		}
	} else {
		rec := p.resp
		p.resp = nil
		if rec == nil {
			c.dropBody(p)
			return
		}
		rec.r.Body, rec.r.BodySize, rec.r.BodyTruncated = p.body, p.bodySize, truncated
		rec.r.End = t
		if !p.orphan && c.nresp > 0 {
			e := &c.queue[c.nresp-1]
			e.respDone = true
			e.gap = e.gap || p.gap
			e.charged += p.charged
			p.charged = 0
		}
		p.orphan = false
		if q := &c.p[FromClient]; q.state == stWaitUpgrade {
			// The server refused to switch: requests may follow.
			q.state = stResync
			q.lineStart = true
			q.buf = q.buf[:0]
		}
	}
	c.dropBody(p)
	c.flushReady()
}

// dropBody forgets the current body; a charge not moved to a queued call
// (orphan response, evicted request) is returned to the budget here.
func (c *Conn) dropBody(p *msgParser) {
	c.cfg.BodyBudget.release(p.charged)
	p.charged = 0
	p.body, p.gap = nil, false
}

// flushReady emits complete calls from the front of the queue.
func (c *Conn) flushReady() {
	for len(c.queue) > 0 && c.queue[0].reqDone && c.queue[0].respDone {
		e := c.queue[0]
		c.emitEntry(&e)
		c.pop()
	}
}

func (c *Conn) emitEntry(e *entry) {
	// The call leaves our custody with its bodies.
	c.cfg.BodyBudget.release(e.charged)
	e.charged = 0
	rec := e.req
	cl := &rec.c
	cl.Client, cl.Server = c.Client, c.Server
	cl.TLS, cl.ServerProcess, cl.ClientProcess = c.TLS, c.ServerProcess, c.ClientProcess
	cl.Request = &rec.r
	cl.Gap = e.gap
	c.stats.Calls++
	if e.resp != nil {
		cl.Response = &e.resp.r
		if d := e.resp.r.Start.Sub(rec.r.End); d > 0 && !rec.r.End.IsZero() {
			cl.Latency = d
		}
	} else {
		c.stats.Unanswered++
	}
	c.emit(cl)
}

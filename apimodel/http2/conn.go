// Package http2 rebuilds HTTP/2 (h2c, h2 over decrypted TLS) and gRPC calls
// from the two byte directions of one connection, the way apimodel/http1
// does for HTTP/1.x: feed each direction's bytes in order, report gaps, and
// call.Call records come out, one per stream.
//
// Frames are parsed by hand from their 9-byte header rather than with
// golang.org/x/net/http2.Framer: the Framer reads whole frames from a
// blocking io.Reader, while capture delivers arbitrary chunks that end in
// the middle of frames; it also allocates per frame, validates as a peer
// (it would reject what a mid-connection join sees) and cannot skip the
// DATA bytes past the body prefix without buffering them. Header blocks
// are decoded with golang.org/x/net/http2/hpack, one decoder per direction.
package http2

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/apiwarden/apiwarden/apimodel/call"
	"github.com/apiwarden/apiwarden/apimodel/http1"
)

// Default limits, used when a Config field is zero.
const (
	DefaultMaxStreams        = 128
	DefaultMaxHeaderListSize = 64 << 10
	DefaultMaxHeaderBlock    = 64 << 10
	DefaultMaxBodyBytes      = 64 << 10
	DefaultMaxFrameBuffer    = 64 << 10
	// maxFrameLen is the largest frame length HTTP/2 allows (2^24-1).
	maxFrameLen = 1<<24 - 1
	// resyncFrameLen bounds the length of a frame accepted as a resync
	// point: a larger length is more likely garbage than a frame.
	resyncFrameLen = 1 << 20
	// maxResyncBuffer bounds the bytes held while looking for a frame
	// boundary; maxResyncSkip is how many bytes resync may discard before
	// the connection is given up as not HTTP/2.
	maxResyncBuffer = 128 << 10
	maxResyncSkip   = 1 << 20
)

// Preface is the client connection preface.
const Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// Config bounds the decoder.
type Config struct {
	// MaxStreams bounds the open streams tracked per connection; past it
	// the oldest is emitted as incomplete.
	MaxStreams int
	// MaxHeaderListSize bounds the decoded header list per block (RFC 9113
	// size: name + value + 32 per field); fields past it are dropped.
	MaxHeaderListSize int
	// MaxHeaderBlock bounds the compressed bytes of one header block
	// (HEADERS + CONTINUATION); a larger block is skipped and the
	// direction's HPACK table recovers as after a mid-connection join.
	MaxHeaderBlock int
	// MaxBodyBytes is the body prefix kept per message; the rest is
	// counted only.
	MaxBodyBytes int
	// MaxFrameBuffer bounds the payload of non-DATA frames held while they
	// arrive; DATA payload is never buffered.
	MaxFrameBuffer int
	// BodyBudget, if set, bounds the body bytes held by all connections
	// sharing it (HTTP/1 ones too) for calls not yet emitted.
	BodyBudget *http1.BodyBudget
}

// WithDefaults fills zero fields with the Default* limits.
func (c Config) WithDefaults() Config {
	if c.MaxStreams <= 0 {
		c.MaxStreams = DefaultMaxStreams
	}
	if c.MaxHeaderListSize <= 0 {
		c.MaxHeaderListSize = DefaultMaxHeaderListSize
	}
	if c.MaxHeaderBlock <= 0 {
		c.MaxHeaderBlock = DefaultMaxHeaderBlock
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MaxFrameBuffer <= 0 {
		c.MaxFrameBuffer = DefaultMaxFrameBuffer
	}
	if c.MaxFrameBuffer < c.MaxHeaderBlock {
		c.MaxFrameBuffer = c.MaxHeaderBlock
	}
	return c
}

// Stats counts decoder outcomes; shared by the connections of one
// assembler and not safe for concurrent use.
type Stats struct {
	Conns         uint64 // connections decoded
	MidJoin       uint64 // connections (directions) joined without the preface / first SETTINGS
	Frames        uint64 // frame headers parsed
	FrameErrors   uint64 // frames that break the protocol (bad lengths, stray CONTINUATION)
	HPACKErrors   uint64 // header blocks HPACK could not decode (table reset)
	Resyncs       uint64 // frame boundaries found again after a join, gap or error
	Gaps          uint64 // gaps reported by reassembly
	Streams       uint64 // streams opened by a request HEADERS
	StreamLimit   uint64 // streams emitted early because MaxStreams was hit
	HeaderLimit   uint64 // header lists or blocks over their bound
	BodyTruncated uint64 // message bodies past MaxBodyBytes
	BodyBudget    uint64 // bodies cut short because the shared BodyBudget ran out
	Resets        uint64 // RST_STREAM frames
	Calls         uint64 // calls emitted
	Partial       uint64 // calls emitted with fields HPACK could not recover
	NoPath        uint64 // request blocks dropped: :method or :path not recovered
	Orphans       uint64 // responses or DATA on streams opened before the join
	Unanswered    uint64 // calls emitted without a response
	GRPCCalls     uint64
	IgnoredConns  uint64 // connections given up (resync found no frames)
}

// Dir says which side sent bytes.
type Dir uint8

const (
	FromClient Dir = 0
	FromServer Dir = 1
)

// Frame types (RFC 9113 section 6).
const (
	frameData         = 0x0
	frameHeaders      = 0x1
	framePriority     = 0x2
	frameRSTStream    = 0x3
	frameSettings     = 0x4
	framePushPromise  = 0x5
	framePing         = 0x6
	frameGoAway       = 0x7
	frameWindowUpdate = 0x8
	frameContinuation = 0x9

	flagEndStream  = 0x1
	flagAck        = 0x1
	flagEndHeaders = 0x4
	flagPadded     = 0x8
	flagPriority   = 0x20
)

type mode uint8

const (
	modePreface mode = iota // client: expecting the preface; server: the first SETTINGS
	modeFrames
	modeResync
)

type frameHeader struct {
	length int
	typ    byte
	flags  byte
	sid    uint32
}

func parseHeader(b []byte) frameHeader {
	return frameHeader{
		length: int(b[0])<<16 | int(b[1])<<8 | int(b[2]),
		typ:    b[3],
		flags:  b[4],
		sid:    binary.BigEndian.Uint32(b[5:9]) & 0x7fffffff,
	}
}

// plausible reports whether h could be a frame header a real peer sent: a
// known type with only its defined flags and a length and stream id that
// fit it. Used to find frame boundaries in a stream joined late.
func plausible(b []byte) bool {
	if b[5]&0x80 != 0 {
		return false
	}
	h := parseHeader(b)
	if h.length > resyncFrameLen {
		return false
	}
	conn := h.sid == 0
	switch h.typ {
	case frameData:
		return !conn && h.flags&^(flagEndStream|flagPadded) == 0
	case frameHeaders:
		return !conn && h.flags&^(flagEndStream|flagEndHeaders|flagPadded|flagPriority) == 0 && h.length > 0
	case framePriority:
		return !conn && h.flags == 0 && h.length == 5
	case frameRSTStream:
		return !conn && h.flags == 0 && h.length == 4
	case frameSettings:
		return conn && h.flags&^flagAck == 0 && h.length%6 == 0 && (h.flags == 0 || h.length == 0)
	case framePushPromise:
		return !conn && h.flags&^(flagEndHeaders|flagPadded) == 0 && h.length >= 4
	case framePing:
		return conn && h.flags&^flagAck == 0 && h.length == 8
	case frameGoAway:
		return conn && h.flags == 0 && h.length >= 8
	case frameWindowUpdate:
		return h.flags == 0 && h.length == 4
	case frameContinuation:
		return !conn && h.flags&^flagEndHeaders == 0
	}
	return false
}

// direction is the frame parser of one direction.
type direction struct {
	mode    mode
	hdr     [9]byte
	nhdr    int
	inFrame bool
	fh      frameHeader
	left    int // payload bytes of the current frame not yet consumed

	// DATA frames are streamed: the pad length is read first when padded;
	// dataLeft is the data (not padding) still to come.
	needPad  bool
	dataLeft int
	st       *stream // DATA target (nil: not tracked)

	// Other frames are buffered up to MaxFrameBuffer, or skipped.
	fbuf []byte
	skip bool

	// Header block being assembled (HEADERS/PUSH_PROMISE + CONTINUATION).
	inBlock   bool
	blockSID  uint32
	blockEnd  bool // END_STREAM on the HEADERS
	blockPush bool // PUSH_PROMISE: decode for the table only
	block     []byte
	blockBig  bool

	hp *headerDecoder

	// Resync state.
	rbuf    []byte
	skipped int

	prefaceN int // preface bytes matched so far (client)
}

// Conn decodes one HTTP/2 connection. Set Client and Server before feeding;
// they are copied into every emitted call. Not safe for concurrent use.
type Conn struct {
	Client, Server               netip.AddrPort
	TLS                          string
	ServerProcess, ClientProcess *call.Process
	// OnRequest, when set, sees each request once it is complete (END_STREAM
	// from the client), before its response.
	OnRequest func(*Conn, *call.Request)

	cfg     Config
	stats   *Stats
	emit    func(*call.Call)
	d       [2]direction
	streams map[uint32]*stream
	done    bool
	stopped bool
}

// record is what a call points into; one allocation per stream.
type record struct {
	c       call.Call
	req     call.Request
	resp    call.Response
	grpc    call.GRPC
	reqHdr  [8]call.Header
	respHdr [6]call.Header
}

type body struct {
	buf       []byte
	size      int64
	truncated bool
	// gRPC length-prefixed message framing: hdr collects the 5-byte
	// prefix, msgLeft the bytes of the current message.
	ghdr    [5]byte
	nghdr   int
	msgLeft int64
}

type stream struct {
	rec      record
	id       uint32
	respHead bool
	reqDone  bool
	respDone bool
	gap      bool
	partial  bool
	grpc     bool
	body     [2]body
	charged  int64 // body bytes held against the BodyBudget
}

// NewConn returns a connection decoder that calls emit for every call.
func NewConn(cfg Config, stats *Stats, emit func(*call.Call)) *Conn {
	cfg = cfg.WithDefaults()
	c := &Conn{cfg: cfg, stats: stats, emit: emit, streams: make(map[uint32]*stream)}
	for i := range c.d {
		c.d[i].hp = newHeaderDecoder(cfg.MaxHeaderListSize, false)
	}
	stats.Conns++
	return c
}

// Stopped reports whether the connection is no longer decoded (closed, or
// given up because no frames could be found).
func (c *Conn) Stopped() bool { return c.done || c.stopped }

// Feed decodes data sent by dir at time t.
func (c *Conn) Feed(dir Dir, data []byte, t time.Time) {
	d := &c.d[dir]
	for len(data) > 0 && !c.Stopped() {
		switch d.mode {
		case modePreface:
			data = c.preface(dir, d, data)
		case modeResync:
			data = c.resync(dir, d, data)
		default:
			data = c.frames(dir, d, data, t)
		}
	}
}

// preface consumes the client preface, or decides the server direction
// starts with SETTINGS; anything else is a mid-connection join.
func (c *Conn) preface(dir Dir, d *direction, b []byte) []byte {
	if dir == FromServer {
		// The server's first frame is SETTINGS (not an ACK) on stream 0;
		// hold the 9 header bytes until they are all there.
		need := 9 - d.nhdr
		if need > len(b) {
			d.nhdr += copy(d.hdr[d.nhdr:], b)
			return nil
		}
		copy(d.hdr[d.nhdr:], b[:need])
		h := parseHeader(d.hdr[:])
		held := d.nhdr
		d.nhdr = 0
		if h.typ == frameSettings && h.sid == 0 && h.flags == 0 && h.length%6 == 0 {
			d.mode = modeFrames
		} else {
			c.joinLate(d)
		}
		if held > 0 {
			// Replay the held bytes through the chosen mode.
			return append(append([]byte(nil), d.hdr[:held]...), b...)
		}
		return b
	}
	n := min(len(b), len(Preface)-d.prefaceN)
	if string(b[:n]) != Preface[d.prefaceN:d.prefaceN+n] {
		held := Preface[:d.prefaceN]
		d.prefaceN = 0
		c.joinLate(d)
		if held != "" {
			return append([]byte(held), b...)
		}
		return b
	}
	d.prefaceN += n
	if d.prefaceN == len(Preface) {
		d.mode = modeFrames
	}
	return b[n:]
}

// joinLate switches a direction to resync with an HPACK table known to be
// incomplete.
func (c *Conn) joinLate(d *direction) {
	c.stats.MidJoin++
	d.mode = modeResync
	d.hp.reset(true)
}

// lose drops the direction's frame state after a gap or a protocol error:
// the next bytes are searched for a frame boundary, the header block in
// progress is lost and with it the HPACK table's certainty.
func (c *Conn) lose(dir Dir, d *direction) {
	if d.inBlock || (d.inFrame && (d.fh.typ == frameHeaders || d.fh.typ == frameContinuation || d.fh.typ == framePushPromise)) {
		sid := d.blockSID
		if !d.inBlock {
			sid = d.fh.sid
		}
		if s := c.streams[sid]; s != nil {
			s.gap = true
		}
		d.hp.reset(true)
	}
	if d.st != nil {
		d.st.gap = true
	}
	d.inBlock, d.block, d.blockBig = false, d.block[:0], false
	d.inFrame, d.nhdr, d.left, d.st, d.skip = false, 0, 0, nil, false
	d.fbuf = d.fbuf[:0]
	d.rbuf = d.rbuf[:0]
	d.mode = modeResync
	if dir == FromClient && d.prefaceN > 0 && d.prefaceN < len(Preface) {
		d.prefaceN = 0
	}
}

// resync looks for a frame boundary: a plausible header followed by
// another plausible header, or by the end of the captured bytes.
func (c *Conn) resync(dir Dir, d *direction, b []byte) []byte {
	room := maxResyncBuffer - len(d.rbuf)
	take := min(room, len(b))
	d.rbuf = append(d.rbuf, b[:take]...)
	b = b[take:]
	buf := d.rbuf
	for i := 0; i+9 <= len(buf); i++ {
		if !plausible(buf[i:]) || buf[i+3] == frameContinuation {
			// A CONTINUATION cannot start: its HEADERS was missed.
			continue
		}
		next := i + 9 + parseHeader(buf[i:]).length
		switch {
		case next == len(buf):
		case next+9 <= len(buf):
			if !plausible(buf[next:]) {
				continue
			}
		default:
			// The frame (or the header after it) is not all here: keep
			// from i and wait, unless it cannot fit the buffer.
			if next+9-i > maxResyncBuffer {
				continue
			}
			c.discard(d, i)
			return b
		}
		c.stats.Resyncs++
		rest := append(append([]byte(nil), buf[i:]...), b...)
		d.skipped = 0
		d.rbuf = d.rbuf[:0]
		d.mode = modeFrames
		return rest
	}
	c.discard(d, max(0, len(buf)-8))
	return b
}

// discard drops the first n resync bytes, giving the connection up when
// too much was skipped.
func (c *Conn) discard(d *direction, n int) {
	d.skipped += n
	d.rbuf = d.rbuf[:copy(d.rbuf, d.rbuf[n:])]
	if d.skipped > maxResyncSkip {
		c.stats.IgnoredConns++
		c.stopped = true
	}
}

// frames parses frames until b is used up.
func (c *Conn) frames(dir Dir, d *direction, b []byte, t time.Time) []byte {
	for len(b) > 0 && d.mode == modeFrames && !c.Stopped() {
		if !d.inFrame {
			n := copy(d.hdr[d.nhdr:], b)
			d.nhdr += n
			b = b[n:]
			if d.nhdr < 9 {
				return nil
			}
			d.nhdr = 0
			c.stats.Frames++
			fh := parseHeader(d.hdr[:])
			if !c.startFrame(dir, d, fh, t) {
				c.stats.FrameErrors++
				c.lose(dir, d)
				// Resync from the bytes after this header.
				return b
			}
			if d.left == 0 {
				c.endFrame(dir, d, t)
			}
			continue
		}
		n := min(len(b), d.left)
		c.payload(dir, d, b[:n])
		b = b[n:]
		d.left -= n
		if d.left == 0 {
			c.endFrame(dir, d, t)
		}
	}
	return b
}

// startFrame sets up the consumption of a frame's payload; false means the
// header breaks the protocol and the stream must be resynchronised.
func (c *Conn) startFrame(dir Dir, d *direction, fh frameHeader, t time.Time) bool {
	if fh.length > maxFrameLen {
		return false
	}
	if d.inBlock && fh.typ != frameContinuation {
		return false
	}
	d.fh, d.left, d.inFrame = fh, fh.length, true
	d.st, d.skip, d.fbuf = nil, false, d.fbuf[:0]
	switch fh.typ {
	case frameData:
		if fh.sid == 0 {
			return false
		}
		d.needPad = fh.flags&flagPadded != 0
		d.dataLeft = fh.length
		if d.needPad && fh.length == 0 {
			return false
		}
		if s := c.streams[fh.sid]; s != nil {
			d.st = s
		} else if fh.length > 0 {
			c.stats.Orphans++
		}
	case frameContinuation:
		if !d.inBlock || fh.sid != d.blockSID {
			return false
		}
	default:
		if fh.length > c.cfg.MaxFrameBuffer {
			d.skip = true
		}
	}
	return true
}

// payload consumes part of the current frame's payload.
func (c *Conn) payload(dir Dir, d *direction, b []byte) {
	if d.fh.typ != frameData {
		if !d.skip {
			d.fbuf = append(d.fbuf, b...)
		}
		return
	}
	if d.needPad {
		d.needPad = false
		pad := int(b[0])
		b = b[1:]
		d.dataLeft = d.fh.length - 1 - pad
		if d.dataLeft < 0 {
			// Padding longer than the frame: protocol error; the rest
			// of the frame is skipped as padding.
			c.stats.FrameErrors++
			d.dataLeft = 0
		}
	}
	n := min(len(b), d.dataLeft)
	d.dataLeft -= n
	if d.st != nil && n > 0 {
		c.bodyBytes(d.st, dir, b[:n])
	}
}

// endFrame acts on a complete frame.
func (c *Conn) endFrame(dir Dir, d *direction, t time.Time) {
	d.inFrame = false
	fh := d.fh
	p := d.fbuf
	switch fh.typ {
	case frameData:
		if s := d.st; s != nil && fh.flags&flagEndStream != 0 {
			c.endStream(s, dir, t)
		}
		d.st = nil
	case frameHeaders, framePushPromise:
		if d.skip {
			c.stats.HeaderLimit++
			d.blockBig = true
		}
		frag, ok := headersFragment(fh, p)
		if !ok {
			c.stats.FrameErrors++
			frag = nil
			d.blockBig = true
		}
		d.inBlock = true
		d.blockSID = fh.sid
		d.blockEnd = fh.flags&flagEndStream != 0
		d.blockPush = fh.typ == framePushPromise
		d.block = d.block[:0]
		c.appendBlock(d, frag)
		if fh.flags&flagEndHeaders != 0 {
			c.endBlock(dir, d, t)
		}
	case frameContinuation:
		if d.skip {
			c.stats.HeaderLimit++
			d.blockBig = true
		}
		c.appendBlock(d, p)
		if fh.flags&flagEndHeaders != 0 {
			c.endBlock(dir, d, t)
		}
	case frameRSTStream:
		c.stats.Resets++
		if s := c.streams[fh.sid]; s != nil {
			c.finishStream(s, t)
		}
	case frameSettings:
		// SETTINGS_HEADER_TABLE_SIZE bounds the other side's encoder;
		// the decoders already allow up to hpackAllowedTable.
	}
	d.fbuf = d.fbuf[:0]
	if cap(d.fbuf) > 4*DefaultMaxFrameBuffer {
		d.fbuf = nil
	}
}

// headersFragment strips padding and priority (HEADERS) or the promised
// stream id (PUSH_PROMISE) from a frame payload.
func headersFragment(fh frameHeader, p []byte) ([]byte, bool) {
	if fh.flags&flagPadded != 0 {
		if len(p) < 1 {
			return nil, false
		}
		pad := int(p[0])
		p = p[1:]
		if pad > len(p) {
			return nil, false
		}
		p = p[:len(p)-pad]
	}
	if fh.typ == framePushPromise {
		if len(p) < 4 {
			return nil, false
		}
		return p[4:], true
	}
	if fh.flags&flagPriority != 0 {
		if len(p) < 5 {
			return nil, false
		}
		p = p[5:]
	}
	return p, true
}

func (c *Conn) appendBlock(d *direction, frag []byte) {
	if d.blockBig {
		return
	}
	if len(d.block)+len(frag) > c.cfg.MaxHeaderBlock {
		c.stats.HeaderLimit++
		d.blockBig = true
		d.block = d.block[:0]
		return
	}
	d.block = append(d.block, frag...)
}

// endBlock decodes a complete header block and applies it to its stream.
func (c *Conn) endBlock(dir Dir, d *direction, t time.Time) {
	d.inBlock = false
	sid, endStream, push := d.blockSID, d.blockEnd, d.blockPush
	if d.blockBig {
		// The block was not kept: the table lost its inserts.
		d.blockBig = false
		d.hp.reset(true)
		if s := c.streams[sid]; s != nil {
			s.gap = true
			if endStream {
				c.endStream(s, dir, t)
			}
		}
		return
	}
	hp := d.hp
	if err := hp.decode(d.block); err != nil {
		c.stats.HPACKErrors++
		hp.reset(true)
		if s := c.streams[sid]; s != nil {
			s.gap = true
			if endStream {
				c.endStream(s, dir, t)
			}
		}
		return
	}
	if cap(d.block) > 4*DefaultMaxHeaderBlock {
		d.block = nil
	}
	if push {
		return // server push: decoded for the table, otherwise ignored
	}
	if hp.truncated {
		c.stats.HeaderLimit++
	}
	if dir == FromClient {
		c.requestBlock(sid, hp, endStream, t)
	} else {
		c.responseBlock(sid, hp, endStream, t)
	}
}

func headerValue(fs []call.Header, name string) string {
	for _, f := range fs {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}

// requestBlock opens a stream from request headers, or takes request
// trailers.
func (c *Conn) requestBlock(sid uint32, hp *headerDecoder, endStream bool, t time.Time) {
	if s := c.streams[sid]; s != nil {
		// Trailers of the request (rare): kept as headers, within the
		// header list bound.
		size := 0
		for _, h := range s.rec.req.Headers {
			size += len(h.Name) + len(h.Value) + 32
		}
		for _, f := range hp.fields {
			if size += len(f.Name) + len(f.Value) + 32; size > c.cfg.MaxHeaderListSize {
				s.partial = true
				break
			}
			s.rec.req.Headers = append(s.rec.req.Headers, call.Header{Name: f.Name, Value: f.Value})
		}
		s.partial = s.partial || hp.missing > 0
		if endStream {
			c.endStream(s, FromClient, t)
		}
		return
	}
	s := &stream{id: sid}
	rec := &s.rec
	r := &rec.req
	r.Proto = "HTTP/2.0"
	r.Start, r.End = t, t
	var path string
	hs := call.Headers(rec.reqHdr[:0])
	for _, f := range hp.fields {
		switch f.Name {
		case ":method":
			r.Method = f.Value
		case ":path":
			path = f.Value
		case ":authority":
			r.Host = f.Value
		case ":scheme", ":protocol":
		default:
			if f.Name == "host" && r.Host == "" {
				r.Host = f.Value
			}
			hs = append(hs, call.Header{Name: f.Name, Value: f.Value})
		}
	}
	if r.Method == "" || path == "" {
		// Without :method and :path the call says nothing; never guess.
		c.stats.NoPath++
		return
	}
	r.Headers = hs
	if i := strings.IndexByte(path, '?'); i >= 0 {
		r.Path, r.RawQuery = path[:i], path[i+1:]
	} else {
		r.Path = path
	}
	if len(c.streams) >= c.cfg.MaxStreams {
		c.stats.StreamLimit++
		c.evictOldest(t, true)
	}
	s.partial = hp.missing > 0 || hp.truncated
	rec.c.Protocol = call.ProtoH2
	if ct := hs.Get("content-type"); strings.HasPrefix(ct, "application/grpc") {
		s.grpc = true
		rec.c.Protocol = call.ProtoGRPC
		g := &rec.grpc
		g.Status = -1
		g.Timeout = hs.Get("grpc-timeout")
		if svc, m, ok := splitGRPCPath(r.Path); ok {
			g.Service, g.Method = svc, m
		}
		rec.c.GRPC = g
	}
	c.streams[sid] = s
	c.stats.Streams++
	if endStream {
		c.endStream(s, FromClient, t)
	}
}

// splitGRPCPath splits "/pkg.Service/Method".
func splitGRPCPath(p string) (svc, method string, ok bool) {
	if len(p) < 4 || p[0] != '/' {
		return "", "", false
	}
	i := strings.LastIndexByte(p, '/')
	if i <= 1 || i == len(p)-1 {
		return "", "", false
	}
	return p[1:i], p[i+1:], true
}

// responseBlock takes response headers (1xx skipped) or trailers.
func (c *Conn) responseBlock(sid uint32, hp *headerDecoder, endStream bool, t time.Time) {
	s := c.streams[sid]
	if s == nil {
		c.stats.Orphans++
		return
	}
	s.partial = s.partial || hp.missing > 0 || hp.truncated
	resp := &s.rec.resp
	if !s.respHead {
		status := -1
		hs := call.Headers(s.rec.respHdr[:0])
		for _, f := range hp.fields {
			if f.Name == ":status" {
				if v, err := strconv.Atoi(f.Value); err == nil {
					status = v
				}
				continue
			}
			hs = append(hs, call.Header{Name: f.Name, Value: f.Value})
		}
		if status >= 100 && status < 200 && !endStream {
			return // interim response
		}
		if status < 0 {
			status = 0 // not recovered
			s.partial = true
		}
		s.respHead = true
		resp.StatusCode = status
		resp.Proto = "HTTP/2.0"
		resp.Headers = hs
		resp.Start, resp.End = t, t
		if s.grpc && endStream {
			// Trailers-only response: the status is in the headers.
			c.grpcStatus(s, hs)
		}
	} else {
		for _, f := range hp.fields {
			resp.Trailers = append(resp.Trailers, call.Header{Name: f.Name, Value: f.Value})
		}
		if s.grpc {
			c.grpcStatus(s, resp.Trailers)
		}
	}
	if endStream {
		c.endStream(s, FromServer, t)
	}
}

func (c *Conn) grpcStatus(s *stream, hs call.Headers) {
	g := &s.rec.grpc
	if v := hs.Get("grpc-status"); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			g.Status = n
		}
	}
	if m := hs.Get("grpc-message"); m != "" {
		g.Message = percentDecode(m)
	}
}

// percentDecode undoes grpc-message's percent-encoding; invalid escapes
// are kept as sent.
func percentDecode(s string) string {
	if strings.IndexByte(s, '%') < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// bodyBytes adds DATA payload to a stream's message in dir.
func (c *Conn) bodyBytes(s *stream, dir Dir, b []byte) {
	bd := &s.body[dir]
	bd.size += int64(len(b))
	if room := c.cfg.MaxBodyBytes - len(bd.buf); room > 0 && !bd.truncated {
		want := int64(min(room, len(b)))
		got := c.cfg.BodyBudget.Take(want)
		if got < want {
			c.stats.BodyBudget++
		}
		s.charged += got
		bd.buf = append(bd.buf, b[:got]...)
	}
	if len(b) > 0 && bd.size > int64(len(bd.buf)) && !bd.truncated {
		bd.truncated = true
		c.stats.BodyTruncated++
	}
	if s.grpc {
		c.grpcFrames(s, dir, bd, b)
	}
}

// grpcFrames follows the gRPC length-prefixed message framing: 1 byte
// compressed flag, 4 bytes big-endian length, then the message.
func (c *Conn) grpcFrames(s *stream, dir Dir, bd *body, b []byte) {
	g := &s.rec.grpc
	for len(b) > 0 {
		if bd.msgLeft > 0 {
			n := int(min(int64(len(b)), bd.msgLeft))
			bd.msgLeft -= int64(n)
			b = b[n:]
			continue
		}
		n := copy(bd.ghdr[bd.nghdr:], b)
		bd.nghdr += n
		b = b[n:]
		if bd.nghdr < 5 {
			return
		}
		bd.nghdr = 0
		l := int64(binary.BigEndian.Uint32(bd.ghdr[1:]))
		if bd.ghdr[0]&1 != 0 {
			g.Compressed = true
		}
		if dir == FromClient {
			g.ReqMessages++
			g.ReqBytes += l
		} else {
			g.RespMessages++
			g.RespBytes += l
		}
		bd.msgLeft = l
	}
}

// endStream records END_STREAM from dir; the call is emitted when both
// sides ended.
func (c *Conn) endStream(s *stream, dir Dir, t time.Time) {
	if dir == FromClient {
		if s.reqDone {
			return
		}
		s.reqDone = true
		r := &s.rec.req
		r.End = t
		c.setBody(s, dir)
		if c.OnRequest != nil {
			c.OnRequest(c, r)
		}
	} else {
		s.respDone = true
		s.rec.resp.End = t
	}
	if s.reqDone && s.respDone {
		c.finishStream(s, t)
	}
}

func (c *Conn) setBody(s *stream, dir Dir) {
	bd := &s.body[dir]
	if dir == FromClient {
		r := &s.rec.req
		r.Body, r.BodySize, r.BodyTruncated = bd.buf, bd.size, bd.truncated
	} else {
		r := &s.rec.resp
		r.Body, r.BodySize, r.BodyTruncated = bd.buf, bd.size, bd.truncated
	}
	if len(bd.buf) == 0 {
		bd.buf = nil
	}
}

// finishStream emits the stream's call and forgets the stream.
func (c *Conn) finishStream(s *stream, t time.Time) {
	delete(c.streams, s.id)
	for i := range c.d {
		if c.d[i].st == s {
			c.d[i].st = nil
		}
	}
	if !s.reqDone {
		s.gap = true
		s.reqDone = true
		s.rec.req.End = t
		c.setBody(s, FromClient)
		if c.OnRequest != nil {
			c.OnRequest(c, &s.rec.req)
		}
	}
	cl := &s.rec.c
	if s.respHead {
		if !s.respDone {
			s.gap = true
		}
		c.setBody(s, FromServer)
		cl.Response = &s.rec.resp
		if d := s.rec.resp.Start.Sub(s.rec.req.End); d > 0 {
			cl.Latency = d
		}
	} else {
		c.stats.Unanswered++
	}
	cl.Client, cl.Server = c.Client, c.Server
	cl.TLS, cl.ServerProcess, cl.ClientProcess = c.TLS, c.ServerProcess, c.ClientProcess
	cl.Request = &s.rec.req
	cl.StreamID = s.id
	cl.Gap = s.gap
	cl.Partial = s.partial
	if cl.Partial {
		c.stats.Partial++
	}
	if s.grpc {
		c.stats.GRPCCalls++
	}
	c.stats.Calls++
	// The call leaves our custody with its bodies.
	c.cfg.BodyBudget.Release(s.charged)
	s.charged = 0
	c.emit(cl)
}

// evictOldest emits the stream with the lowest id (the oldest) early; cut
// marks it as cut short by the stream bound.
func (c *Conn) evictOldest(t time.Time, cut bool) {
	var old *stream
	for _, s := range c.streams {
		if old == nil || s.id < old.id {
			old = s
		}
	}
	if old != nil {
		old.gap = old.gap || cut
		c.finishStream(old, t)
	}
}

// Gap tells dir's decoder that n bytes are missing at this point. Inside a
// DATA payload the frame continues; anywhere else the direction
// resynchronises on a frame boundary and its HPACK table becomes partial.
func (c *Conn) Gap(dir Dir, n uint32, t time.Time) {
	c.stats.Gaps++
	d := &c.d[dir]
	if d.mode == modeFrames && d.inFrame && d.fh.typ == frameData && !d.needPad && int(n) <= d.left {
		if d.st != nil {
			d.st.gap = true
			d.st.body[dir].size += int64(min(int(n), d.dataLeft))
			d.st.body[dir].truncated = true
			if d.st.grpc {
				// The message framing is lost for this stream.
				d.st.body[dir].msgLeft = 1 << 62
			}
		}
		d.dataLeft -= min(int(n), d.dataLeft)
		d.left -= int(n)
		if d.left == 0 {
			c.endFrame(dir, d, t)
		}
		return
	}
	if d.mode == modePreface {
		c.joinLate(d)
		return
	}
	c.lose(dir, d)
}

// End reports that dir's stream ended (FIN).
func (c *Conn) End(dir Dir, t time.Time) {}

// Close finishes the connection: open streams are emitted, incomplete ones
// with Gap set.
func (c *Conn) Close(t time.Time) {
	if c.done {
		return
	}
	for len(c.streams) > 0 {
		c.evictOldest(t, false)
	}
	c.done = true
}

// Detect reports whether b looks like the start of HTTP/2 bytes seen by a
// capture: the client preface (client = 1), or whole plausible frames that
// end with b or are followed by another plausible header. client tells
// which side sent b when a HEADERS block's first field shows it (static
// table pseudo-header: 1 client, 0 server), -1 when unknown.
func Detect(b []byte) (ok bool, client int) {
	if bytes.HasPrefix(b, []byte(Preface)) || (len(b) >= 4 && len(b) < len(Preface) && Preface[:len(b)] == string(b)) {
		return true, 1
	}
	client = -1
	if len(b) >= 9 && b[3] == frameSettings && b[4] == 0 && plausible(b) {
		// A SETTINGS (not an ACK) first: the server opening its side (the
		// client's would follow its preface).
		client = 0
	}
	frames := 0
	for len(b) >= 9 && frames < 16 {
		if !plausible(b) || (frames == 0 && b[3] == frameContinuation) {
			return false, -1
		}
		h := parseHeader(b)
		end := min(9+h.length, len(b))
		if h.typ == frameHeaders && client < 0 {
			if frag, ok := headersFragment(h, b[9:end]); ok {
				client = requestSide(frag)
			}
		}
		if 9+h.length > len(b) {
			// A frame cut by the end of the chunk counts if it carries
			// a recognisable header block.
			if frames == 0 && (h.typ != frameHeaders || client < 0) {
				return false, -1
			}
			return true, client
		}
		b = b[9+h.length:]
		frames++
	}
	if frames == 0 || (len(b) > 0 && len(b) < 9 && frames < 2) {
		return false, -1
	}
	return true, client
}

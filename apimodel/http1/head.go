// Package http1 parses HTTP/1.x requests and responses incrementally from the
// two reassembled byte streams of one connection and pairs them, first in
// first out, into call.Call records.
package http1

import (
	"bytes"
	"strings"

	"github.com/apiwarden/apiwarden/apimodel/call"
)

// State is the result of one parse step (the Pixie parser contract).
type State uint8

const (
	// NeedMore: the bytes so far are a valid prefix; feed more.
	NeedMore State = iota
	// Done: a complete message head was parsed.
	Done
	// Invalid: the bytes are not HTTP/1.x at this position.
	Invalid
	// Ignored: the connection is no longer parsed (too many failures).
	Ignored
	// EndOfStream: the connection switched protocol (101, CONNECT, h2c).
	EndOfStream
)

func (s State) String() string {
	switch s {
	case NeedMore:
		return "need-more"
	case Done:
		return "done"
	case Invalid:
		return "invalid"
	case Ignored:
		return "ignored"
	case EndOfStream:
		return "end-of-stream"
	}
	return "unknown"
}

// Kind says what the start of a byte stream looks like.
type Kind uint8

const (
	KindUnknown Kind = iota
	KindRequest
	KindResponse
)

// methods are the request methods recognised when looking for a message
// start (detection and resync); any token is accepted in a request line
// that follows a valid message.
var methods = [...]string{"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE"}

// minStart is the number of bytes needed to judge a line start.
const minStart = 9

// startKind reports whether b begins with a request line or a status line.
// needMore is set when b is a prefix too short to tell.
func startKind(b []byte) (k Kind, needMore bool) {
	if len(b) >= 5 && string(b[:5]) == "HTTP/" {
		if len(b) < minStart {
			return KindUnknown, true
		}
		if string(b[:7]) == "HTTP/1." && (b[7] == '0' || b[7] == '1') && b[8] == ' ' {
			return KindResponse, false
		}
		return KindUnknown, false
	}
	for _, m := range methods {
		if len(b) <= len(m) {
			if strings.HasPrefix(m, string(b)) {
				return KindUnknown, true
			}
			continue
		}
		if string(b[:len(m)]) == m && b[len(m)] == ' ' {
			return KindRequest, false
		}
	}
	if len(b) < 5 && strings.HasPrefix("HTTP/", string(b)) {
		return KindUnknown, true
	}
	return KindUnknown, false
}

// Detect reports whether b starts like an HTTP/1.x request or response.
func Detect(b []byte) Kind {
	k, _ := startKind(b)
	return k
}

// findHeadEnd returns the length of the head in b (through the blank line)
// or -1, and the offset where a later scan of a longer b can resume. It
// appends the offset of every '\n' ending a line of the head (the blank
// line excluded) to nl, so the head is parsed without scanning it twice;
// a resumed scan continues the same nl.
func findHeadEnd(b []byte, from int, nl []int32) (end, resume int, _ []int32) {
	i := from
	for {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1, len(b), nl
		}
		i += j
		if i+1 >= len(b) {
			return -1, i, nl
		}
		if b[i+1] == '\n' {
			return i + 2, 0, append(nl, int32(i))
		}
		if b[i+1] == '\r' {
			if i+2 >= len(b) {
				return -1, i, nl
			}
			if b[i+2] == '\n' {
				return i + 3, 0, append(nl, int32(i))
			}
		}
		nl = append(nl, int32(i))
		i++
	}
}

// tokenChar marks the RFC 9110 tchar set.
var tokenChar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenChar[s[i]] {
			return false
		}
	}
	return true
}

// maxMethod is the longest method accepted (plausiblePrefix looks this far).
const maxMethod = 20

// plausiblePrefix rejects garbage early, before a whole head is buffered:
// a request must start with a token then a space, a response with "HTTP/".
func plausiblePrefix(b []byte, isReq bool) bool {
	if !isReq {
		n := min(len(b), 5)
		return string(b[:n]) == "HTTP/"[:n]
	}
	for i := 0; i < len(b) && i <= maxMethod; i++ {
		if b[i] == ' ' {
			return i > 0
		}
		if !tokenChar[b[i]] {
			return false
		}
	}
	return len(b) <= maxMethod
}

// intern returns a constant for common methods so the request does not
// keep the head string alive just for the method.
func intern(m string) string {
	switch m {
	case "GET":
		return "GET"
	case "POST":
		return "POST"
	case "PUT":
		return "PUT"
	case "DELETE":
		return "DELETE"
	case "PATCH":
		return "PATCH"
	case "HEAD":
		return "HEAD"
	case "OPTIONS":
		return "OPTIONS"
	}
	return m
}

// line returns line k of head s given the line ends nl, without CR LF.
func line(s string, nl []int32, k int) string {
	start := 0
	if k > 0 {
		start = int(nl[k-1]) + 1
	}
	l := s[start:nl[k]]
	if n := len(l); n > 0 && l[n-1] == '\r' {
		l = l[:n-1]
	}
	return l
}

// framing holds what the headers say about the body and the connection.
type framing struct {
	contentLength int64 // -1 when absent
	chunked       bool
	otherTE       bool // a transfer coding other than a final chunked
	upgrade       bool
	connClose     bool
	host          string
}

func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

func parseContentLength(v string) (int64, bool) {
	if v == "" || len(v) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// hasToken reports whether the comma-separated list v holds tok
// (case-insensitive).
func hasToken(v, tok string) bool {
	for v != "" {
		var part string
		if i := strings.IndexByte(v, ','); i >= 0 {
			part, v = v[:i], v[i+1:]
		} else {
			part, v = v, ""
		}
		if strings.EqualFold(trimOWS(part), tok) {
			return true
		}
	}
	return false
}

// parseHeaders parses the header lines of head s (lines 1.. of nl),
// appending to hs. It returns Invalid on a malformed line, with tooMany set
// when there are more than max fields.
func parseHeaders(s string, nl []int32, hs call.Headers, max int, f *framing) (_ call.Headers, _ State, tooMany bool) {
	f.contentLength = -1
	if len(nl)-1 > max {
		return hs, Invalid, true
	}
	for k := 1; k < len(nl); k++ {
		line := line(s, nl, k)
		// One pass finds the colon and checks the name is a token; this
		// also rejects obsolete line folding (a line starting with
		// whitespace), which RFC 9112 lets a recipient reject.
		c := -1
		for j := 0; j < len(line); j++ {
			ch := line[j]
			if ch == ':' {
				c = j
				break
			}
			if !tokenChar[ch] {
				return hs, Invalid, false
			}
		}
		if c <= 0 {
			return hs, Invalid, false
		}
		name := line[:c]
		val := trimOWS(line[c+1:])
		hs = append(hs, call.Header{Name: name, Value: val})
		switch len(name) {
		case 4:
			if strings.EqualFold(name, "Host") && f.host == "" {
				f.host = val
			}
		case 7:
			if strings.EqualFold(name, "Upgrade") {
				f.upgrade = true
			}
		case 10:
			if strings.EqualFold(name, "Connection") && hasToken(val, "close") {
				f.connClose = true
			}
		case 14:
			if strings.EqualFold(name, "Content-Length") {
				n, ok := parseContentLength(val)
				if !ok || (f.contentLength >= 0 && f.contentLength != n) {
					return hs, Invalid, false
				}
				f.contentLength = n
			}
		case 17:
			if strings.EqualFold(name, "Transfer-Encoding") {
				// Only a final "chunked" frames the body; anything else
				// means read-until-close (responses) or reject (requests).
				last := val
				if k := strings.LastIndexByte(val, ','); k >= 0 {
					last = val[k+1:]
				}
				if strings.EqualFold(trimOWS(last), "chunked") {
					f.chunked = true
					f.otherTE = false
				} else {
					f.chunked = false
					f.otherTE = true
				}
			}
		}
	}
	return hs, Done, false
}

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// badTarget reports a control character, space or DEL in a request
// target. It tests eight bytes per step (SWAR): the target is the longest
// part of a request line and this check was a tenth of the parse time.
func badTarget(s string) bool {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		x := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		// Some byte < 0x21, or some byte == 0x7f (zero after xor).
		y := x ^ (0x7f * ones)
		if (x-0x21*ones)&^x&highs != 0 || (y-ones)&^y&highs != 0 {
			return true
		}
	}
	for ; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f {
			return true
		}
	}
	return false
}

// parseRequestLine splits "METHOD SP target SP HTTP/1.x".
func parseRequestLine(line string, r *call.Request) State {
	sp := strings.IndexByte(line, ' ')
	if sp <= 0 {
		return Invalid
	}
	method := line[:sp]
	if len(method) > maxMethod || !isToken(method) {
		return Invalid
	}
	rest := line[sp+1:]
	sp2 := strings.LastIndexByte(rest, ' ')
	if sp2 <= 0 {
		return Invalid
	}
	target, proto := rest[:sp2], rest[sp2+1:]
	if proto != "HTTP/1.1" && proto != "HTTP/1.0" {
		return Invalid
	}
	if badTarget(target) {
		return Invalid
	}
	q := strings.IndexByte(target, '?')
	r.Method = intern(method)
	r.Proto = proto
	if target[0] != '/' && len(target) > 7 && (strings.HasPrefix(target, "http://") || strings.HasPrefix(target, "https://")) {
		// Absolute form (proxies): keep the authority as Host.
		t := target[strings.IndexByte(target, ':')+3:]
		end := strings.IndexAny(t, "/?")
		if end < 0 {
			r.Host, target = t, "/"
		} else {
			r.Host, target = t[:end], t[end:]
			if target[0] == '?' {
				target = "/" + target
			}
		}
		q = strings.IndexByte(target, '?')
	}
	if q >= 0 {
		r.Path, r.RawQuery = target[:q], target[q+1:]
	} else {
		r.Path = target
	}
	return Done
}

// parseStatusLine splits "HTTP/1.x SP 3DIGIT [SP reason]".
func parseStatusLine(line string, r *call.Response) State {
	if len(line) < 12 || line[8] != ' ' {
		return Invalid
	}
	proto := line[:8]
	if proto != "HTTP/1.1" && proto != "HTTP/1.0" {
		return Invalid
	}
	code := 0
	for i := 9; i < 12; i++ {
		c := line[i]
		if c < '0' || c > '9' {
			return Invalid
		}
		code = code*10 + int(c-'0')
	}
	if len(line) > 12 && line[12] != ' ' {
		return Invalid
	}
	if code < 100 {
		return Invalid
	}
	r.Proto = proto
	r.StatusCode = code
	return Done
}

// ParseRequestHead parses the request head at the start of b into r
// (NeedMore if b does not hold all of it); headers beyond maxHeaders make it Invalid. It is the
// stateless building block of Conn, exported for tools and tests. Strings
// in r share one allocation with the head.
func ParseRequestHead(b []byte, r *call.Request, maxHeaders int) State {
	var arr [64]int32
	end, _, nl := findHeadEnd(b, 0, arr[:0])
	if end < 0 {
		return NeedMore
	}
	s := string(b[:end])
	if parseRequestLine(line(s, nl, 0), r) != Done {
		return Invalid
	}
	var f framing
	hs, st, _ := parseHeaders(s, nl, r.Headers[:0], maxHeaders, &f)
	r.Headers = hs
	if r.Host == "" {
		r.Host = f.host
	}
	return st
}

// Package call defines Call, one HTTP request paired with its response and
// attributed to the processes at both ends. It is the unit that flows from
// stream reconstruction into the inventory, the behavioural model and the
// detector.
package call

import (
	"net/netip"
	"strings"
	"time"
)

// Header is one header field as it appeared on the wire (name case kept).
type Header struct {
	Name  string
	Value string
}

// Headers is an ordered header list; duplicates are kept.
type Headers []Header

// Get returns the first value of the named header (case-insensitive).
func (h Headers) Get(name string) string {
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			return f.Value
		}
	}
	return ""
}

// Values returns every value of the named header (case-insensitive).
func (h Headers) Values(name string) []string {
	var out []string
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			out = append(out, f.Value)
		}
	}
	return out
}

// Request is a parsed HTTP request. Body holds at most the configured body
// capture limit; BodySize is the full decoded size.
type Request struct {
	Method   string
	Path     string // decoded-as-sent path, without the query
	RawQuery string // without '?'
	Proto    string // "HTTP/1.1"
	Host     string
	Headers  Headers
	Body     []byte
	BodySize int64
	// BodyTruncated is set when Body holds less than BodySize bytes.
	BodyTruncated bool
	// Chunked is set when the body used Transfer-Encoding: chunked.
	Chunked bool
	Start   time.Time // first byte seen
	End     time.Time // last byte seen
}

// Response is a parsed HTTP response.
type Response struct {
	StatusCode    int
	Proto         string
	Headers       Headers
	Body          []byte
	BodySize      int64
	BodyTruncated bool
	Chunked       bool
	Start         time.Time
	End           time.Time
}

// Process is the owner of one end of a connection.
type Process struct {
	PID         uint32
	Comm        string
	Exe         string
	Cgroup      string // cgroup v2 path
	ContainerID string // from the cgroup path, empty on the host
}

// Call is one request/response exchange.
type Call struct {
	Client netip.AddrPort
	Server netip.AddrPort
	// Request is always set; Response is nil when the connection ended
	// before a response arrived.
	Request  *Request
	Response *Response
	// Latency is from the last request byte to the first response byte.
	Latency time.Duration
	// ServerProcess is the process serving the connection (nil if unknown);
	// ClientProcess is set when the client is on this host.
	ServerProcess *Process
	ClientProcess *Process
	// TLS names the TLS library that carried the call ("" for plaintext),
	// e.g. "openssl 3.0.15", "go crypto/tls", "gnutls".
	TLS string
	// Gap is set when the stream had missing bytes inside this call; the
	// call is reported but its body is incomplete.
	Gap bool
}

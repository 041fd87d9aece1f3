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
	// Trailers are the HTTP/2 trailing header fields (gRPC puts
	// grpc-status and grpc-message there).
	Trailers Headers
	Start    time.Time
	End      time.Time
}

// Protocols of a call (Call.Protocol).
const (
	ProtoHTTP1 = "http/1.1"
	ProtoH2    = "h2"
	ProtoGRPC  = "grpc"
)

// GRPC describes the gRPC side of an HTTP/2 call.
type GRPC struct {
	Service string // "pkg.Service", from :path
	Method  string // "Method"
	// Messages and bytes (payload, without the 5-byte prefixes) per
	// direction, counted over the whole stream even past the body prefix.
	ReqMessages, RespMessages int
	ReqBytes, RespBytes       int64
	// Compressed is set when a message had the compressed flag.
	Compressed bool
	// Status is grpc-status (trailers, or headers of a trailers-only
	// response); -1 when absent.
	Status  int
	Message string // grpc-message, percent-decoded
	Timeout string // grpc-timeout as sent, e.g. "1S", "100m"
}

// Kind guesses the streaming kind from the message counts: "unary",
// "client-streaming", "server-streaming" or "bidi-streaming".
func (g *GRPC) Kind() string {
	switch {
	case g.ReqMessages > 1 && g.RespMessages > 1:
		return "bidi-streaming"
	case g.ReqMessages > 1:
		return "client-streaming"
	case g.RespMessages > 1:
		return "server-streaming"
	}
	return "unary"
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
	// Protocol is ProtoHTTP1, ProtoH2 or ProtoGRPC ("" means http/1.1).
	Protocol string
	// StreamID is the HTTP/2 stream id (0 for HTTP/1).
	StreamID uint32
	// Partial is set when some HTTP/2 header fields could not be decoded
	// (the agent joined the connection after its HPACK dynamic table was
	// built): the fields shown were decoded exactly, the others are missing.
	Partial bool
	// GRPC is set for gRPC calls.
	GRPC *GRPC
}

// ProtocolName returns Protocol, http/1.1 when unset.
func (c *Call) ProtocolName() string {
	if c.Protocol == "" {
		return ProtoHTTP1
	}
	return c.Protocol
}

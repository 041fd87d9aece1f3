package apiserver

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/apiwarden/apiwarden/apimodel/inventory"
)

// Errors a Backend returns (wrapped or not) to choose the API status code.
// Any other error becomes codes.Internal; an error that already carries a
// gRPC status is passed through unchanged.
var (
	// ErrNotImplemented marks a capability this agent build or mode lacks
	// (codes.Unimplemented, HTTP 501).
	ErrNotImplemented = errors.New("not implemented")
	// ErrNotFound marks a missing object, such as an unknown blocked prefix
	// (codes.NotFound, HTTP 404).
	ErrNotFound = errors.New("not found")
	// ErrInvalidArgument marks a request the backend refuses as malformed
	// (codes.InvalidArgument, HTTP 400).
	ErrInvalidArgument = errors.New("invalid argument")
)

// Backend is what the agent hands the API: read access to its state and the
// few control operations. Methods are called concurrently from request
// goroutines and must not block for long; returned values are owned by the
// caller.
type Backend interface {
	// Inventory returns a snapshot of every learned endpoint.
	Inventory() []inventory.Endpoint
	// OpenAPI returns the inventory as an OpenAPI 3 JSON document.
	OpenAPI() ([]byte, error)
	// Processes returns the serving processes and their visibility.
	Processes() ([]ProcessStatus, error)
	// Events returns events matching f, newest first, at most f.Limit.
	Events(ctx context.Context, f EventFilter) ([]Event, error)
	// Blocks returns the current blocklist.
	Blocks() ([]Block, error)
	// AddBlock blocks prefix (already masked) for ttl; ttl 0 means until
	// removed. Adding an existing prefix replaces its entry.
	AddBlock(prefix netip.Prefix, ttl time.Duration, reason string) (Block, error)
	// DeleteBlock unblocks prefix; ErrNotFound when it was not blocked.
	DeleteBlock(prefix netip.Prefix) error
	// Status returns the agent's identity and counters.
	Status() (Status, error)
}

// ProcessStatus is one serving process and whether the agent can read its
// traffic.
type ProcessStatus struct {
	PID         uint32
	Comm        string
	Exe         string
	ContainerID string
	Ports       []uint16 // listening TCP ports
	// Visibility is short and stable: "plaintext", "openssl 3.0",
	// "go-tls", "not visible: rustls".
	Visibility string
	// Reason explains Visibility to a human.
	Reason string
}

// EventFilter selects events. Zero fields match everything.
type EventFilter struct {
	Since   time.Time
	Service string
	Class   string
	Action  string
	// Limit is always set by the server: 1..MaxEventLimit.
	Limit int
}

// Event is one detection finding and what the agent did about it.
type Event struct {
	ID       string
	Time     time.Time
	Service  string
	Endpoint string // "METHOD /path/{template}"
	Client   string // "ip:port"
	Class    string
	RuleID   string
	Severity string
	Part     string
	Excerpt  string
	Action   string
}

// Block is one blocked source prefix.
type Block struct {
	Prefix  netip.Prefix
	Reason  string
	Created time.Time
	Expires time.Time // zero: never
	Hits    uint64
}

// Status is the agent's identity and health counters.
type Status struct {
	Version    string
	Mode       string
	Interfaces []string
	Counters   map[string]uint64
	Started    time.Time
}

// UnimplementedBackend answers every call with "nothing" or
// ErrNotImplemented. Embed it in a Backend to implement only some methods.
type UnimplementedBackend struct{}

var _ Backend = UnimplementedBackend{}

func (UnimplementedBackend) Inventory() []inventory.Endpoint     { return nil }
func (UnimplementedBackend) OpenAPI() ([]byte, error)            { return nil, ErrNotImplemented }
func (UnimplementedBackend) Processes() ([]ProcessStatus, error) { return nil, ErrNotImplemented }
func (UnimplementedBackend) Events(context.Context, EventFilter) ([]Event, error) {
	return nil, ErrNotImplemented
}
func (UnimplementedBackend) Blocks() ([]Block, error) { return nil, ErrNotImplemented }
func (UnimplementedBackend) AddBlock(netip.Prefix, time.Duration, string) (Block, error) {
	return Block{}, ErrNotImplemented
}
func (UnimplementedBackend) DeleteBlock(netip.Prefix) error { return ErrNotImplemented }
func (UnimplementedBackend) Status() (Status, error)        { return Status{}, ErrNotImplemented }

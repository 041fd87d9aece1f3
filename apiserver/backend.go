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
	// Modes returns the global mode and every known service's mode.
	Modes() (Modes, error)
	// SetMode overrides service's mode at run time; mode is "monitor",
	// "protect" or ModeDefault (remove the override), already checked.
	// ErrNotFound when the agent knows no such service.
	SetMode(service, mode string) (ServiceMode, error)
	// Rules returns the deny rules and detection rules as configured.
	Rules() (Rules, error)
	// XDSStatus returns the xDS server's state (Enabled false when off).
	XDSStatus() (XDSStatus, error)
}

// Mode names SetMode accepts.
const (
	ModeMonitor = "monitor"
	ModeProtect = "protect"
	// ModeDefault removes a runtime override: the service goes back to
	// its configured mode.
	ModeDefault = "default"
)

// Modes is the global mode and the per-service modes.
type Modes struct {
	Default  string
	Services []ServiceMode
}

// ServiceMode is the mode in force for one service.
type ServiceMode struct {
	Service        string
	Mode           string
	Source         string // "default", "config" or "runtime"
	ConfiguredMode string
	Updated        time.Time // zero unless Source is "runtime"
	Note           string
}

// Rules is the configured rule set.
type Rules struct {
	Deny        []DenyRule
	Families    []RuleFamily
	Rules       []DetectionRule // every rule; the server drops it unless asked
	RuleFiles   []string
	KernelRules int
	AutoBlock   AutoBlock
}

// DenyRule is one method + path prefix deny.
type DenyRule struct {
	Method     string
	PathPrefix string
	Port       uint16
	Action     string // "drop" or "count"
	InKernel   bool
}

// RuleFamily counts the detection rules of one class.
type RuleFamily struct {
	Class          string
	Rules          int
	Enabled        int
	KernelLiterals int
	Severities     map[string]int
}

// DetectionRule is one detector rule.
type DetectionRule struct {
	ID             string
	Class          string
	Severity       string
	Confidence     int
	Paranoia       int
	Enabled        bool
	KernelLiterals int
	Description    string
}

// AutoBlock is the automatic source blocking setting.
type AutoBlock struct {
	Threshold   int
	Window, TTL time.Duration
}

// XDSStatus is the xDS server's state.
type XDSStatus struct {
	Enabled       bool
	Addr          string
	Version       uint64
	Nodes         []XDSNode
	Pushes        uint64
	NACKs         uint64
	LastError     string
	LastErrorTime time.Time
	LastUpdate    time.Time
}

// XDSNode is one connected xDS client.
type XDSNode struct {
	ID            string
	GRPCListeners []string
	Acked         map[string]string // type URL -> version
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
	// Protocols of the calls the process served ("http/1.1", "h2",
	// "grpc"), sorted; Calls counts them.
	Protocols []string
	Calls     uint64
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
func (UnimplementedBackend) Modes() (Modes, error)          { return Modes{}, ErrNotImplemented }
func (UnimplementedBackend) SetMode(string, string) (ServiceMode, error) {
	return ServiceMode{}, ErrNotImplemented
}
func (UnimplementedBackend) Rules() (Rules, error)         { return Rules{}, ErrNotImplemented }
func (UnimplementedBackend) XDSStatus() (XDSStatus, error) { return XDSStatus{}, ErrNotImplemented }

package agent

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/apiwarden/apiwarden/apimodel/detect"
	"github.com/apiwarden/apiwarden/apiserver"
	"github.com/apiwarden/apiwarden/xds"
)

// Mode says what the agent does with a finding.
type Mode string

const (
	// ModeMonitor records what the agent would do, and blocks nothing.
	ModeMonitor Mode = "monitor"
	// ModeProtect enforces: drops, resets and blocks in the kernel.
	ModeProtect Mode = "protect"
)

// Config is the whole agent configuration. The zero value is not valid: start
// from Default() and overlay a YAML file and flags.
type Config struct {
	// Interfaces to watch; empty means every interface that is up (loopback
	// included) plus the ones that appear later.
	Interfaces []string `yaml:"interfaces"`
	// Mode is the global mode; ServiceModes overrides it per service name.
	Mode         Mode            `yaml:"mode"`
	ServiceModes map[string]Mode `yaml:"serviceModes"`
	DataDir      string          `yaml:"dataDir"`
	APIAddr      string          `yaml:"apiAddr"`
	// APITokenFile holds the bearer token the API requires (gRPC metadata
	// and REST header "authorization: Bearer <token>"). Required when
	// APIAddr is not a loopback address. APIPublicMetrics leaves /metrics
	// open for scrapers without the token.
	APITokenFile     string `yaml:"apiTokenFile"`
	APIPublicMetrics bool   `yaml:"apiPublicMetrics"`
	XDSAddr          string `yaml:"xdsAddr"`
	// XDSEnvoyListeners are listeners published to every Envoy node over
	// xDS (RBAC, optional rate limit, route to the upstream); proxyless gRPC
	// servers get theirs by the name they ask for and need none here.
	XDSEnvoyListeners []xds.EnvoyListener `yaml:"xdsEnvoyListeners"`
	// EventsFile, when set, gets every security event as one JSON line
	// (the REST API's field names), for the log shipper already in place.
	EventsFile string `yaml:"eventsFile"`
	// OTLPLogs, when its endpoint is set, sends every security event to an
	// OpenTelemetry collector as an OTLP log (HTTP, JSON encoding).
	OTLPLogs OTLPLogs `yaml:"otlpLogs"`
	// BPFStats turns on the kernel's BPF run-time statistics while the agent
	// runs, so apiwarden_bpf_program_run_seconds_total counts (it costs a
	// clock read per program run; sysctl kernel.bpf_stats_enabled does the
	// same host-wide).
	BPFStats bool `yaml:"bpfStats"`
	// XDSRateLimit adds an Envoy local rate limit to those listeners.
	XDSRateLimit *xds.RateLimit `yaml:"xdsRateLimit"`
	// Ports limits TC capture to these TCP ports (either side); empty = all.
	Ports []uint16 `yaml:"ports"`
	// ChunkMax is the most payload bytes the kernel copies per event.
	ChunkMax int `yaml:"chunkMax"`
	// RingBufferBytes sizes each kernel->userspace ring buffer.
	RingBufferBytes int `yaml:"ringBufferBytes"`
	// WakeupBytes batches kernel-to-agent wakeups for captured traffic; the
	// agent polls every PollInterval for the rest (0: wake per record).
	WakeupBytes  int           `yaml:"wakeupBytes"`
	PollInterval time.Duration `yaml:"pollInterval"`
	// MaxBodyBytes bounds the body bytes kept per request/response.
	MaxBodyBytes int `yaml:"maxBodyBytes"`
	// MaxFlows bounds the connections reassembled at once.
	MaxFlows int `yaml:"maxFlows"`
	// FlowIdleTimeout evicts connections without traffic.
	FlowIdleTimeout time.Duration `yaml:"flowIdleTimeout"`
	// MaxMetricSeries bounds the label sets of the per-endpoint metrics.
	MaxMetricSeries int `yaml:"maxMetricSeries"`
	// TLS enables the TLS library uprobes.
	TLS bool `yaml:"tls"`
	// TLSProbeScope is "process" (default: only watched processes: see
	// agent/tlsscope.go) or "host" (every process mapping a probed
	// library traps). TLSProbeClients also probes clients (at exec) in
	// process scope.
	TLSProbeScope   string `yaml:"tlsProbeScope"`
	TLSProbeClients bool   `yaml:"tlsProbeClients"`
	// SaveInterval is how often the inventory is written to the store.
	SaveInterval time.Duration `yaml:"saveInterval"`
	LogLevel     string        `yaml:"logLevel"`

	// RuleFiles are detection rule files added to (or overriding) the
	// built-in rules.
	RuleFiles []string `yaml:"ruleFiles"`
	// Shapes is the detector's learned parameter shapes (see ShapesConfig).
	Shapes ShapesConfig `yaml:"shapes"`
	// DenyRules are method + path prefix denies compiled into the kernel.
	DenyRules []DenyRule `yaml:"denyRules"`
	// AutoBlock blocks a source at the guard after Threshold findings
	// within Window, for TTL (protect mode; monitor mode records it).
	AutoBlock AutoBlock `yaml:"autoBlock"`
	// MemoryLimitBytes is the agent's soft memory limit (Go runtime); the
	// garbage collector runs rarely below it and harder near it. Every table
	// is bounded separately, so this is headroom, not the only bound.
	MemoryLimitBytes int64 `yaml:"memoryLimitBytes"`
	// Pprof serves Go's profiler on the API address under /debug/pprof/.
	Pprof bool `yaml:"pprof"`
	// PersistBlocklist keeps manual blocks across agent restarts (restored,
	// with what is left of their TTL, when the agent starts). Off by
	// default: when the agent stops, nothing stays blocked.
	PersistBlocklist bool `yaml:"persistBlocklist"`
	// EventRetention is how long security events are kept.
	EventRetention time.Duration `yaml:"eventRetention"`
	// Hold is protect mode's hold point (see HoldConfig).
	Hold HoldConfig `yaml:"hold"`
	// CopyBudget bounds what the kernel copies of each HTTP/1 message.
	CopyBudget CopyBudget `yaml:"copyBudget"`
	// Behavior is the behavioural model (apimodel/behavior).
	Behavior BehaviorConfig `yaml:"behavior"`
	// GRPCDescriptorSets are binary FileDescriptorSet files (protoc
	// --descriptor_set_out --include_imports, buf build -o): gRPC methods
	// they describe get named, typed message fields in the inventory.
	// Files in <dataDir>/protos/ (*.pb, *.binpb) are loaded too.
	GRPCDescriptorSets []string `yaml:"grpcDescriptorSets"`
}

// grpcDescriptorFiles lists the configured descriptor sets and those in
// <dataDir>/protos/.
func (c *Config) grpcDescriptorFiles() []string {
	files := slices.Clone(c.GRPCDescriptorSets)
	for _, pat := range []string{"*.pb", "*.binpb"} {
		m, _ := filepath.Glob(filepath.Join(c.DataDir, "protos", pat))
		files = append(files, m...)
	}
	return files
}

// CopyBudget is how many bytes of each HTTP/1 message the capture program
// copies, counted from the message's first byte (head + body prefix); the
// rest is counted without copying and the parser skips it (issue #8). The
// defaults cover what the parser keeps of a request (head limit +
// maxBodyBytes) and a 16 KiB body prefix of a response, enough for schema
// inference and sensitive-data tagging. 0: copy everything. Raise
// RequestBytes with maxBodyBytes.
type CopyBudget struct {
	RequestBytes  int `yaml:"requestBytes"`
	ResponseBytes int `yaml:"responseBytes"`
	// Services overrides both per service name (the server's executable
	// name, as in serviceModes).
	Services map[string]CopyLimits `yaml:"services"`
}

// CopyLimits are one service's copy budgets (0: copy everything).
type CopyLimits struct {
	RequestBytes  int `yaml:"requestBytes"`
	ResponseBytes int `yaml:"responseBytes"`
}

func (b CopyBudget) enabled() bool {
	return b.RequestBytes > 0 || b.ResponseBytes > 0 || len(b.Services) > 0
}

// BehaviorConfig tunes the behavioural model; zero values take the
// model's defaults (see behavior.Config).
type BehaviorConfig struct {
	Disabled bool `yaml:"disabled"`
	// TrustedProxies are CIDRs whose X-Forwarded-For is believed.
	TrustedProxies  []string      `yaml:"trustedProxies"`
	Window          time.Duration `yaml:"window"`
	LearningCalls   uint64        `yaml:"learningCalls"`
	EnumDistinct    int           `yaml:"enumDistinct"`
	AuthFailures    int           `yaml:"authFailures"`
	AccountFailures int           `yaml:"accountFailures"`
	ClientRateLimit int           `yaml:"clientRateLimit"`
	MaxClients      int           `yaml:"maxClients"`
	MaxEndpoints    int           `yaml:"maxEndpoints"`
	// AccountClients, EnumFactor, RateFactor, RateMin, ResponseSizeFactor
	// and MaxAccounts: see behavior.Config.
	AccountClients     int     `yaml:"accountClients"`
	EnumFactor         float64 `yaml:"enumFactor"`
	RateFactor         float64 `yaml:"rateFactor"`
	RateMin            int     `yaml:"rateMin"`
	ResponseSizeFactor float64 `yaml:"responseSizeFactor"`
	MaxAccounts        int     `yaml:"maxAccounts"`
	// Positive: calls to endpoints missing from an imported spec are
	// findings.
	Positive bool `yaml:"positive"`
	// BlockTTL is how long protect mode blocks a client an abuse finding
	// names (at the source guard: XDP on NICs, tcx elsewhere).
	BlockTTL time.Duration `yaml:"blockTTL"`
}

// HoldConfig tunes the hold point: in protect mode each client->server data
// segment of a protect-mode service waits in the kernel (NFQUEUE) until the
// detector has judged the request bytes up to its end.
type HoldConfig struct {
	Enabled bool `yaml:"enabled"`
	// Timeout is the longest a segment waits for its verdict.
	Timeout time.Duration `yaml:"timeout"`
	// FailMode is what a late verdict means: "open" (pass, default) or
	// "closed" (drop; TCP resends it and it is judged again).
	FailMode string `yaml:"failMode"`
	// MaxQueued bounds the segments waiting at once (beyond: they pass).
	MaxQueued int `yaml:"maxQueued"`
	// Mark is the skb->mark bit(s) that select held segments; pick bits
	// no other software on the node uses.
	Mark uint32 `yaml:"mark"`
	// Queue is the NFQUEUE number.
	Queue uint16 `yaml:"queue"`
	// TLSResponses holds the responses of TLS flows of protect-mode
	// services until the decrypted request is judged (default on).
	TLSResponses bool `yaml:"tlsResponses"`
}

// OTLPLogs is where events go as OTLP logs.
type OTLPLogs struct {
	Endpoint string            `yaml:"endpoint"` // http://collector:4318
	Headers  map[string]string `yaml:"headers"`
}

// DenyRule refuses requests by method (optional) and path prefix.
type DenyRule struct {
	Method     string `yaml:"method"`
	PathPrefix string `yaml:"pathPrefix"`
	Port       uint16 `yaml:"port"` // 0: every port
}

// ShapesConfig tunes the detector's parameter-shape learner
// (detect.Profiler). It learns, per service and endpoint, each
// parameter's type and the rule classes its values routinely trigger,
// from requests without a cut-grade finding; findings on a value that
// breaks a learned integer/uuid/enum parameter gain confidence, findings
// of a class a text parameter routinely carries lose some (never those at
// 95 or more). Zero values take the detect.DefaultShape* defaults.
type ShapesConfig struct {
	// Disabled turns the learner off: findings keep the rules' confidence.
	Disabled bool `yaml:"disabled"`
	// MinSamples is how many values a parameter needs before its shape is
	// used (0: 20; at least 5).
	MinSamples int `yaml:"minSamples"`
	// UsualMinClients is how many distinct clients must have sent values
	// that trigger a class before it lowers confidence (0: 3).
	UsualMinClients int `yaml:"usualMinClients"`
	// MaxParams bounds the parameters learned in all (0: 50000).
	MaxParams int `yaml:"maxParams"`
}

// profiler returns the learner c configures, nil when disabled.
func (c ShapesConfig) profiler() *detect.Profiler {
	if c.Disabled {
		return nil
	}
	p := detect.NewProfiler()
	if c.MinSamples > 0 {
		p.MinSamples = c.MinSamples
	}
	if c.UsualMinClients > 0 {
		p.UsualMinClients = c.UsualMinClients
	}
	if c.MaxParams > 0 {
		p.MaxTotalParams = c.MaxParams
	}
	return p
}

func (c ShapesConfig) validate() error {
	switch {
	case c.MinSamples != 0 && c.MinSamples < 5:
		return fmt.Errorf("shapes.minSamples %d: must be 0 (default %d) or at least 5", c.MinSamples, detect.DefaultShapeMinSamples)
	case c.UsualMinClients < 0:
		return fmt.Errorf("shapes.usualMinClients %d: must not be negative", c.UsualMinClients)
	case c.MaxParams < 0:
		return fmt.Errorf("shapes.maxParams %d: must not be negative", c.MaxParams)
	}
	return nil
}

// AutoBlock configures automatic source blocking.
type AutoBlock struct {
	Threshold int           `yaml:"threshold"` // 0 disables
	Window    time.Duration `yaml:"window"`
	TTL       time.Duration `yaml:"ttl"`
}

// Default returns the embedded default configuration: watch everything in
// monitor mode, serve the API on loopback.
func Default() Config {
	return Config{
		Mode:             ModeMonitor,
		DataDir:          "/var/lib/apiwarden",
		APIAddr:          "127.0.0.1:9464",
		ChunkMax:         16384,
		RingBufferBytes:  16 << 20,
		WakeupBytes:      64 << 10,
		PollInterval:     2 * time.Millisecond,
		MaxBodyBytes:     64 << 10,
		MaxFlows:         65536,
		FlowIdleTimeout:  2 * time.Minute,
		MaxMetricSeries:  2000,
		TLS:              true,
		TLSProbeScope:    TLSScopeProcess,
		SaveInterval:     10 * time.Second,
		MemoryLimitBytes: 512 << 20,
		LogLevel:         "info",
		AutoBlock:        AutoBlock{Threshold: 10, Window: time.Minute, TTL: 10 * time.Minute},
		EventRetention:   7 * 24 * time.Hour,
		Hold: HoldConfig{Enabled: true, Timeout: 5 * time.Millisecond, FailMode: "open",
			MaxQueued: 4096, Mark: 0x00400000, Queue: 7, TLSResponses: true},
		CopyBudget: CopyBudget{RequestBytes: 16<<10 + 64<<10, ResponseBytes: 32 << 10},
	}
}

// LoadFile overlays a YAML file on c. Unknown keys are an error, so a typo
// does not silently fall back to a default.
func (c *Config) LoadFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	// An empty file decodes to io.EOF: it simply overrides nothing.
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

// Validate reports the first invalid setting with a message a user can act on.
func (c *Config) Validate() error {
	if err := validMode(c.Mode); err != nil {
		return err
	}
	// Only that the files are there: Run parses them (and those in
	// <dataDir>/protos/) once, and a bad one stops the start there.
	for _, f := range c.GRPCDescriptorSets {
		if st, err := os.Stat(f); err != nil {
			return fmt.Errorf("grpcDescriptorSets: %w", err)
		} else if !st.Mode().IsRegular() {
			return fmt.Errorf("grpcDescriptorSets: %s is not a file", f)
		}
	}
	if err := validTLSScope(c.TLSProbeScope); err != nil {
		return err
	}
	if err := c.Shapes.validate(); err != nil {
		return err
	}
	for svc, m := range c.ServiceModes {
		if err := validMode(m); err != nil {
			return fmt.Errorf("service %q: %w", svc, err)
		}
	}
	if _, _, err := net.SplitHostPort(c.APIAddr); err != nil {
		return fmt.Errorf("api-addr %q: %w", c.APIAddr, err)
	}
	if c.APITokenFile == "" {
		if err := apiserver.CheckExposure(c.APIAddr, ""); err != nil {
			return err
		}
	}
	if c.XDSAddr != "" {
		if _, _, err := net.SplitHostPort(c.XDSAddr); err != nil {
			return fmt.Errorf("xds-addr %q: %w", c.XDSAddr, err)
		}
	}
	for _, l := range c.XDSEnvoyListeners {
		if err := l.Validate(); err != nil {
			return fmt.Errorf("xdsEnvoyListeners: %w", err)
		}
	}
	if e := c.OTLPLogs.Endpoint; e != "" && !strings.HasPrefix(e, "http://") && !strings.HasPrefix(e, "https://") {
		return fmt.Errorf("otlpLogs.endpoint %q: want http:// or https:// (OTLP/HTTP)", e)
	}
	if c.XDSRateLimit != nil && c.XDSRateLimit.RequestsPerSecond == 0 {
		return errors.New("xdsRateLimit: requestsPerSecond must be > 0")
	}
	if c.DataDir == "" {
		return errors.New("data-dir must not be empty")
	}
	if c.ChunkMax < 64 || c.ChunkMax > 16384 {
		return fmt.Errorf("chunk-max %d: must be between 64 and 16384", c.ChunkMax)
	}
	if c.RingBufferBytes < 4096 || c.RingBufferBytes&(c.RingBufferBytes-1) != 0 {
		return fmt.Errorf("ring-buffer-bytes %d: must be a power of two >= 4096", c.RingBufferBytes)
	}
	if c.WakeupBytes < 0 || c.WakeupBytes >= c.RingBufferBytes/2 {
		return fmt.Errorf("wakeup-bytes %d: must be between 0 and half the ring buffer", c.WakeupBytes)
	}
	if c.WakeupBytes > 0 && (c.PollInterval < time.Millisecond || c.PollInterval > time.Second) {
		return fmt.Errorf("poll-interval %s: must be between 1ms and 1s", c.PollInterval)
	}
	if c.MemoryLimitBytes < 64<<20 {
		return fmt.Errorf("memory-limit-bytes %d: must be at least 64 MiB", c.MemoryLimitBytes)
	}
	if c.MaxBodyBytes < 0 {
		return fmt.Errorf("max-body-bytes %d: must not be negative", c.MaxBodyBytes)
	}
	if c.MaxFlows < 16 {
		return fmt.Errorf("max-flows %d: must be at least 16", c.MaxFlows)
	}
	if c.FlowIdleTimeout < time.Second {
		return fmt.Errorf("flow-idle-timeout %s: must be at least 1s", c.FlowIdleTimeout)
	}
	for i, d := range c.DenyRules {
		if d.PathPrefix == "" || d.PathPrefix[0] != '/' {
			return fmt.Errorf("denyRules[%d]: pathPrefix must start with /", i)
		}
	}
	if c.AutoBlock.Threshold < 0 || (c.AutoBlock.Threshold > 0 && (c.AutoBlock.Window <= 0 || c.AutoBlock.TTL <= 0)) {
		return fmt.Errorf("autoBlock: threshold needs a positive window and ttl")
	}
	if h := c.Hold; h.Enabled {
		switch {
		case h.Timeout < 100*time.Microsecond || h.Timeout > time.Second:
			return fmt.Errorf("hold.timeout %s: must be between 100µs and 1s", h.Timeout)
		case h.FailMode != "open" && h.FailMode != "closed":
			return fmt.Errorf("hold.failMode %q: must be open or closed", h.FailMode)
		case h.MaxQueued < 1 || h.MaxQueued > 65536:
			return fmt.Errorf("hold.maxQueued %d: must be between 1 and 65536", h.MaxQueued)
		case h.Mark == 0:
			return fmt.Errorf("hold.mark must not be 0")
		}
	}
	if len(c.Ports) > 16 {
		return fmt.Errorf("ports: at most 16, got %d", len(c.Ports))
	}
	if err := validCopyLimits("copyBudget", CopyLimits{c.CopyBudget.RequestBytes, c.CopyBudget.ResponseBytes}); err != nil {
		return err
	}
	for svc, l := range c.CopyBudget.Services {
		if err := validCopyLimits(fmt.Sprintf("copyBudget.services[%q]", svc), l); err != nil {
			return err
		}
	}
	return nil
}

// minCopyBudget keeps a request line and a few headers: a smaller budget
// would blind the inventory.
const minCopyBudget = 1024

func validCopyLimits(what string, l CopyLimits) error {
	for _, v := range []struct {
		name string
		n    int
	}{{"requestBytes", l.RequestBytes}, {"responseBytes", l.ResponseBytes}} {
		if v.n != 0 && (v.n < minCopyBudget || v.n > 1<<30) {
			return fmt.Errorf("%s.%s %d: must be 0 (everything) or between %d and 1 GiB", what, v.name, v.n, minCopyBudget)
		}
	}
	return nil
}

func validMode(m Mode) error {
	switch m {
	case ModeMonitor, ModeProtect:
		return nil
	}
	return fmt.Errorf("mode %q: must be monitor or protect", m)
}

// ModeFor returns the mode that applies to a service.
func (c *Config) ModeFor(service string) Mode {
	if m, ok := c.ServiceModes[service]; ok {
		return m
	}
	return c.Mode
}

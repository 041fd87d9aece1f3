// Package inventory keeps the live API inventory: every call observed is
// folded into one endpoint (service + method + path template) whose
// parameters, schemas, status codes, auth schemes and sensitive data kinds
// are learned from traffic, within configured bounds.
package inventory

import (
	"encoding/binary"
	"log/slog"
	"math/bits"
	"net/url"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apiwarden/apiwarden/apimodel/call"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Config bounds the inventory. Zero fields take the defaults below.
type Config struct {
	// MaxServices bounds distinct services (executable + port).
	MaxServices int
	// MaxEndpoints bounds endpoints per service and MaxTotalEndpoints all
	// endpoints; calls to a new endpoint beyond either are dropped and
	// counted (DroppedEndpoints).
	MaxEndpoints      int
	MaxTotalEndpoints int
	// MaxSegmentValues is the number of distinct literals a path position
	// may take before it becomes a parameter.
	MaxSegmentValues int
	// MaxCollectionValues is the same threshold for positions that usually
	// list resource collections (root, "api", "v1", ...).
	MaxCollectionValues int
	// MaxPathSegments: deeper paths are dropped and counted.
	MaxPathSegments int
	// MaxTrieNodes bounds the learning trie per service.
	MaxTrieNodes int
	// MaxProcesses bounds the processes kept per endpoint.
	MaxProcesses int
	// MaxQueryParams bounds distinct query parameters per endpoint.
	MaxQueryParams int
	// MaxContentTypes bounds content types per endpoint and direction.
	MaxContentTypes int
	// MaxAuthSchemes bounds auth scheme labels per endpoint.
	MaxAuthSchemes int
	// MaxSchemaDepth, MaxSchemaProperties (per object) and MaxSchemaNodes
	// (per schema) bound inferred body schemas.
	MaxSchemaDepth      int
	MaxSchemaProperties int
	MaxSchemaNodes      int
	// MaxBodyBytes: larger bodies are not parsed for schemas.
	MaxBodyBytes int
	// SchemaSampleAll: the first calls of each endpoint are all parsed for
	// schemas and sensitive data; after that one in SchemaSampleEvery.
	// Schemas settle quickly and JSON decoding is the costly part of
	// Observe, so sampling keeps the hot path cheap.
	SchemaSampleAll   uint64
	SchemaSampleEvery uint64
	// Once SchemaStableSamples samples in a row left an endpoint's schemas
	// and sensitive kinds unchanged, its sampling interval doubles, up to
	// one call in SchemaSampleMaxEvery; a sample that changes them brings
	// it back to SchemaSampleEvery. Counts (calls, statuses, parameters)
	// are exact whatever the interval: only body inference is sampled.
	// SchemaSampleMaxEvery <= SchemaSampleEvery turns the backoff off.
	SchemaStableSamples  uint64
	SchemaSampleMaxEvery uint64
	// GRPCDescriptors, when set, names and types the fields of gRPC
	// messages of the methods it knows (grpcschema.Registry, loaded from
	// user-supplied descriptor sets). nil, or a method it does not know,
	// keeps the wire-format schema: field numbers and wire types.
	GRPCDescriptors GRPCDescriptors
}

// GRPCDescriptors resolves a gRPC path ("/package.Service/Method") to its
// request and response message descriptors.
type GRPCDescriptors interface {
	Method(path string) (in, out protoreflect.MessageDescriptor, ok bool)
}

// Defaults for zero Config fields.
const (
	DefaultMaxServices          = 256
	DefaultMaxEndpoints         = 2000
	DefaultMaxTotalEndpoints    = 20000
	DefaultMaxSegmentValues     = 10
	DefaultMaxCollectionValues  = 50
	DefaultMaxPathSegments      = 32
	DefaultMaxProcesses         = 16
	DefaultMaxQueryParams       = 64
	DefaultMaxContentTypes      = 8
	DefaultMaxAuthSchemes       = 16
	DefaultMaxSchemaDepth       = 8
	DefaultMaxSchemaProperties  = 128
	DefaultMaxSchemaNodes       = 512
	DefaultMaxBodyBytes         = 256 << 10
	DefaultSchemaSampleAll      = 64
	DefaultSchemaSampleEvery    = 16
	DefaultSchemaStableSamples  = 8
	DefaultSchemaSampleMaxEvery = 1024
)

func (c *Config) setDefaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.MaxServices, DefaultMaxServices)
	def(&c.MaxEndpoints, DefaultMaxEndpoints)
	def(&c.MaxTotalEndpoints, DefaultMaxTotalEndpoints)
	def(&c.MaxSegmentValues, DefaultMaxSegmentValues)
	def(&c.MaxCollectionValues, DefaultMaxCollectionValues)
	def(&c.MaxPathSegments, DefaultMaxPathSegments)
	def(&c.MaxTrieNodes, 8*c.MaxEndpoints)
	def(&c.MaxProcesses, DefaultMaxProcesses)
	def(&c.MaxQueryParams, DefaultMaxQueryParams)
	def(&c.MaxContentTypes, DefaultMaxContentTypes)
	def(&c.MaxAuthSchemes, DefaultMaxAuthSchemes)
	def(&c.MaxSchemaDepth, DefaultMaxSchemaDepth)
	def(&c.MaxSchemaProperties, DefaultMaxSchemaProperties)
	def(&c.MaxSchemaNodes, DefaultMaxSchemaNodes)
	def(&c.MaxBodyBytes, DefaultMaxBodyBytes)
	if c.SchemaSampleAll == 0 {
		c.SchemaSampleAll = DefaultSchemaSampleAll
	}
	if c.SchemaSampleEvery == 0 {
		c.SchemaSampleEvery = DefaultSchemaSampleEvery
	}
	if c.SchemaStableSamples == 0 {
		c.SchemaStableSamples = DefaultSchemaStableSamples
	}
	if c.SchemaSampleMaxEvery == 0 {
		c.SchemaSampleMaxEvery = DefaultSchemaSampleMaxEvery
	}
}

// Stats are the inventory's counters; every bound has one.
type Stats struct {
	Observed             uint64 // calls given to Observe
	Services             uint64 // services now known
	Endpoints            uint64 // endpoints now known
	DroppedServices      uint64 // calls dropped: MaxServices reached
	DroppedEndpoints     uint64 // calls dropped: MaxEndpoints reached
	DroppedDeepPaths     uint64 // calls dropped: MaxPathSegments exceeded
	DroppedTrieFull      uint64 // calls dropped: MaxTrieNodes reached
	LearnedPositions     uint64 // path positions turned into parameters
	MergedEndpoints      uint64 // endpoints folded into a learned template
	ProcessesOverflow    uint64 // processes not kept: MaxProcesses
	QueryParamsOverflow  uint64 // parameters not kept: MaxQueryParams
	ContentTypesOverflow uint64 // content types not kept: MaxContentTypes
	AuthOverflow         uint64 // auth labels not kept: MaxAuthSchemes
	SchemaPropsOverflow  uint64 // keys or subtrees not kept: MaxSchemaProperties, MaxSchemaNodes, MaxSchemaDepth
	BodiesParsed         uint64 // JSON bodies inferred
	BodiesSkipped        uint64 // JSON bodies not parsed: truncated, too big or invalid
}

type counters struct {
	observed, droppedServices, droppedEndpoints, droppedDeep, droppedTrie  atomic.Uint64
	learned, merged, procOverflow, queryOverflow, ctOverflow, authOverflow atomic.Uint64
	propsOverflow, bodiesParsed, bodiesSkipped                             atomic.Uint64
}

// Inventory is the live, concurrency-safe API inventory.
type Inventory struct {
	cfg Config
	log *slog.Logger
	c   counters

	// mu guards services and everything below them. Observe holds it only
	// for map updates; parsing happens outside.
	mu       sync.Mutex
	services map[serviceKey]*service
	total    int // endpoints over all services

	// paths caches what a (service, protocol, method, raw path) resolved
	// to, so a repeated path skips the service lookup, the trie walk and
	// the endpoint lookup (issue #8). An entry is valid while the trie
	// learns nothing: with no position learned, walking a path walked
	// before creates nothing and gives the same canonical segments, and
	// endpoints are only merged or re-keyed after learning. learn and
	// RestoreState empty it; past pathCacheMax entries it starts over.
	paths        map[string]pathEntry
	pathCacheMax int
}

// pathEntry is a cached resolution: the endpoint and which positions of
// its segments are placeholders (bit i: segment i).
type pathEntry struct {
	svc  *service
	ep   *endpoint
	vars uint64
}

// Path cache bounds: entries, and the raw path length cached (longer
// paths are walked every time; they are rarely repeated).
const (
	defaultPathCacheMax = 4096
	maxCachedPathLen    = 256
)

type serviceKey struct {
	name string
	port uint16
}

type service struct {
	Name      string               `json:"name"`
	Exe       string               `json:"exe"`
	Port      uint16               `json:"port"`
	root      *node                // learning trie
	nodes     int                  // trie size
	endpoints map[string]*endpoint // by method + " " + canonical path
}

// paramStat is the learned state of one parameter.
type paramStat struct {
	Count uint64     `json:"c"`
	Kinds valueKinds `json:"k"`
}

// endpoint is the live state of one endpoint. Exported fields are its
// persisted form (MarshalState).
type endpoint struct {
	Method      string                `json:"method"`
	Segs        []string              `json:"segs"`
	tmpl        string                // rendered Segs, cached for Observe; "" = stale
	Count       uint64                `json:"count"`
	NoResponse  uint64                `json:"noResponse,omitempty"`
	Status      map[int]uint64        `json:"status,omitempty"`
	Procs       []Process             `json:"procs,omitempty"`
	Query       map[string]*paramStat `json:"query,omitempty"`
	Path        map[int]*paramStat    `json:"path,omitempty"`
	ReqCT       map[string]uint64     `json:"reqCT,omitempty"`
	RespCT      map[string]uint64     `json:"respCT,omitempty"`
	ReqSchema   *Schema               `json:"reqSchema,omitempty"`
	RespSchemas map[int]*Schema       `json:"respSchemas,omitempty"`
	Auth        map[string]uint64     `json:"auth,omitempty"`
	Sensitive   sensitiveSet          `json:"sensitive,omitempty"`
	TLS         map[string]uint64     `json:"tls,omitempty"`
	// Protocols counts calls per protocol (http/1.1, h2, grpc); gRPC
	// status codes and streaming kinds are counted for gRPC calls;
	// Partial counts HTTP/2 calls with header fields not recovered.
	Protocols  map[string]uint64 `json:"protocols,omitempty"`
	GRPCStatus map[int]uint64    `json:"grpcStatus,omitempty"`
	GRPCKinds  map[string]uint64 `json:"grpcKinds,omitempty"`
	Partial    uint64            `json:"partial,omitempty"`
	First      time.Time         `json:"first"`
	Last       time.Time         `json:"last"`

	// mergedInto is set when a learned template absorbed this endpoint, so
	// an Observe that parsed a body outside the lock finds the survivor.
	mergedInto *endpoint

	// sampleGap is the body sampling interval past SchemaSampleAll (0:
	// SchemaSampleEvery), always SchemaSampleEvery times a power of two,
	// so the calls sampled are a subset of the fixed interval's;
	// stableSamples counts the samples in a row that changed nothing.
	sampleGap     uint64
	stableSamples uint64

	// slot is the caller's value for this endpoint (see Slot).
	slot Slot
}

// Slot holds one value a caller keeps per endpoint, so per-call work
// keyed by endpoint needs no lookup of its own: the agent keeps the
// endpoint's resolved metric series there instead of hashing their label
// strings on every call (issue #8). The inventory never reads or resets
// it; a caller checks what it stored against the call (a re-templated
// endpoint returns a new template string). Safe for concurrent use.
type Slot struct{ v atomic.Value }

// Load returns the value stored, or nil.
func (s *Slot) Load() any { return s.v.Load() }

// Store replaces the value; every value stored in one Slot must have the
// same concrete type (atomic.Value).
func (s *Slot) Store(v any) { s.v.Store(v) }

// sampleDue tells whether the call just counted (ep.Count) has its
// bodies sampled.
func (ep *endpoint) sampleDue(cfg *Config) bool {
	gap := ep.sampleGap
	if gap == 0 {
		gap = cfg.SchemaSampleEvery
	}
	return ep.Count <= cfg.SchemaSampleAll || ep.Count%gap == 0
}

// noteSample adapts the sampling interval to a sample's outcome.
func (ep *endpoint) noteSample(changed bool, cfg *Config) {
	if changed {
		ep.sampleGap, ep.stableSamples = 0, 0
		return
	}
	ep.stableSamples++
	if ep.Count <= cfg.SchemaSampleAll || ep.stableSamples < cfg.SchemaStableSamples {
		return
	}
	ep.stableSamples = 0
	gap := ep.sampleGap
	if gap == 0 {
		gap = cfg.SchemaSampleEvery
	}
	if gap <= cfg.SchemaSampleMaxEvery/2 {
		ep.sampleGap = gap * 2
	}
}

// New returns an empty inventory.
func New(cfg Config, log *slog.Logger) *Inventory {
	cfg.setDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Inventory{
		cfg:      cfg,
		log:      log.With("component", "inventory"),
		services: map[serviceKey]*service{},
		paths:    map[string]pathEntry{},

		pathCacheMax: defaultPathCacheMax,
	}
}

// Stats returns the counters.
func (inv *Inventory) Stats() Stats {
	inv.mu.Lock()
	var eps int
	for _, s := range inv.services {
		eps += len(s.endpoints)
	}
	svcs := len(inv.services)
	inv.mu.Unlock()
	c := &inv.c
	return Stats{
		Observed: c.observed.Load(), Services: uint64(svcs), Endpoints: uint64(eps),
		DroppedServices: c.droppedServices.Load(), DroppedEndpoints: c.droppedEndpoints.Load(),
		DroppedDeepPaths: c.droppedDeep.Load(), DroppedTrieFull: c.droppedTrie.Load(),
		LearnedPositions: c.learned.Load(), MergedEndpoints: c.merged.Load(),
		ProcessesOverflow: c.procOverflow.Load(), QueryParamsOverflow: c.queryOverflow.Load(),
		ContentTypesOverflow: c.ctOverflow.Load(), AuthOverflow: c.authOverflow.Load(),
		SchemaPropsOverflow: c.propsOverflow.Load(), BodiesParsed: c.bodiesParsed.Load(),
		BodiesSkipped: c.bodiesSkipped.Load(),
	}
}

// queryValue is one distinct query parameter of a request.
type queryValue struct {
	name string
	kind valueKinds
}

// prepared is what Observe computes before taking the lock.
type prepared struct {
	svc       serviceKey
	exe       string
	segs      []string
	segKinds  []valueKinds // kind per segment, for path parameter types
	query     []queryValue
	auth      []string
	reqCT     string
	respCT    string
	sensitive sensitiveSet
	ts        time.Time

	// Backing arrays for the slices above: a typical call fits, so
	// Observe allocates none of them (prepared lives on its stack).
	segBuf   [12]string
	kindBuf  [12]valueKinds
	queryBuf [8]queryValue
	authBuf  [4]string
	walkBuf  [12]string
	keyBuf   []byte
	// pathKey is the call's key in the path cache; nil when the call is
	// not cached (path too long or too deep for the placeholder mask).
	pathKey []byte
	pathBuf []byte
}

// Observe folds one call into the inventory and returns the path template
// it was counted under ("" when it was dropped by a bound), so metrics and
// events can be labelled with bounded values. It is safe for concurrent use.
func (inv *Inventory) Observe(c *call.Call) string {
	tmpl, _ := inv.ObserveSlot(c)
	return tmpl
}

// ObserveSlot is Observe also returning the slot of the endpoint the call
// was counted under (nil when it was dropped).
func (inv *Inventory) ObserveSlot(c *call.Call) (string, *Slot) {
	if c == nil || c.Request == nil {
		return "", nil
	}
	inv.c.observed.Add(1)
	p := preparedPool.Get().(*prepared)
	defer p.release()
	if !inv.prepare(c, p) {
		return "", nil
	}
	inv.mu.Lock()
	ep, sample := inv.record(c, p)
	if ep == nil {
		inv.mu.Unlock()
		return "", nil
	}
	if ep.tmpl == "" {
		ep.tmpl, _ = renderTemplate(ep.Segs)
	}
	tmpl := ep.tmpl
	inv.mu.Unlock()
	if sample {
		inv.sampleBodies(c, ep, p)
	}
	return tmpl, &ep.slot
}

// preparedPool recycles the per-call scratch of Observe with its buffers
// (issue #8: the call pipeline allocates per call only what it keeps).
var preparedPool = sync.Pool{New: func() any { return new(prepared) }}

// release clears what refers to the call (so the pool keeps no request
// alive) and returns p to the pool.
func (p *prepared) release() {
	kb, pb := p.keyBuf[:0], p.pathBuf[:0]
	*p = prepared{keyBuf: kb, pathBuf: pb} // zeroes the buffers too
	preparedPool.Put(p)
}

func (inv *Inventory) prepare(c *call.Call, p *prepared) bool {
	req := c.Request
	p.svc.name = "unknown"
	if sp := c.ServerProcess; sp != nil && sp.Exe != "" {
		p.exe = sp.Exe
		p.svc.name = filepath.Base(sp.Exe)
	}
	p.svc.port = c.Server.Port()
	p.segs = appendSegments(p.segBuf[:0], req.Path)
	if len(p.segs) > inv.cfg.MaxPathSegments {
		inv.c.droppedDeep.Add(1)
		return false
	}
	if len(p.segs) <= len(p.kindBuf) {
		p.segKinds = p.kindBuf[:len(p.segs)]
	} else {
		p.segKinds = make([]valueKinds, len(p.segs))
	}
	for i, s := range p.segs {
		k := classifyValue(s)
		p.segKinds[i] = k
		if k == kindEmail {
			p.sensitive |= sensEmail
		}
	}
	var queryKeys []string
	p.query, queryKeys, p.sensitive = appendQuery(p.queryBuf[:0], req.RawQuery, p.sensitive)
	p.auth = appendAuth(p.authBuf[:0], req.Headers, queryKeys)
	p.reqCT = mediaType(req.Headers.Get("Content-Type"))
	if c.Response != nil {
		p.respCT = mediaType(c.Response.Headers.Get("Content-Type"))
	}
	// UTC strips the monotonic reading, so persisted and live times compare
	// equal.
	p.ts = req.Start.UTC()
	if len(req.Path) <= maxCachedPathLen && len(p.segs) <= 64 {
		p.pathKey = appendPathKey(p.pathBuf[:0], p.svc, c.Protocol == call.ProtoGRPC, req.Method, req.Path)
		p.pathBuf = p.pathKey
	}
	return true
}

// appendPathKey appends the path cache key of a call: every part but the
// last length-prefixed, so no two calls share a key.
func appendPathKey(b []byte, svc serviceKey, grpc bool, method, path string) []byte {
	b = binary.AppendUvarint(b, uint64(len(svc.name)))
	b = append(b, svc.name...)
	b = binary.BigEndian.AppendUint16(b, svc.port)
	if grpc {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(method)))
	b = append(b, method...)
	return append(b, path...)
}

// maxQueryNameLen: longer names are folded into one "(long)" bucket rather
// than kept, since they are not parameter names but garbage or payloads.
const maxQueryNameLen = 128

// parseQuery returns the distinct parameters of a raw query with the kind
// of their first value, the credential-carrying names, and the sensitive
// kinds in names and values.
func parseQuery(raw string, sens sensitiveSet) ([]queryValue, []string, sensitiveSet) {
	return appendQuery(nil, raw, sens)
}

// appendQuery is parseQuery appending to a caller's buffer.
func appendQuery(out []queryValue, raw string, sens sensitiveSet) ([]queryValue, []string, sensitiveSet) {
	if raw == "" {
		return out, nil, sens
	}
	var keys []string
	for raw != "" {
		var kv string
		kv, raw, _ = strings.Cut(raw, "&")
		if kv == "" {
			continue
		}
		name, val, _ := strings.Cut(kv, "=")
		if strings.ContainsAny(name, "%+") {
			if n, err := url.QueryUnescape(name); err == nil {
				name = n
			}
		}
		if strings.ContainsAny(val, "%+") {
			if v, err := url.QueryUnescape(val); err == nil {
				val = v
			}
		}
		if name == "" {
			continue
		}
		if len(name) > maxQueryNameLen {
			name = "(long)"
		}
		dup := false
		for i := range out {
			if out[i].name == name {
				out[i].kind |= classifyValue(val)
				dup = true
				break
			}
		}
		if dup {
			continue
		}
		out = append(out, queryValue{name: name, kind: classifyValue(val)})
		sens |= sensitiveInKey(name) | sensitiveInValue(val)
		if isAPIKeyParam(name) {
			keys = append(keys, name)
		}
	}
	return out, keys, sens
}

// record updates the endpoint under inv.mu and says whether the bodies of
// this call should be sampled.
func (inv *Inventory) record(c *call.Call, p *prepared) (*endpoint, bool) {
	if p.pathKey != nil {
		if e, ok := inv.paths[string(p.pathKey)]; ok {
			inv.update(e.ep, c, p, e.vars)
			return e.ep, e.ep.sampleDue(&inv.cfg)
		}
	}
	svc := inv.services[p.svc]
	if svc == nil {
		if len(inv.services) >= inv.cfg.MaxServices {
			inv.c.droppedServices.Add(1)
			return nil, false
		}
		svc = &service{Name: p.svc.name, Exe: p.exe, Port: p.svc.port, root: &node{}, nodes: 1,
			endpoints: map[string]*endpoint{}}
		inv.services[p.svc] = svc
	}
	// The walk's output lives in the pooled scratch: a stack array here
	// escaped (one allocation per call).
	walkBuf := &p.walkBuf
	var segs []string
	relearn, ok := false, true
	if c.Protocol == call.ProtoGRPC {
		// A gRPC path names a method, never a resource: no templating, so
		// a service with many methods is not folded into a parameter.
		segs = p.segs
	} else {
		segs, relearn, ok = inv.walkInto(walkBuf[:0], svc, p.segs, true)
	}
	// Learning can cascade below the learned position while existing
	// endpoints are re-keyed, so this call is walked again until stable.
	for ok && relearn {
		inv.rekey(svc)
		segs, relearn, ok = inv.walkInto(walkBuf[:0], svc, p.segs, true)
	}
	if !ok {
		inv.c.droppedTrie.Add(1)
		return nil, false
	}
	// The lookup converts the key bytes without allocating; only a new
	// endpoint pays for its key string and its own copy of segs.
	p.keyBuf = appendEndpointKey(p.keyBuf[:0], c.Request.Method, segs)
	ep := svc.endpoints[string(p.keyBuf)]
	if ep == nil {
		key := string(p.keyBuf)
		segs = slices.Clone(segs)
		if len(svc.endpoints) >= inv.cfg.MaxEndpoints || inv.total >= inv.cfg.MaxTotalEndpoints {
			inv.c.droppedEndpoints.Add(1)
			return nil, false
		}
		ep = &endpoint{Method: c.Request.Method, Segs: segs, First: p.ts, Last: p.ts}
		svc.endpoints[key] = ep
		inv.total++
	}
	vars := placeholderMask(segs)
	if p.pathKey != nil && inv.pathCacheMax > 0 { // len(segs) <= 64: vars says it all
		if len(inv.paths) >= inv.pathCacheMax {
			clear(inv.paths)
		}
		inv.paths[string(p.pathKey)] = pathEntry{svc: svc, ep: ep, vars: vars}
	}
	inv.update(ep, c, p, vars)
	for i := 64; i < len(segs); i++ { // past the mask (MaxPathSegments > 64)
		if segs[i] == placeholder {
			inv.countPathParam(ep, p, i)
		}
	}
	return ep, ep.sampleDue(&inv.cfg)
}

// placeholderMask has bit i set when segs[i] is a placeholder, for the
// first 64 segments (deeper paths are not cached).
func placeholderMask(segs []string) uint64 {
	var m uint64
	for i, s := range segs[:min(len(segs), 64)] {
		if s == placeholder {
			m |= 1 << i
		}
	}
	return m
}

func endpointKey(method string, segs []string) string {
	return string(appendEndpointKey(nil, method, segs))
}

func appendEndpointKey(b []byte, method string, segs []string) []byte {
	b = append(b, method...)
	b = append(b, " /"...)
	for i, s := range segs {
		if i > 0 {
			b = append(b, '/')
		}
		b = append(b, s...)
	}
	return b
}

// walk maps request segments to canonical segments through the service's
// trie, creating nodes when create is set. relearn reports that a position
// was learned during the walk, so existing endpoints must be re-keyed. ok is
// false when the trie bound was hit.
func (inv *Inventory) walk(svc *service, segs []string, create bool) (out []string, relearn, ok bool) {
	return inv.walkInto(nil, svc, segs, create)
}

// walkInto is walk writing the canonical segments into buf's backing array
// when they fit.
func (inv *Inventory) walkInto(buf []string, svc *service, segs []string, create bool) (out []string, relearn, ok bool) {
	if cap(buf) >= len(segs) {
		out = buf[:len(segs)]
	} else {
		out = make([]string, len(segs))
	}
	n := svc.root
	for i, s := range segs {
		key := s
		switch {
		case s == placeholder || isVariable(s) || n.learned:
			key = placeholder
		case n.child(s) == nil:
			limit := inv.cfg.MaxSegmentValues
			if isCollectionRoot(out[:i]) {
				limit = inv.cfg.MaxCollectionValues
			}
			if n.literals+1 > limit {
				inv.learn(svc, n)
				relearn = true
				key = placeholder
			}
		}
		out[i] = key
		next := n.child(key)
		if next == nil {
			if !create {
				return out, relearn, true
			}
			if svc.nodes >= inv.cfg.MaxTrieNodes {
				return nil, relearn, false
			}
			next = &node{}
			if n.children == nil {
				n.children = map[string]*node{}
			}
			n.children[key] = next
			svc.nodes++
			if key != placeholder {
				n.literals++
			}
		}
		n = next
	}
	return out, relearn, true
}

// learn turns a trie position into a parameter: its literal subtrees are
// dropped; rekey rebuilds what is needed under the placeholder.
func (inv *Inventory) learn(svc *service, n *node) {
	clear(inv.paths) // walks may now end elsewhere
	n.learned = true
	for k, c := range n.children {
		if k != placeholder {
			svc.nodes -= c.size()
			delete(n.children, k)
		}
	}
	n.literals = 0
	inv.c.learned.Add(1)
}

// rekey re-templates every endpoint of a service after learning and merges
// endpoints that now share a key. Merging can make a deeper position exceed
// its threshold in turn, so it repeats until nothing new is learned; each
// pass learns at least one position, which bounds the loop by the depth.
func (inv *Inventory) rekey(svc *service) {
	for {
		again := false
		keys := make([]string, 0, len(svc.endpoints))
		for k := range svc.endpoints {
			keys = append(keys, k)
		}
		sort.Strings(keys) // deterministic merge order
		for _, k := range keys {
			ep := svc.endpoints[k]
			if ep == nil {
				continue
			}
			segs, relearn, ok := inv.walk(svc, ep.Segs, true)
			again = again || relearn
			if !ok {
				continue // trie full: the endpoint keeps its old key
			}
			nk := endpointKey(ep.Method, segs)
			if nk == k {
				continue
			}
			delete(svc.endpoints, k)
			if dst := svc.endpoints[nk]; dst != nil {
				inv.merge(dst, ep)
				inv.total--
			} else {
				inv.moveTo(ep, segs)
				svc.endpoints[nk] = ep
			}
		}
		if !again {
			return
		}
	}
}

// moveTo re-templates ep in place: positions that were literal and are now
// parameters get a path parameter counted for every request so far.
func (inv *Inventory) moveTo(ep *endpoint, segs []string) {
	for i, s := range segs {
		if s == placeholder && ep.Segs[i] != placeholder {
			if ep.Path == nil {
				ep.Path = map[int]*paramStat{}
			}
			ep.Path[i] = &paramStat{Count: ep.Count, Kinds: classifyValue(ep.Segs[i])}
		}
	}
	ep.Segs = segs
	ep.tmpl = ""
}

// merge folds src into dst (same key after learning).
func (inv *Inventory) merge(dst, src *endpoint) {
	inv.moveTo(src, dst.Segs)
	inv.c.merged.Add(1)
	src.mergedInto = dst
	dst.sampleGap, dst.stableSamples = 0, 0 // new material: sample as often as a young endpoint
	dst.Count += src.Count
	dst.NoResponse += src.NoResponse
	for k, v := range src.Status {
		if dst.Status == nil {
			dst.Status = map[int]uint64{}
		}
		dst.Status[k] += v
	}
	for _, pr := range src.Procs {
		inv.addProcess(dst, pr)
	}
	for k, v := range src.Query {
		inv.addQuery(dst, k, v.Count, v.Kinds)
	}
	for i, v := range src.Path {
		if dst.Path == nil {
			dst.Path = map[int]*paramStat{}
		}
		ps := dst.Path[i]
		if ps == nil {
			ps = &paramStat{}
			dst.Path[i] = ps
		}
		ps.Count += v.Count
		ps.Kinds |= v.Kinds
	}
	for k, v := range src.ReqCT {
		dst.ReqCT = inv.addCount(dst.ReqCT, k, v, inv.cfg.MaxContentTypes, &inv.c.ctOverflow)
	}
	for k, v := range src.RespCT {
		dst.RespCT = inv.addCount(dst.RespCT, k, v, inv.cfg.MaxContentTypes, &inv.c.ctOverflow)
	}
	for k, v := range src.Auth {
		dst.Auth = inv.addCount(dst.Auth, k, v, inv.cfg.MaxAuthSchemes, &inv.c.authOverflow)
	}
	for k, v := range src.TLS {
		dst.TLS = inv.addCount(dst.TLS, k, v, inv.cfg.MaxContentTypes, &inv.c.ctOverflow)
	}
	for k, v := range src.Protocols {
		dst.Protocols = inv.addCount(dst.Protocols, k, v, inv.cfg.MaxContentTypes, &inv.c.ctOverflow)
	}
	for k, v := range src.GRPCKinds {
		dst.GRPCKinds = inv.addCount(dst.GRPCKinds, k, v, inv.cfg.MaxContentTypes, &inv.c.ctOverflow)
	}
	for k, v := range src.GRPCStatus {
		if dst.GRPCStatus == nil {
			dst.GRPCStatus = map[int]uint64{}
		}
		dst.GRPCStatus[k] += v
	}
	dst.Partial += src.Partial
	dst.ReqSchema = inv.mergeInto(dst.ReqSchema, src.ReqSchema)
	for k, v := range src.RespSchemas {
		if dst.RespSchemas == nil {
			dst.RespSchemas = map[int]*Schema{}
		}
		dst.RespSchemas[k] = inv.mergeInto(dst.RespSchemas[k], v)
	}
	dst.Sensitive |= src.Sensitive
	if src.First.Before(dst.First) {
		dst.First = src.First
	}
	if src.Last.After(dst.Last) {
		dst.Last = src.Last
	}
}

func (inv *Inventory) addCount(m map[string]uint64, k string, n uint64, limit int, overflow *atomic.Uint64) map[string]uint64 {
	// The membership test only at the bound: below it, the one map
	// access of the increment is all (five counts per call, each
	// hashed twice before, issue #8).
	if len(m) >= limit {
		if _, ok := m[k]; !ok {
			overflow.Add(1)
			return m
		}
	}
	if m == nil {
		m = map[string]uint64{}
	}
	m[k] += n
	return m
}

func (inv *Inventory) addProcess(ep *endpoint, pr Process) {
	for i := range ep.Procs {
		if ep.Procs[i].PID == pr.PID {
			return
		}
	}
	if len(ep.Procs) >= inv.cfg.MaxProcesses {
		inv.c.procOverflow.Add(1)
		return
	}
	ep.Procs = append(ep.Procs, pr)
}

func (inv *Inventory) addQuery(ep *endpoint, name string, n uint64, k valueKinds) {
	ps := ep.Query[name]
	if ps == nil {
		if len(ep.Query) >= inv.cfg.MaxQueryParams {
			inv.c.queryOverflow.Add(1)
			return
		}
		if ep.Query == nil {
			ep.Query = map[string]*paramStat{}
		}
		ps = &paramStat{}
		ep.Query[name] = ps
	}
	ps.Count += n
	ps.Kinds |= k
}

// update adds one call to ep; vars marks the placeholder positions of
// the call's canonical segments (placeholderMask: the first 64).
func (inv *Inventory) update(ep *endpoint, c *call.Call, p *prepared, vars uint64) {
	ep.Count++
	if p.ts.Before(ep.First) {
		ep.First = p.ts
	}
	if p.ts.After(ep.Last) {
		ep.Last = p.ts
	}
	if c.Response != nil {
		if ep.Status == nil {
			ep.Status = map[int]uint64{}
		}
		ep.Status[c.Response.StatusCode]++
	} else {
		ep.NoResponse++
	}
	if sp := c.ServerProcess; sp != nil {
		inv.addProcess(ep, Process{PID: sp.PID, Comm: sp.Comm, Exe: sp.Exe, ContainerID: sp.ContainerID})
	}
	for _, q := range p.query {
		inv.addQuery(ep, q.name, 1, q.kind)
	}
	for ; vars != 0; vars &= vars - 1 {
		inv.countPathParam(ep, p, bits.TrailingZeros64(vars))
	}
	if p.reqCT != "" {
		ep.ReqCT = inv.addCount(ep.ReqCT, p.reqCT, 1, inv.cfg.MaxContentTypes, &inv.c.ctOverflow)
	}
	if p.respCT != "" {
		ep.RespCT = inv.addCount(ep.RespCT, p.respCT, 1, inv.cfg.MaxContentTypes, &inv.c.ctOverflow)
	}
	for _, a := range p.auth {
		ep.Auth = inv.addCount(ep.Auth, a, 1, inv.cfg.MaxAuthSchemes, &inv.c.authOverflow)
	}
	ep.TLS = inv.addCount(ep.TLS, c.TLS, 1, inv.cfg.MaxContentTypes, &inv.c.ctOverflow)
	ep.Sensitive |= p.sensitive
	inv.updateProtocol(ep, c)
}

// countPathParam counts the call's value at path parameter position i.
func (inv *Inventory) countPathParam(ep *endpoint, p *prepared, i int) {
	if ep.Path == nil {
		ep.Path = map[int]*paramStat{}
	}
	ps := ep.Path[i]
	if ps == nil {
		ps = &paramStat{}
		ep.Path[i] = ps
	}
	ps.Count++
	ps.Kinds |= p.segKinds[i]
}

// updateProtocol counts the call's protocol and, for gRPC, its status and
// streaming kind (bounded like the content types).
func (inv *Inventory) updateProtocol(ep *endpoint, c *call.Call) {
	ep.Protocols = inv.addCount(ep.Protocols, c.ProtocolName(), 1, inv.cfg.MaxContentTypes, &inv.c.ctOverflow)
	if c.Partial {
		ep.Partial++
	}
	if g := c.GRPC; g != nil {
		if c.Response != nil || g.Status >= 0 {
			if ep.GRPCStatus == nil {
				ep.GRPCStatus = map[int]uint64{}
			}
			if _, ok := ep.GRPCStatus[g.Status]; ok || len(ep.GRPCStatus) < 32 {
				ep.GRPCStatus[g.Status]++
			}
		}
		ep.GRPCKinds = inv.addCount(ep.GRPCKinds, g.Kind(), 1, inv.cfg.MaxContentTypes, &inv.c.ctOverflow)
	}
}

// sampleBodies infers the JSON schemas of a sampled call outside the lock
// and merges them in.
func (inv *Inventory) sampleBodies(c *call.Call, ep *endpoint, p *prepared) {
	lim := inferLimits{maxDepth: inv.cfg.MaxSchemaDepth, maxProps: inv.cfg.MaxSchemaProperties,
		maxNodes: inv.cfg.MaxSchemaNodes}
	var req, resp inferResult
	var haveReq, haveResp bool
	if c.GRPC != nil {
		// With a descriptor: field names and proto types; without one
		// (or when the bytes do not fit it): numbers and wire types.
		var in, out protoreflect.MessageDescriptor
		if d := inv.cfg.GRPCDescriptors; d != nil {
			in, out, _ = d.Method(c.Request.Path)
		}
		if !c.Request.BodyTruncated {
			req, haveReq = inferGRPCWith(c.Request.Body, in, lim)
		}
		if c.Response != nil && !c.Response.BodyTruncated {
			resp, haveResp = inferGRPCWith(c.Response.Body, out, lim)
		}
	} else if len(c.Request.Body) > 0 {
		switch {
		case isJSONMedia(p.reqCT):
			req, haveReq = inv.parseBody(c.Request.Body, c.Request.BodyTruncated, lim)
		case p.reqCT == "application/x-www-form-urlencoded" && !c.Request.BodyTruncated:
			req, haveReq = inferForm(c.Request.Body, lim), true
		}
	}
	if c.GRPC == nil && c.Response != nil && len(c.Response.Body) > 0 && isJSONMedia(p.respCT) {
		resp, haveResp = inv.parseBody(c.Response.Body, c.Response.BodyTruncated, lim)
	}
	if !haveReq && !haveResp {
		return
	}
	inv.c.propsOverflow.Add(uint64(req.dropped + resp.dropped))
	inv.mu.Lock()
	for ep.mergedInto != nil {
		ep = ep.mergedInto
	}
	code := 0
	if haveResp {
		code = c.Response.StatusCode
	}
	// Fingerprints only when the interval can back off (two walks of the
	// merged schemas, ~10 % of a sampled call).
	backoff := inv.cfg.SchemaSampleMaxEvery > inv.cfg.SchemaSampleEvery
	var before uint64
	if backoff {
		before = ep.samplePrint(haveReq, haveResp, code)
	}
	if haveReq {
		ep.ReqSchema = inv.mergeInto(ep.ReqSchema, req.schema)
		ep.Sensitive |= req.sensitive
	}
	if haveResp {
		if ep.RespSchemas == nil {
			ep.RespSchemas = map[int]*Schema{}
		}
		ep.RespSchemas[code] = inv.mergeInto(ep.RespSchemas[code], resp.schema)
		ep.Sensitive |= resp.sensitive
	}
	if backoff {
		ep.noteSample(ep.samplePrint(haveReq, haveResp, code) != before, &inv.cfg)
	}
	inv.mu.Unlock()
}

// mergeInto merges a sample into an endpoint's schema within the schema
// bounds, counting what did not fit.
func (inv *Inventory) mergeInto(dst, src *Schema) *Schema {
	bud := schemaBudget{maxProps: inv.cfg.MaxSchemaProperties, left: inv.cfg.MaxSchemaNodes - schemaSize(dst)}
	if dst == nil && schemaSize(src) > bud.left {
		inv.c.propsOverflow.Add(1)
		return &Schema{Type: src.Type, Format: src.Format, Nullable: src.Nullable}
	}
	out := mergeSchema(dst, src, &bud)
	inv.c.propsOverflow.Add(uint64(bud.dropped))
	return out
}

func (inv *Inventory) parseBody(b []byte, truncated bool, lim inferLimits) (inferResult, bool) {
	if truncated || len(b) > inv.cfg.MaxBodyBytes {
		inv.c.bodiesSkipped.Add(1)
		return inferResult{}, false
	}
	r, ok := inferJSON(b, lim)
	if !ok {
		inv.c.bodiesSkipped.Add(1)
		return inferResult{}, false
	}
	inv.c.bodiesParsed.Add(1)
	return r, true
}

// Snapshot returns deep copies of every endpoint, sorted by service name,
// port, path template and method.
func (inv *Inventory) Snapshot() []Endpoint {
	inv.mu.Lock()
	out := make([]Endpoint, 0, 64)
	for _, svc := range inv.services {
		for _, ep := range svc.endpoints {
			out = append(out, ep.snapshot(svc))
		}
	}
	inv.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		a, b := &out[i], &out[j]
		if a.Service.Name != b.Service.Name {
			return a.Service.Name < b.Service.Name
		}
		if a.Service.Port != b.Service.Port {
			return a.Service.Port < b.Service.Port
		}
		if a.PathTemplate != b.PathTemplate {
			return a.PathTemplate < b.PathTemplate
		}
		return a.Method < b.Method
	})
	return out
}

func copyCounts[K comparable](m map[K]uint64) map[K]uint64 {
	out := make(map[K]uint64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (ep *endpoint) snapshot(svc *service) Endpoint {
	tmpl, names := renderTemplate(ep.Segs)
	e := Endpoint{
		Service:              Service{Name: svc.Name, Exe: svc.Exe, Port: svc.Port},
		Method:               ep.Method,
		PathTemplate:         tmpl,
		RequestCount:         ep.Count,
		StatusCodes:          copyCounts(ep.Status),
		NoResponse:           ep.NoResponse,
		Processes:            append([]Process(nil), ep.Procs...),
		RequestContentTypes:  copyCounts(ep.ReqCT),
		ResponseContentTypes: copyCounts(ep.RespCT),
		RequestSchema:        cloneSchema(ep.ReqSchema),
		ResponseSchemas:      make(map[int]*Schema, len(ep.RespSchemas)),
		AuthSchemes:          copyCounts(ep.Auth),
		Sensitive:            ep.Sensitive.names(),
		TLS:                  copyCounts(ep.TLS),
		Protocol:             mainProtocol(ep.Protocols),
		Protocols:            copyCounts(ep.Protocols),
		GRPCStatusCodes:      copyCounts(ep.GRPCStatus),
		GRPCKinds:            copyCounts(ep.GRPCKinds),
		PartialCalls:         ep.Partial,
		FirstSeen:            ep.First,
		LastSeen:             ep.Last,
	}
	sort.Slice(e.Processes, func(i, j int) bool { return e.Processes[i].PID < e.Processes[j].PID })
	for k, v := range ep.RespSchemas {
		e.ResponseSchemas[k] = cloneSchema(v)
	}
	for name, ps := range ep.Query {
		typ, format := ps.Kinds.resolve()
		e.QueryParams = append(e.QueryParams, Param{Name: name, In: "query", Type: typ, Format: format,
			Count: ps.Count, Required: ps.Count == ep.Count})
	}
	sort.Slice(e.QueryParams, func(i, j int) bool { return e.QueryParams[i].Name < e.QueryParams[j].Name })
	for i, s := range ep.Segs {
		if s != placeholder {
			continue
		}
		var ps paramStat
		if p := ep.Path[i]; p != nil {
			ps = *p
		}
		typ, format := ps.Kinds.resolve()
		e.PathParams = append(e.PathParams, Param{Name: names[i], In: "path", Type: typ, Format: format,
			Count: ps.Count, Required: true})
	}
	return e
}

// mainProtocol is the protocol most calls of an endpoint used (ties:
// grpc, then h2, then http/1.1); http/1.1 for endpoints restored from a
// state written before protocols were counted.
func mainProtocol(m map[string]uint64) string {
	best, n := call.ProtoHTTP1, uint64(0)
	for _, p := range []string{call.ProtoGRPC, call.ProtoH2, call.ProtoHTTP1} {
		if m[p] > n {
			best, n = p, m[p]
		}
	}
	for p, v := range m {
		if v > n {
			best, n = p, v
		}
	}
	return best
}

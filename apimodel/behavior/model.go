// Package behavior is apiwarden's model of normal API use: baselines per
// endpoint and per (client, endpoint), kept in bounded streaming
// structures, and the abuse detections that compare each call to them
// (enumeration, credential stuffing, rate, schema drift, sensitive data
// exposure, shadow endpoints). It needs no kernel: the agent feeds it calls
// and acts on its findings like on the attack detector's.
package behavior

import (
	"bytes"
	"fmt"
	"github.com/apiwarden/apiwarden/apimodel/asciifold"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/apiwarden/apiwarden/apimodel/call"
	"github.com/apiwarden/apiwarden/apimodel/detect"
	"github.com/apiwarden/apiwarden/apimodel/inventory"
)

// Class is the detect.Finding class of every behavioural finding.
const Class = "abuse"

// Rule ids of the behavioural findings.
const (
	RuleEnumeration        = "abuse-enumeration"
	RuleBruteForce         = "abuse-brute-force"
	RuleCredentialStuffing = "abuse-credential-stuffing"
	RuleClientRate         = "abuse-client-rate"
	RuleEndpointRate       = "abuse-endpoint-rate"
	RuleTypeDrift          = "abuse-type-drift"
	RuleUnknownField       = "abuse-unknown-field"
	RuleMassAssignment     = "abuse-mass-assignment"
	RuleResponseSize       = "abuse-response-size"
	RuleSensitiveExposure  = "abuse-sensitive-exposure"
	RuleShadowEndpoint     = "abuse-shadow-endpoint"
	RuleZombieEndpoint     = "abuse-zombie-endpoint"
)

// Config configures the model. Zero values take the defaults.
type Config struct {
	// Key keys the credential and account hashes (random if empty: then
	// hashes do not survive a restart, which only loses client state).
	Key []byte
	// TrustedProxies: X-Forwarded-For is honoured only from these.
	TrustedProxies []netip.Prefix
	// Window is the counting window of every per-client detection.
	Window time.Duration // default 1m
	// LearningCalls: an endpoint's baseline-relative detections (drift,
	// sensitive, size, rate) start after this many calls.
	LearningCalls uint64 // default 200
	// EnumDistinct: distinct object ids one client may touch on one
	// templated endpoint in a window (raised to EnumFactor times the
	// endpoint's learned per-client norm when that is larger).
	EnumDistinct int     // default 100
	EnumFactor   float64 // default 5
	// AuthFailures: 401/403 from auth endpoints per client per window;
	// AccountFailures: per account across clients, from at least
	// AccountClients distinct clients.
	AuthFailures    int // default 20
	AccountFailures int // default 20
	AccountClients  int // default 2
	// ClientRateLimit: calls per client per endpoint per window (0: none);
	// RateFactor times the learned per-client norm, at least RateMin calls.
	ClientRateLimit int
	RateFactor      float64 // default 10
	RateMin         int     // default 300
	// ResponseSizeFactor: a response this many times the endpoint's mean
	// (and over 4 KiB) after learning is a jump.
	ResponseSizeFactor float64 // default 10
	// Bounds on tracked state.
	MaxEndpoints int // default 1000
	MaxClients   int // (client, endpoint) pairs, default 10000
	MaxAccounts  int // default 10000
	MaxFields    int // fields remembered per endpoint, default 128
	// Response bodies are scanned for sensitive data on each of an
	// endpoint's first SensitiveSampleAll calls, then on one call in
	// SensitiveSampleEvery. Once SensitiveStableSamples scans in a row
	// found no kind the endpoint had not returned before, the interval
	// doubles, up to one call in SensitiveSampleMaxEvery; a scan that
	// finds a new kind brings back scanning every call for the next
	// SensitiveSampleAll calls (the endpoint is exposing something new:
	// its next responses are worth reading). Only the scan is sampled:
	// every call counts. SensitiveSampleMaxEvery <= SensitiveSampleEvery
	// turns the backoff off.
	SensitiveSampleAll      uint64 // default 64
	SensitiveSampleEvery    uint64 // default 16
	SensitiveStableSamples  uint64 // default 8
	SensitiveSampleMaxEvery uint64 // default 256
	// Positive: calls to endpoints missing from an imported spec are
	// findings (else they are only reported by Diff).
	Positive bool
	// Now is the clock for calls without a start time (default
	// time.Now). Every window is measured on call times, so a replay of
	// recorded calls with a fixed clock gives the same findings.
	Now func() time.Time
}

func (c *Config) setDefaults() {
	def := func(p *int, v int) {
		if *p <= 0 {
			*p = v
		}
	}
	deff := func(p *float64, v float64) {
		if *p <= 0 {
			*p = v
		}
	}
	if c.Window <= 0 {
		c.Window = time.Minute
	}
	if c.LearningCalls == 0 {
		c.LearningCalls = 200
	}
	def(&c.EnumDistinct, 100)
	deff(&c.EnumFactor, 5)
	def(&c.AuthFailures, 20)
	def(&c.AccountFailures, 20)
	def(&c.AccountClients, 2)
	deff(&c.RateFactor, 10)
	def(&c.RateMin, 300)
	deff(&c.ResponseSizeFactor, 10)
	def(&c.MaxEndpoints, 1000)
	def(&c.MaxClients, 10000)
	def(&c.MaxAccounts, 10000)
	def(&c.MaxFields, 128)
	defu := func(p *uint64, v uint64) {
		if *p == 0 {
			*p = v
		}
	}
	defu(&c.SensitiveSampleAll, 64)
	defu(&c.SensitiveSampleEvery, 16)
	defu(&c.SensitiveStableSamples, 8)
	// 256, not the inventory's 1024: a kind an endpoint starts returning
	// is a finding here, and past one call in 256 the scans left cost
	// little (1/16 to 1/256 saves 94 % of them, to 1/1024 98 %).
	defu(&c.SensitiveSampleMaxEvery, 256)
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Anomaly is one behavioural finding with who and where.
type Anomaly struct {
	detect.Finding
	Client   Identity
	Service  string
	Endpoint string // "GET /api/v1/orders/{orderId}"
	// Block: the finding names a client worth blocking in protect mode
	// (endpoint-wide anomalies do not).
	Block bool
}

// Stats counts the model's work and bounds.
type Stats struct {
	Calls            uint64
	Endpoints        uint64
	Clients          uint64
	Accounts         uint64
	EvictedEndpoints uint64
	EvictedClients   uint64
	EvictedAccounts  uint64
	Findings         map[string]uint64 // by rule id (a fixed set)
}

// Model is safe for concurrent use (one mutex: the work per call is small).
type Model struct {
	cfg Config
	key []byte
	log *slog.Logger

	mu        sync.Mutex
	endpoints *lru[string, *endpointState]
	clients   *lru[clientKey, *clientState]
	accounts  *lru[string, *accountState]
	specs     map[string]*Spec
	calls     uint64
	// hmu guards hcache, the credential hash cache (see hash).
	hmu      sync.Mutex
	hcache   map[[2]string]string
	findings map[string]uint64
	// onScan, when set (tests), is told the call count of each endpoint
	// whose response body is scanned.
	onScan func(calls uint64)
}

// clientKey is one client (address and credential hash, what
// Identity.Key spells as a string) on one endpoint; endpoint is the
// endpoint LRU's own key string, so building a clientKey allocates
// nothing.
type clientKey struct {
	addr       netip.Addr
	credential string
	endpoint   string
}

// sensitiveDue tells whether this call's response body is scanned for
// sensitive data (Config.SensitiveSampleAll and below; e.Calls counts the
// calls before this one). The scan parses the JSON body: issue #8's
// profile put it at ~5 % of the agent's cost per call, and a fixed one
// in 16 kept paying it on endpoints whose responses never change.
func (e *endpointState) sensitiveDue(cfg *Config) bool {
	if e.Calls < cfg.SensitiveSampleAll || e.Calls < e.sensFullUntil {
		return true
	}
	gap := e.sensGap
	if gap == 0 {
		gap = cfg.SensitiveSampleEvery
	}
	return e.Calls%gap == 0
}

// noteSensitiveScan adapts the scanning interval to a scan's outcome:
// newKind, it found a kind the endpoint had not returned before.
func (e *endpointState) noteSensitiveScan(newKind bool, cfg *Config) {
	if newKind {
		e.sensFullUntil = e.Calls + cfg.SensitiveSampleAll
		e.sensGap, e.sensStable = 0, 0
		return
	}
	if e.Calls < cfg.SensitiveSampleAll || e.Calls < e.sensFullUntil {
		return // every call is scanned anyway
	}
	e.sensStable++
	if e.sensStable < cfg.SensitiveStableSamples {
		return
	}
	e.sensStable = 0
	gap := e.sensGap
	if gap == 0 {
		gap = cfg.SensitiveSampleEvery
	}
	// Powers of two times SensitiveSampleEvery: the calls scanned at a
	// longer interval are a subset of those of a shorter one.
	if gap <= cfg.SensitiveSampleMaxEvery/2 {
		e.sensGap = gap * 2
	}
}

// appendEndpointKey appends the endpoint LRU's key of a call,
// "service METHOD template".
func appendEndpointKey(b []byte, service, method, template string) []byte {
	b = append(b, service...)
	b = append(b, ' ')
	b = append(b, method...)
	b = append(b, ' ')
	return append(b, template...)
}

// endpoint returns the state of the endpoint keyed key (created when
// absent) and the key as a string the LRU keeps: only a new endpoint
// allocates its key.
func (m *Model) endpoint(key []byte) (*endpointState, string) {
	l := m.endpoints
	if e, ok := l.m[string(key)]; ok {
		l.ll.MoveToFront(e)
		en := e.Value.(*lruEntry[string, *endpointState])
		return en.v, en.k
	}
	k := string(key)
	return l.get(k, newEndpointState), k
}

func newEndpointState() *endpointState {
	return &endpointState{Fields: map[string]uint8{}, Sensitive: map[string]bool{}, fired: map[string]time.Time{}}
}

func newClientState() *clientState { return &clientState{fired: map[string]bool{}} }

// New returns an empty model.
func New(cfg Config, log *slog.Logger) *Model {
	cfg.setDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	key := cfg.Key
	if len(key) == 0 {
		key = randomKey()
	}
	m := &Model{cfg: cfg, key: key, log: log.With("component", "behavior"), specs: map[string]*Spec{}}
	m.Reset()
	return m
}

// Reset forgets every baseline and client: learning starts over.
func (m *Model) Reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.endpoints = newLRU[string, *endpointState](m.cfg.MaxEndpoints)
	m.clients = newLRU[clientKey, *clientState](m.cfg.MaxClients)
	m.accounts = newLRU[string, *accountState](m.cfg.MaxAccounts)
	m.findings = map[string]uint64{}
}

// Stats returns the model's counters.
func (m *Model) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	f := make(map[string]uint64, len(m.findings))
	for k, v := range m.findings {
		f[k] = v
	}
	return Stats{Calls: m.calls, Endpoints: uint64(m.endpoints.len()), Clients: uint64(m.clients.len()),
		Accounts: uint64(m.accounts.len()), EvictedEndpoints: m.endpoints.evicted,
		EvictedClients: m.clients.evicted, EvictedAccounts: m.accounts.evicted, Findings: f}
}

// endpointState is the baseline of one service endpoint.
type endpointState struct {
	Calls      uint64
	RateEWMA   float64 // calls per window
	LatencyMS  float64 // EWMA
	ReqSize    float64 // EWMA
	RespSize   float64 // EWMA
	RespMax    int64
	Status     [6]uint64        // by class: 0 none, 1xx..5xx
	ClientRate float64          // EWMA of calls per client per window
	ClientIDs  float64          // EWMA of distinct ids per client per window
	Fields     map[string]uint8 // "query:x", "json:a.b" -> type bit set
	Sensitive  map[string]bool  // kinds seen in responses

	winStart time.Time
	winCount int
	fired    map[string]time.Time // endpoint-wide rule -> window it fired in

	// Sensitive-data scan sampling (sensitiveDue): every call is scanned
	// while Calls < sensFullUntil; past that one in sensGap (0:
	// SensitiveSampleEvery); sensStable counts the scans in a row that
	// found nothing new. Not persisted: a restored endpoint starts at
	// SensitiveSampleEvery.
	sensFullUntil uint64
	sensGap       uint64
	sensStable    uint64
}

func (e *endpointState) learned(cfg *Config) bool { return e.Calls >= cfg.LearningCalls }

// clientState is one client on one endpoint, for the current window.
type clientState struct {
	winStart time.Time
	count    int
	ids      hll
	idsAdded int // ids added in this window: an upper bound of ids.count()
	authFail int
	fired    map[string]bool // rules fired in this window
}

// distinct estimates the distinct ids of the window, or returns 0 while
// fewer ids than limit were added (the count cannot have reached it).
func (cl *clientState) distinct(limit int) uint64 {
	if cl.idsAdded < limit {
		return 0
	}
	return cl.ids.count()
}

// accountState counts failed logins for one account across clients.
type accountState struct {
	winStart time.Time
	fails    int
	clients  map[string]bool // bounded to 64
	tripped  bool
}

const ewmaAlpha = 0.2

func ewma(old, v float64, first bool) float64 {
	if first {
		return v
	}
	return old + ewmaAlpha*(v-old)
}

// Observe folds one call into the model and returns its anomalies.
// template is the inventory's path template of the call ("" if unknown).
func (m *Model) Observe(c *call.Call, service, template string) []Anomaly {
	if c == nil || c.Request == nil {
		return nil
	}
	if template == "" {
		template = c.Request.Path
	}
	id := m.identify(c)
	// The endpoint key is built in a stack buffer: looking an endpoint
	// up allocates nothing (the "METHOD template" string of a finding is
	// built only when one is raised).
	var keyBuf [160]byte
	epKey := appendEndpointKey(keyBuf[:0], service, c.Request.Method, template)
	now := c.Request.Start
	if now.IsZero() {
		now = m.cfg.Now()
	}
	var idBuf [8]uint32
	ids := appendObjectIDs(idBuf[:0], c.Request.Path, template)
	var fieldBuf [16]field
	fields, acct := appendRequestFields(fieldBuf[:0], c.Request)
	account := ""
	if isAuthEndpoint(c.Request.Path, fields) {
		if acct == "" {
			acct = formAccount(c.Request)
		}
		if u := acct; u != "" {
			account = m.hash("acct", strings.ToLower(u))
		}
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	ep, epKeyStr := m.endpoint(epKey)
	// The scan runs outside the lock; one lookup decides it, and only a
	// scanned call looks its endpoint up again (it may have been evicted
	// and made anew meanwhile).
	var sens []string
	scanned := false
	if c.Response != nil && len(c.Response.Body) > 0 && !c.Response.BodyTruncated && ep.sensitiveDue(&m.cfg) {
		m.mu.Unlock()
		sens = responseSensitive(c.Response)
		m.mu.Lock()
		ep, epKeyStr = m.endpoint(epKey)
		scanned = true
		if m.onScan != nil {
			m.onScan(ep.Calls)
		}
	}
	m.calls++
	r := run{m: m, id: id, service: service, method: c.Request.Method, template: template}
	cl := m.clients.get(clientKey{id.Addr, id.Credential, epKeyStr}, newClientState)
	learned := ep.learned(&m.cfg)

	// Windows roll lazily, at the first call past their end; a closed
	// window that raised nothing feeds the baseline.
	if now.Sub(ep.winStart) >= m.cfg.Window {
		if !ep.winStart.IsZero() {
			ep.RateEWMA = ewma(ep.RateEWMA, float64(ep.winCount), ep.RateEWMA == 0)
		}
		ep.winStart, ep.winCount = now, 0
	}
	if now.Sub(cl.winStart) >= m.cfg.Window {
		if !cl.winStart.IsZero() && len(cl.fired) == 0 {
			ep.ClientRate = ewma(ep.ClientRate, float64(cl.count), ep.ClientRate == 0)
			ep.ClientIDs = ewma(ep.ClientIDs, float64(cl.ids.count()), ep.ClientIDs == 0)
		}
		cl.winStart, cl.count, cl.authFail, cl.idsAdded = now, 0, 0, 0
		cl.ids.reset()
		clear(cl.fired)
	}
	ep.winCount++
	cl.count++
	for _, h := range ids {
		cl.ids.add(h)
	}
	cl.idsAdded += len(ids)

	// Enumeration: many distinct object ids from one client.
	// A rule already fired in this window is not evaluated again (its
	// evidence string and the HyperLogLog estimate cost more than the rest
	// of the call), and the estimate is not taken while fewer ids than
	// the limit were added.
	if len(ids) > 0 && !cl.fired[RuleEnumeration] {
		limit := m.cfg.EnumDistinct
		if n := int(m.cfg.EnumFactor * ep.ClientIDs); learned && n > limit {
			limit = n
		}
		if n := cl.distinct(limit); n >= uint64(limit) {
			r.client(cl, RuleEnumeration, detect.SeverityHigh, 90, "path",
				fmt.Sprintf("%d distinct object ids on %s within %s (limit %d)", n, template, m.cfg.Window, limit))
		}
	}

	// Rates.
	if m.cfg.ClientRateLimit > 0 && cl.count > m.cfg.ClientRateLimit && !cl.fired[RuleClientRate] {
		r.client(cl, RuleClientRate, detect.SeverityHigh, 90, "rate",
			fmt.Sprintf("%d calls within %s (configured limit %d)", cl.count, m.cfg.Window, m.cfg.ClientRateLimit))
	}
	if learned && ep.ClientRate > 0 && !cl.fired[RuleClientRate] {
		if lim := max(m.cfg.RateFactor*ep.ClientRate, float64(m.cfg.RateMin)); float64(cl.count) > lim {
			r.client(cl, RuleClientRate, detect.SeverityHigh, 85, "rate",
				fmt.Sprintf("%d calls within %s, learned norm %.1f per client", cl.count, m.cfg.Window, ep.ClientRate))
		}
	}
	if learned && ep.RateEWMA > 0 {
		if lim := max(m.cfg.RateFactor*ep.RateEWMA, float64(m.cfg.RateMin)); float64(ep.winCount) > lim {
			r.endpointWide(ep, now, RuleEndpointRate, detect.SeverityMedium, 70, "rate",
				fmt.Sprintf("%d calls within %s, learned norm %.1f", ep.winCount, m.cfg.Window, ep.RateEWMA))
		}
	}

	// Authentication failures.
	status := 0
	if c.Response != nil {
		status = c.Response.StatusCode
	}
	if (status == 401 || status == 403) && isAuthEndpoint(c.Request.Path, fields) {
		cl.authFail++
		if cl.authFail >= m.cfg.AuthFailures && !cl.fired[RuleBruteForce] {
			r.client(cl, RuleBruteForce, detect.SeverityHigh, 90, "status",
				fmt.Sprintf("%d failed authentications (%d) within %s", cl.authFail, status, m.cfg.Window))
		}
		if account != "" {
			ac := m.accounts.get(account, func() *accountState { return &accountState{clients: map[string]bool{}} })
			if now.Sub(ac.winStart) >= m.cfg.Window {
				ac.winStart, ac.fails, ac.tripped = now, 0, false
				clear(ac.clients)
			}
			ac.fails++
			if len(ac.clients) < 64 {
				ac.clients[id.Key()] = true
			}
			if ac.fails >= m.cfg.AccountFailures && len(ac.clients) >= m.cfg.AccountClients {
				ac.tripped = true
			}
			if ac.tripped {
				r.client(cl, RuleCredentialStuffing, detect.SeverityHigh, 90, "json:account",
					fmt.Sprintf("%d failed logins for account %s from %d clients within %s", ac.fails, account, len(ac.clients), m.cfg.Window))
			}
		}
	}

	// Schema drift, after learning; during learning the fields are learned.
	var nameBuf [96]byte
	for _, f := range fields {
		// The field's name is assembled in a stack buffer: a field the
		// endpoint already knows costs a lookup, no string.
		nb := f.appendName(nameBuf[:0])
		old, seen := ep.Fields[string(nb)]
		if seen && !learned {
			ep.Fields[string(nb)] = old | f.typ
			continue
		}
		if seen && old&f.typ != 0 {
			continue
		}
		if !seen && len(ep.Fields) >= m.cfg.MaxFields {
			continue
		}
		f.name = string(nb)
		switch {
		case !seen && len(ep.Fields) >= m.cfg.MaxFields:
			continue
		case !seen && learned:
			if isPrivilegedField(f.name) {
				r.client(cl, RuleMassAssignment, detect.SeverityHigh, 90, f.name,
					fmt.Sprintf("privileged field %s never sent to this endpoint while learning", f.name))
			} else {
				r.client(cl, RuleUnknownField, detect.SeverityMedium, 60, f.name,
					fmt.Sprintf("field %s never sent to this endpoint while learning", f.name))
			}
		case seen && learned && old&f.typ == 0:
			r.client(cl, RuleTypeDrift, detect.SeverityMedium, 70, f.name,
				fmt.Sprintf("%s is %s, learned %s", f.name, typeNames(f.typ), typeNames(old)))
		}
		if !learned || seen {
			ep.Fields[f.name] = old | f.typ
		}
	}

	// Responses: size jumps and sensitive data newly returned.
	if c.Response != nil {
		size := c.Response.BodySize
		if learned && ep.RespSize > 0 && size > 4096 && float64(size) > m.cfg.ResponseSizeFactor*ep.RespSize &&
			size > 2*ep.RespMax {
			r.client(cl, RuleResponseSize, detect.SeverityMedium, 70, "response",
				fmt.Sprintf("response of %d bytes, learned mean %.0f, max %d", size, ep.RespSize, ep.RespMax))
		}
		newKind := false
		for _, k := range sens {
			if ep.Sensitive[k] {
				continue
			}
			newKind = true
			if learned {
				r.endpointWide(ep, now, RuleSensitiveExposure+":"+k, detect.SeverityHigh, 80, "response",
					fmt.Sprintf("endpoint now returns %s, never returned while learning", k))
			}
			if len(ep.Sensitive) < 16 {
				ep.Sensitive[k] = true
			}
		}
		if scanned {
			ep.noteSensitiveScan(newKind, &m.cfg)
		}
		ep.RespSize = ewma(ep.RespSize, float64(size), ep.Calls == 0)
		if !learned || size <= 2*ep.RespMax {
			ep.RespMax = max(ep.RespMax, size)
		}
		ep.LatencyMS = ewma(ep.LatencyMS, float64(c.Latency.Microseconds())/1000, ep.Calls == 0)
		if status >= 100 && status < 600 {
			ep.Status[status/100]++
		}
	} else {
		ep.Status[0]++
	}
	ep.ReqSize = ewma(ep.ReqSize, float64(c.Request.BodySize), ep.Calls == 0)
	ep.Calls++

	// Shadow and zombie endpoints against an imported spec (positive mode).
	if sp := m.specs[service]; sp != nil && m.cfg.Positive {
		switch found, deprecated := sp.Lookup(c.Request.Method, template); {
		case !found:
			r.client(cl, RuleShadowEndpoint, detect.SeverityMedium, 80, "path",
				fmt.Sprintf("%s %s is not in the imported spec of %s", c.Request.Method, template, service))
		case deprecated:
			r.endpointWide(ep, now, RuleZombieEndpoint, detect.SeverityMedium, 80, "path",
				fmt.Sprintf("%s %s is deprecated in the imported spec of %s and still called", c.Request.Method, template, service))
		}
	}
	return r.out
}

// run collects one call's anomalies.
type run struct {
	m        *Model
	id       Identity
	service  string
	method   string
	template string
	out      []Anomaly
}

// client raises a per-client finding once per rule, client and window:
// the first one is what protect mode blocks the source on, and a flood of
// repeats would only flood the event log.
func (r *run) client(cl *clientState, rule string, sev detect.Severity, conf int, part, ev string) {
	first := !cl.fired[rule]
	cl.fired[rule] = true
	if !first {
		return
	}
	r.emit(rule, sev, conf, part, ev, true)
}

// endpointWide raises an endpoint finding at most once per window.
func (r *run) endpointWide(ep *endpointState, now time.Time, rule string, sev detect.Severity, conf int, part, ev string) {
	if t, ok := ep.fired[rule]; ok && now.Sub(t) < r.m.cfg.Window {
		return
	}
	ep.fired[rule] = now
	r.emit(rule, sev, conf, part, ev, false)
}

func (r *run) emit(rule string, sev detect.Severity, conf int, part, ev string, block bool) {
	base, _, _ := strings.Cut(rule, ":")
	r.m.findings[base]++
	r.out = append(r.out, Anomaly{
		Finding: detect.Finding{RuleID: base, Class: Class, Severity: sev, Confidence: conf, Part: part,
			Excerpt: ev, Description: description[base]},
		Client: r.id, Service: r.service, Endpoint: r.method + " " + r.template, Block: block,
	})
}

// Rules lists every rule id the model raises, in a fixed order (metrics
// label their series by it, so the set is bounded).
func Rules() []string {
	return []string{RuleEnumeration, RuleBruteForce, RuleCredentialStuffing, RuleClientRate, RuleEndpointRate,
		RuleTypeDrift, RuleUnknownField, RuleMassAssignment, RuleResponseSize, RuleSensitiveExposure, RuleShadowEndpoint,
		RuleZombieEndpoint}
}

// Detector is a rule id's short name, as metrics label it
// ("abuse-brute-force" -> "brute_force"); "" for an id not in Rules.
func Detector(rule string) string {
	for _, r := range Rules() {
		if r == rule {
			return strings.ReplaceAll(strings.TrimPrefix(rule, "abuse-"), "-", "_")
		}
	}
	return ""
}

var description = map[string]string{
	RuleEnumeration:        "object enumeration (OWASP API1 BOLA)",
	RuleBruteForce:         "authentication brute force (OWASP API2)",
	RuleCredentialStuffing: "credential stuffing across clients (OWASP API2)",
	RuleClientRate:         "client rate anomaly (OWASP API4)",
	RuleEndpointRate:       "endpoint rate anomaly (OWASP API4)",
	RuleTypeDrift:          "parameter type drift",
	RuleUnknownField:       "unknown request field",
	RuleMassAssignment:     "mass assignment (OWASP API3)",
	RuleResponseSize:       "response size jump (OWASP API3 excessive data exposure)",
	RuleSensitiveExposure:  "sensitive data newly returned (OWASP API3)",
	RuleShadowEndpoint:     "endpoint not in the imported spec (OWASP API9)",
	RuleZombieEndpoint:     "deprecated endpoint still called (OWASP API9)",
}

// appendObjectIDs appends, for each path segment the template marks as a
// parameter, hashID("{param}=value") to out. It walks both strings without
// splitting them and builds each id in a stack buffer: this runs on every
// call and the model keeps only the hashes.
func appendObjectIDs(out []uint32, path, template string) []uint32 {
	if strings.IndexByte(template, '{') < 0 {
		return out
	}
	n := len(out)
	var buf [128]byte
	for {
		var ps, ts string
		ps, path = nextSeg(path)
		ts, template = nextSeg(template)
		if ps == "" || ts == "" {
			if ps != ts {
				return out[:n]
			}
			return out
		}
		if ts[0] == '{' {
			b := append(append(append(buf[:0], ts...), '='), ps...)
			out = append(out, uint32(xxhash.Sum64(b)))
		}
	}
}

// nextSeg returns the first non-empty segment of p and the rest.
func nextSeg(p string) (seg, rest string) {
	for len(p) > 0 && p[0] == '/' {
		p = p[1:]
	}
	if i := strings.IndexByte(p, '/'); i >= 0 {
		return p[:i], p[i:]
	}
	return p, ""
}

// Field type bits.
const (
	tString uint8 = 1 << iota
	tInteger
	tNumber
	tBool
	tNull
	tObject
	tArray
)

func typeNames(t uint8) string {
	var out []string
	for i, n := range [...]string{"string", "integer", "number", "boolean", "null", "object", "array"} {
		if t&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return strings.Join(out, "|")
}

// field is one request field. appendRequestFields leaves name empty and
// names it by parts (pre + key, then "." + sub for a nested JSON member),
// so listing the fields of a call builds no strings; requestFields fills
// name in.
type field struct {
	name     string
	pre      string // "query:" or "json:"
	key, sub string
	typ      uint8
}

// appendName appends the field's name ("query:q", "json:a.b") to b.
func (f *field) appendName(b []byte) []byte {
	if f.name != "" {
		return append(b, f.name...)
	}
	b = append(append(b, f.pre...), f.key...)
	if f.sub != "" {
		b = append(append(b, '.'), f.sub...)
	}
	return b
}

// requestFields lists a request's query parameters and top-level (and
// one-level nested) JSON body fields with their types, and the account a
// JSON login body names (username, email, login...).
func requestFields(r *call.Request) (out []field, account string) {
	out, account = appendRequestFields(nil, r)
	for i := range out {
		out[i].name = string(out[i].appendName(nil))
	}
	return out, account
}

// appendRequestFields is requestFields appending to out, with the names
// left in parts.
func appendRequestFields(out []field, r *call.Request) (_ []field, account string) {
	base := len(out)
	for kv := range strings.SplitSeq(r.RawQuery, "&") {
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		if len(k) > 64 || len(out)-base >= 64 {
			continue
		}
		t := tString
		if isInt(v) {
			t = tInteger
		}
		out = append(out, field{pre: "query:", key: k, typ: t})
	}
	if len(r.Body) == 0 || r.BodyTruncated || len(r.Body) > 64<<10 {
		return out, ""
	}
	b := bytes.TrimSpace(r.Body)
	if len(b) == 0 || b[0] != '{' {
		return out, ""
	}
	if !validJSON(b) { // json.Valid, faster
		return out, ""
	}
	// Members in document order (deterministic for the same calls, which
	// the replay test checks); keys longer than 64 bytes are skipped, at
	// most 128 fields are kept.
	members(b, func(k string, v []byte) bool {
		if len(k) > 64 {
			return true
		}
		if len(out)-base >= 128 {
			return false
		}
		t := jsonType(v)
		out = append(out, field{pre: "json:", key: k, typ: t})
		if t == tString && account == "" && isAccountKey(k) {
			account = jsonString(v)
		}
		if t == tObject {
			members(v, func(sk string, sv []byte) bool {
				if len(sk) > 64 {
					return true
				}
				if len(out)-base >= 128 {
					return false
				}
				out = append(out, field{pre: "json:", key: k, sub: sk, typ: jsonType(sv)})
				return true
			})
		}
		return true
	})
	return out, account
}

func jsonType(v []byte) uint8 {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return tNull
	}
	switch v[0] {
	case '"':
		return tString
	case '{':
		return tObject
	case '[':
		return tArray
	case 't', 'f':
		return tBool
	case 'n':
		return tNull
	}
	if bytes.ContainsAny(v, ".eE") {
		return tNumber
	}
	return tInteger
}

func isInt(s string) bool {
	if s == "" || len(s) > 19 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// isPrivilegedField names fields that grant rights when an API binds the
// body to its model wholesale (mass assignment).
func isPrivilegedField(name string) bool {
	_, k, _ := strings.Cut(name, ":")
	if i := strings.LastIndexByte(k, '.'); i >= 0 {
		k = k[i+1:]
	}
	k = strings.ToLower(strings.NewReplacer("_", "", "-", "").Replace(k))
	switch k {
	case "isadmin", "admin", "role", "roles", "permissions", "permission", "privileges", "issuperuser",
		"superuser", "isstaff", "group", "groups", "scope", "scopes", "verified", "isverified", "owner",
		"ownerid", "accountid", "userid", "balance", "credit", "plan", "tier", "approved", "status":
		return true
	}
	return false
}

// isAuthEndpoint: a login-like path, or a request carrying a password.
func isAuthEndpoint(path string, fields []field) bool {
	if isASCII(path) {
		// Folding ASCII case in place is strings.ToLower of an ASCII
		// path, without the lowered copy; one pass for all the words
		// (seven searches were most of this function's cost).
		if hasAuthWord(path) {
			return true
		}
	} else {
		// Beyond ASCII lowering can make letters of the words (U+212A
		// KELVIN SIGN lowers to "k"): the lowered copy decides.
		lp := strings.ToLower(path)
		for _, w := range authWords {
			if strings.Contains(lp, w) {
				return true
			}
		}
	}
	for _, f := range fields {
		// ASCII folding equals strings.ToLower here: no other rune lowers
		// to a letter of "password".
		if f.name != "" && asciifold.Contains(f.name, "password") || asciifold.Contains(f.key, "password") || asciifold.Contains(f.sub, "password") {
			return true
		}
	}
	return false
}

var authWords = [...]string{"login", "signin", "sign-in", "auth", "token", "session", "password"}

// hasAuthWord reports whether an ASCII string contains one of authWords,
// ignoring ASCII case, in one pass: only a position whose byte starts a
// word (c|0x20 is a lower-case letter only for that letter's two cases)
// is compared further.
func hasAuthWord(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] | 0x20 {
		case 'l', 's', 'a', 't', 'p':
			for _, w := range authWords {
				if s[i]|0x20 == w[0] && asciifold.HasPrefix(s[i:], w) {
					return true
				}
			}
		}
	}
	return false
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

var accountKeys = [...]string{"username", "email", "login", "user", "user_name", "account"}

func isAccountKey(k string) bool {
	for _, w := range accountKeys {
		if k == w {
			return true
		}
	}
	return false
}

// formAccount reads the account a form-encoded login names.
func formAccount(r *call.Request) string {
	if len(r.Body) == 0 || len(r.Body) > 64<<10 || r.Body[0] == '{' {
		return ""
	}
	for kv := range strings.SplitSeq(string(r.Body), "&") {
		k, v, _ := strings.Cut(kv, "=")
		if isAccountKey(k) && v != "" {
			return v
		}
	}
	return ""
}

// responseSensitive returns the sensitive kinds in a response body: the
// inventory's classification of JSON leaves and keys, plus private keys
// and cloud access keys found anywhere in the bytes.
func responseSensitive(r *call.Response) []string {
	var out []string
	b := r.Body
	if len(b) > 0 && (b[0] == '{' || b[0] == '[') {
		for _, k := range inventory.SensitiveInJSON(b, 4096) {
			if k != "private-ip" {
				out = append(out, k)
			}
		}
	}
	if bytes.Contains(b, []byte("PRIVATE KEY-----")) {
		out = append(out, "private-key")
	}
	if i := bytes.Index(b, []byte("AKIA")); i >= 0 && i+20 <= len(b) && isUpperAlnum(b[i+4:i+20]) {
		out = append(out, "cloud-key")
	}
	return out
}

func isUpperAlnum(b []byte) bool {
	for _, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

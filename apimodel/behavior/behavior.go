// Package behavior is the first slice of the behavioural model (issue #12):
// abuse that carries no attack payload and shows only across calls — one
// client walking object ids of a templated endpoint (enumeration, BOLA) and
// bursts of failed logins, per client (brute force) and per account across
// clients (credential stuffing). It keeps bounded per-window state keyed by
// client identity (source address and a keyed hash of its credential, never
// the credential itself) and returns findings once per key and window.
package behavior

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apiwarden/apiwarden/apimodel/call"
)

// Config tunes the detections; zero fields take the defaults.
type Config struct {
	// Window is the length of the counting windows.
	Window time.Duration
	// EnumThreshold: distinct ids of one templated endpoint one client may
	// touch within a window before it is reported.
	EnumThreshold int
	// AuthFailThreshold: failed logins (401/403 on an auth endpoint) of
	// one client within a window before it is reported as brute force.
	AuthFailThreshold int
	// AccountFailThreshold and AccountMinClients: failed logins of one
	// account from at least AccountMinClients clients within a window
	// before it is reported as credential stuffing.
	AccountFailThreshold int
	AccountMinClients    int
	// MaxKeys bounds each table (client x endpoint, client, account).
	MaxKeys int
	// TrustedProxies: X-Forwarded-For is believed only from these.
	TrustedProxies []netip.Prefix
}

// Defaults.
const (
	DefaultWindow               = time.Minute
	DefaultEnumThreshold        = 50
	DefaultAuthFailThreshold    = 20
	DefaultAccountFailThreshold = 10
	DefaultAccountMinClients    = 3
	DefaultMaxKeys              = 16384
)

func (c *Config) setDefaults() {
	if c.Window <= 0 {
		c.Window = DefaultWindow
	}
	if c.EnumThreshold <= 0 {
		c.EnumThreshold = DefaultEnumThreshold
	}
	if c.AuthFailThreshold <= 0 {
		c.AuthFailThreshold = DefaultAuthFailThreshold
	}
	if c.AccountFailThreshold <= 0 {
		c.AccountFailThreshold = DefaultAccountFailThreshold
	}
	if c.AccountMinClients <= 0 {
		c.AccountMinClients = DefaultAccountMinClients
	}
	if c.MaxKeys <= 0 {
		c.MaxKeys = DefaultMaxKeys
	}
}

// Finding kinds.
const (
	KindEnumeration        = "enumeration"
	KindBruteForce         = "brute-force"
	KindCredentialStuffing = "credential-stuffing"
)

// Finding is one detection.
type Finding struct {
	Kind     string
	Severity string // "high" or "medium"
	Client   netip.Addr
	Endpoint string // "METHOD /template"
	Evidence string
}

// Stats counts what the model did.
type Stats struct {
	Observed, Findings, Overflow uint64
}

// Model holds the windows. It is safe for concurrent use.
type Model struct {
	cfg Config
	key []byte // HMAC key for credentials and account names

	mu       sync.Mutex
	enum     map[enumKey]*idWindow
	clients  map[clientKey]*countWindow
	accounts map[string]*accountWindow
	// lastPrune is when room last scanned for expired windows.
	lastPrune time.Time
	// creds caches credential hashes by raw header value (cleared when
	// full): one HMAC per distinct credential, not per call.
	creds map[string]string

	observed, findings, overflow atomic.Uint64
}

// clientKey is one client: its address and its credential's hash.
type clientKey struct {
	addr netip.Addr
	cred string
}

type enumKey struct {
	client                    clientKey
	service, method, template string
}

const maxCachedCreds = 4096

type idWindow struct {
	start    time.Time
	ids      map[string]struct{} // capped at the threshold
	reported bool
}

type countWindow struct {
	start    time.Time
	n        int
	reported bool
}

type accountWindow struct {
	start    time.Time
	n        int
	clients  map[netip.Addr]struct{} // capped
	reported bool
}

// New returns an empty model with a random credential-hash key.
func New(cfg Config) *Model {
	cfg.setDefaults()
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return &Model{cfg: cfg, key: k, enum: map[enumKey]*idWindow{},
		clients: map[clientKey]*countWindow{}, accounts: map[string]*accountWindow{},
		creds: map[string]string{}}
}

// Stats returns the counters.
func (m *Model) Stats() Stats {
	return Stats{Observed: m.observed.Load(), Findings: m.findings.Load(), Overflow: m.overflow.Load()}
}

// Observe folds one call (with the inventory's path template of it) into
// the windows and returns what it completes.
func (m *Model) Observe(c *call.Call, service, template string) []Finding {
	if c == nil || c.Request == nil || template == "" {
		return nil
	}
	m.observed.Add(1)
	now := c.Request.Start
	src := m.clientAddr(c)
	var out []Finding
	m.mu.Lock()
	defer m.mu.Unlock()
	client := clientKey{addr: src, cred: m.credential(c.Request.Headers)}
	var idBuf [4]string
	if ids := objectIDs(idBuf[:0], c.Request.Path, template); len(ids) > 0 {
		k := enumKey{client: client, service: service, method: c.Request.Method, template: template}
		if f, ok := m.enumerate(now, k, ids); ok {
			f.Client, f.Endpoint = src, c.Request.Method+" "+template
			out = append(out, f)
		}
	}
	if c.Response != nil && (c.Response.StatusCode == 401 || c.Response.StatusCode == 403) && authEndpoint(c.Request, template) {
		out = append(out, m.authFailure(now, src, client, c.Request.Method+" "+template, c.Request)...)
	}
	m.findings.Add(uint64(len(out)))
	return out
}

func (m *Model) enumerate(now time.Time, key enumKey, ids []string) (Finding, bool) {
	w := m.enum[key]
	if w == nil || now.Sub(w.start) >= m.cfg.Window {
		if w == nil && !m.room(func() int { return len(m.enum) }, now, m.pruneEnum) {
			return Finding{}, false
		}
		w = &idWindow{start: now, ids: map[string]struct{}{}}
		m.enum[key] = w
	}
	for _, id := range ids {
		if len(w.ids) > m.cfg.EnumThreshold {
			break
		}
		if _, ok := w.ids[id]; !ok {
			w.ids[strings.Clone(id)] = struct{}{} // not the request's buffer
		}
	}
	if w.reported || len(w.ids) <= m.cfg.EnumThreshold {
		return Finding{}, false
	}
	w.reported = true
	return Finding{Kind: KindEnumeration, Severity: "high",
		Evidence: fmt.Sprintf("more than %d distinct object ids within %s", m.cfg.EnumThreshold, m.cfg.Window)}, true
}

func (m *Model) authFailure(now time.Time, src netip.Addr, client clientKey, endpoint string, r *call.Request) []Finding {
	var out []Finding
	w := m.clients[client]
	if w == nil || now.Sub(w.start) >= m.cfg.Window {
		if w != nil || m.room(func() int { return len(m.clients) }, now, m.pruneClients) {
			w = &countWindow{start: now}
			m.clients[client] = w
		} else {
			w = nil
		}
	}
	if w != nil {
		w.n++
		if !w.reported && w.n >= m.cfg.AuthFailThreshold {
			w.reported = true
			out = append(out, Finding{Kind: KindBruteForce, Severity: "high", Client: src, Endpoint: endpoint,
				Evidence: fmt.Sprintf("%d failed logins from one client within %s", w.n, m.cfg.Window)})
		}
	}
	acct := accountName(r)
	if acct == "" {
		return out
	}
	ak := m.hash(acct)
	aw := m.accounts[ak]
	if aw == nil || now.Sub(aw.start) >= m.cfg.Window {
		if aw == nil && !m.room(func() int { return len(m.accounts) }, now, m.pruneAccounts) {
			return out
		}
		aw = &accountWindow{start: now, clients: map[netip.Addr]struct{}{}}
		m.accounts[ak] = aw
	}
	aw.n++
	if len(aw.clients) < 64 {
		aw.clients[src] = struct{}{}
	}
	if !aw.reported && aw.n >= m.cfg.AccountFailThreshold && len(aw.clients) >= m.cfg.AccountMinClients {
		aw.reported = true
		out = append(out, Finding{Kind: KindCredentialStuffing, Severity: "high", Client: src, Endpoint: endpoint,
			Evidence: fmt.Sprintf("%d failed logins for one account (%s) from %d clients within %s",
				aw.n, ak[:12], len(aw.clients), m.cfg.Window)})
	}
	return out
}

// room makes space in a table at its bound: expired windows go first (a
// scan at most once per tenth of a window, so a flood of new keys does not
// scan the table per call); when none has expired the new key is not
// tracked, and counted.
func (m *Model) room(length func() int, now time.Time, prune func(time.Time)) bool {
	if length() < m.cfg.MaxKeys {
		return true
	}
	if now.Sub(m.lastPrune) >= m.cfg.Window/10 {
		m.lastPrune = now
		prune(now)
	}
	if length() < m.cfg.MaxKeys {
		return true
	}
	m.overflow.Add(1)
	return false
}

func (m *Model) pruneEnum(now time.Time) {
	for k, w := range m.enum {
		if now.Sub(w.start) >= m.cfg.Window {
			delete(m.enum, k)
		}
	}
}

func (m *Model) pruneClients(now time.Time) {
	for k, w := range m.clients {
		if now.Sub(w.start) >= m.cfg.Window {
			delete(m.clients, k)
		}
	}
}

func (m *Model) pruneAccounts(now time.Time) {
	for k, w := range m.accounts {
		if now.Sub(w.start) >= m.cfg.Window {
			delete(m.accounts, k)
		}
	}
}

// clientAddr is the call's source, or the last X-Forwarded-For hop when
// the source is a trusted proxy.
func (m *Model) clientAddr(c *call.Call) netip.Addr {
	src := c.Client.Addr().Unmap()
	for _, p := range m.cfg.TrustedProxies {
		if !p.Contains(src) {
			continue
		}
		xff := c.Request.Headers.Get("X-Forwarded-For")
		if i := strings.LastIndexByte(xff, ','); i >= 0 {
			xff = xff[i+1:]
		}
		if a, err := netip.ParseAddr(strings.TrimSpace(xff)); err == nil {
			return a.Unmap()
		}
		break
	}
	return src
}

// credential is a keyed hash of what authenticates the client (bearer
// token or JWT subject, API key, session cookie), "" without one.
func (m *Model) credential(h call.Headers) string {
	for _, f := range h {
		switch {
		case strings.EqualFold(f.Name, "Authorization"):
			return m.credHash(f.Value, true)
		case strings.EqualFold(f.Name, "X-Api-Key"), strings.EqualFold(f.Name, "Api-Key"),
			strings.EqualFold(f.Name, "X-Auth-Token"):
			return m.credHash(f.Value, false)
		}
	}
	return ""
}

func (m *Model) credHash(v string, auth bool) string {
	if h, ok := m.creds[v]; ok {
		return h
	}
	h := ""
	if sub := jwtSubject(v); auth && sub != "" {
		h = m.hash("sub:" + sub)
	} else {
		h = m.hash(v)
	}
	if len(m.creds) >= maxCachedCreds {
		clear(m.creds)
	}
	m.creds[strings.Clone(v)] = h
	return h
}

func (m *Model) hash(v string) string {
	mac := hmac.New(sha256.New, m.key)
	mac.Write([]byte(v))
	return hex.EncodeToString(mac.Sum(nil)[:12])
}

// jwtSubject reads the sub claim of a bearer JWT without verifying it: it
// only names the client, it authorises nothing.
func jwtSubject(auth string) string {
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok {
		return ""
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return ""
	}
	b, err := decodeSegment(parts[1])
	if err != nil {
		return ""
	}
	var claims struct {
		Sub string `json:"sub"`
	}
	if json.Unmarshal(b, &claims) != nil {
		return ""
	}
	return claims.Sub
}

// objectIDs returns the request path's values at the template's parameter
// positions ("/orders/{id}" and "/orders/17" give ["17"]).
func objectIDs(ids []string, path, template string) []string {
	if strings.IndexByte(template, '{') < 0 {
		return nil
	}
	path, template = strings.Trim(path, "/"), strings.Trim(template, "/")
	for path != "" || template != "" {
		var p, t string
		p, path, _ = strings.Cut(path, "/")
		t, template, _ = strings.Cut(template, "/")
		if p == "" || t == "" {
			return nil // segment counts differ: not this template
		}
		if t[0] == '{' {
			ids = append(ids, p)
		}
	}
	return ids
}

// authEndpoint: a login-like path, or a POST whose body carries a password.
func authEndpoint(r *call.Request, template string) bool {
	p := strings.ToLower(template)
	for _, w := range []string{"login", "signin", "sign-in", "sign_in", "token", "auth", "session"} {
		if strings.Contains(p, w) {
			return true
		}
	}
	return r.Method == "POST" && strings.Contains(strings.ToLower(string(r.Body)), "password")
}

// accountName is the account a login attempt names (JSON or form body).
func accountName(r *call.Request) string {
	if len(r.Body) == 0 {
		return ""
	}
	var m map[string]any
	if json.Unmarshal(r.Body, &m) == nil {
		for _, k := range []string{"username", "email", "login", "user", "account"} {
			if v, ok := m[k].(string); ok && v != "" {
				return strings.ToLower(v)
			}
		}
		return ""
	}
	for _, kv := range strings.Split(string(r.Body), "&") {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "username", "email", "login", "user":
			return strings.ToLower(v)
		}
	}
	return ""
}

func decodeSegment(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

package behavior

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/netip"
	"strings"
	"unsafe"

	"github.com/apiwarden/apiwarden/apimodel/asciifold"
	"github.com/apiwarden/apiwarden/apimodel/call"
)

// Identity is who made a call: the address the traffic came from (what
// the guard can block), the client address (X-Forwarded-For through a
// trusted proxy, else Source) and a keyed hash of its credential. Raw
// credentials are never kept: only HMAC-SHA256 under the model's key.
type Identity struct {
	Source     netip.Addr
	Addr       netip.Addr
	Credential string // "" when anonymous; else kind + ":" + hash prefix
}

// Key is the identity's bounded map key.
func (id Identity) Key() string {
	if id.Credential != "" {
		return id.Addr.String() + "|" + id.Credential
	}
	return id.Addr.String()
}

// hash is the keyed hash of a credential or account name, cached by its
// input (one HMAC per distinct credential, not per call; the cache is
// cleared when it reaches maxHashCache entries).
func (m *Model) hash(kind, v string) string {
	k := [2]string{kind, v}
	m.hmu.Lock()
	if h, ok := m.hcache[k]; ok {
		m.hmu.Unlock()
		return h
	}
	m.hmu.Unlock()
	h := m.hashUncached(kind, v)
	m.hmu.Lock()
	if m.hcache == nil || len(m.hcache) >= maxHashCache {
		m.hcache = map[[2]string]string{}
	}
	m.hcache[[2]string{kind, strings.Clone(v)}] = h
	m.hmu.Unlock()
	return h
}

const maxHashCache = 4096

func (m *Model) hashUncached(kind, v string) string {
	h := hmac.New(sha256.New, m.key)
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write([]byte(v))
	return kind + ":" + hex.EncodeToString(h.Sum(nil)[:8])
}

// identify derives the identity of a call.
func (m *Model) identify(c *call.Call) Identity {
	src := c.Client.Addr().Unmap()
	id := Identity{Source: src, Addr: src}
	if m.trusted(src) {
		if xff := c.Request.Headers.Get("X-Forwarded-For"); xff != "" {
			// The right-most address not itself a trusted proxy is the
			// client: everything left of it the client could have forged.
			parts := strings.Split(xff, ",")
			for i := len(parts) - 1; i >= 0; i-- {
				a, err := netip.ParseAddr(strings.TrimSpace(parts[i]))
				if err != nil {
					break
				}
				a = a.Unmap()
				id.Addr = a
				if !m.trusted(a) {
					break
				}
			}
		}
	}
	id.Credential = m.credential(c.Request.Headers)
	return id
}

func (m *Model) trusted(a netip.Addr) bool {
	for _, p := range m.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// credential returns the hashed credential of a request: a JWT's subject
// (read, not verified: the identity only groups calls), another bearer or
// basic credential, an API key header, or a session cookie.
func (m *Model) credential(h call.Headers) string {
	for _, f := range h {
		switch {
		case strings.EqualFold(f.Name, "Authorization"):
			// The whole header value keys the cache: a JWT is decoded
			// once per token, not per call.
			k := [2]string{"authz", f.Value}
			m.hmu.Lock()
			h, ok := m.hcache[k]
			m.hmu.Unlock()
			if ok {
				return h
			}
			h = m.authorization(f.Value)
			m.hmu.Lock()
			if m.hcache == nil || len(m.hcache) >= maxHashCache {
				m.hcache = map[[2]string]string{}
			}
			m.hcache[[2]string{"authz", strings.Clone(f.Value)}] = h
			m.hmu.Unlock()
			return h
		case isAPIKeyHeader(f.Name):
			return m.hash("key", f.Value)
		}
	}
	for _, v := range h.Values("Cookie") {
		for part := range strings.SplitSeq(v, ";") {
			name, val, _ := strings.Cut(strings.TrimSpace(part), "=")
			if isSessionCookie(name) && val != "" {
				return m.hash("cookie", val)
			}
		}
	}
	return ""
}

// authorization is the identity hash of an Authorization header value.
func (m *Model) authorization(v string) string {
	{
		{
			scheme, cred, _ := strings.Cut(strings.TrimSpace(v), " ")
			cred = strings.TrimSpace(cred)
			if strings.EqualFold(scheme, "Bearer") {
				if sub := jwtSubject(cred); sub != "" {
					return m.hash("sub", sub)
				}
			}
			return m.hash(strings.ToLower(scheme), cred)
		}
	}
}

func jwtSubject(tok string) string {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || len(parts[1]) > 4096 {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
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

func isAPIKeyHeader(name string) bool {
	// Every request runs this for each of its headers. Every name it
	// accepts contains "key" or "token" (ASCII case folded: lowerInto
	// folds only ASCII), which most do not: they are rejected without
	// the lowered copy and the five searches below.
	if !asciifold.Contains(name, "key") && !asciifold.Contains(name, "token") {
		return false
	}
	// Lower-case on the stack instead of strings.ToLower's allocation.
	var buf [64]byte
	ln := lowerInto(buf[:0], name) // a longer name grows into the heap
	if strings.HasPrefix(ln, "sec-") || strings.Contains(ln, "idempotency") || strings.Contains(ln, "cache") {
		return false
	}
	return strings.Contains(ln, "api-key") || strings.Contains(ln, "apikey") || ln == "x-auth-token" ||
		ln == "x-access-token" || ln == "x-api-token"
}

// lowerInto appends the ASCII lower case of s to b and returns it as a
// string that aliases b (valid while b is).
func lowerInto(b []byte, s string) string {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}

func isSessionCookie(name string) bool {
	var buf [64]byte
	ln := lowerInto(buf[:0], name) // a longer name grows into the heap
	for _, w := range [...]string{"sess", "sid", "auth", "token", "jwt"} {
		if strings.Contains(ln, w) {
			return true
		}
	}
	return false
}

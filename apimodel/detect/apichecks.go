package detect

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math"
	"net/url"
	"strconv"
	"strings"

	"github.com/apiwarden/apiwarden/apimodel/call"
)

// API-specific request checks: what CRS has no rules for because they live
// in the semantics of an API's credentials and query language, not in
// payload characters (issue #9 item 1).

// jwtCandidates yields the JWTs a request carries: a bearer token, and
// cookies or other headers whose value is a compact JWS.
func jwtCandidates(req *call.Request, hx *headerIndex, fn func(where, tok string) bool) bool {
	if hx != nil {
		// Only these headers can yield a token: most requests have none
		// and walk nothing.
		auth, cookie := hx.pos[hkAuthorization], hx.pos[hkCookie]
		for m := auth | cookie | hx.jwtValue; m != 0; m &= m - 1 {
			i := first(m)
			bit := uint64(1) << i
			if jwtCandidate(req.Headers[i], auth&bit != 0, cookie&bit != 0, fn) {
				return true
			}
		}
		return false
	}
	for _, h := range req.Headers {
		if jwtCandidate(h, strings.EqualFold(h.Name, "Authorization"), strings.EqualFold(h.Name, "Cookie"), fn) {
			return true
		}
	}
	return false
}

// jwtCandidate yields the JWTs of one header, an Authorization or a
// Cookie header as auth and cookie say.
func jwtCandidate(h call.Header, auth, cookie bool, fn func(where, tok string) bool) bool {
	v := h.Value
	switch {
	case auth:
		if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
			if fn("header:Authorization", strings.TrimSpace(v[7:])) {
				return true
			}
		}
	case cookie:
		for c := range strings.SplitSeq(v, ";") {
			_, val, _ := strings.Cut(c, "=")
			if val = strings.TrimSpace(val); strings.HasPrefix(val, "eyJ") && fn("cookie", val) {
				return true
			}
		}
	default:
		if strings.HasPrefix(v, "eyJ") && fn("header:"+h.Name, v) {
			return true
		}
	}
	return false
}

// jwtHeader decodes a compact JWS's protected header; ok is false for
// anything that is not one, or when worth says its raw JSON cannot hold
// what the caller looks for. Every authenticated API call carries a JWT,
// and decoding its JSON costs ~2 us and 20 allocations: worth keeps that
// for the few headers that could match.
func jwtHeader(tok string, worth func(raw []byte) bool) (map[string]any, bool) {
	head, rest, ok := strings.Cut(tok, ".")
	if !ok || !strings.HasPrefix(head, "eyJ") || !strings.Contains(rest, ".") || len(head) > 4096 {
		return nil, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(head, "="))
	if err != nil || !worth(raw) {
		return nil, false
	}
	var h map[string]any
	if json.Unmarshal(raw, &h) != nil {
		return nil, false
	}
	return h, true
}

// checkJWTAlgNone flags a JWT whose header asks for no signature: a server
// library that honours "alg":"none" accepts a token anyone can forge.
func checkJWTAlgNone(req *call.Request, hx *headerIndex, _ *Config) (string, string, bool) {
	var where, got string
	hit := jwtCandidates(req, hx, func(w, tok string) bool {
		h, ok := jwtHeader(tok, mayHoldAlgNone)
		if !ok {
			return false
		}
		alg, _ := h["alg"].(string)
		if strings.EqualFold(strings.TrimSpace(alg), "none") {
			where, got = w, `"alg":"`+alg+`"`
			return true
		}
		return false
	})
	return where, got, hit
}

// checkJWTKidInjection flags a JWT whose "kid" (key id) is not an
// identifier but a path, a query or a command: servers look keys up by kid
// in files and databases.
func checkJWTKidInjection(req *call.Request, hx *headerIndex, _ *Config) (string, string, bool) {
	var where, got string
	hit := jwtCandidates(req, hx, func(w, tok string) bool {
		h, ok := jwtHeader(tok, mayHoldOddKid)
		if !ok {
			return false
		}
		kid, ok := h["kid"].(string)
		if !ok {
			return false
		}
		if strings.Contains(kid, "../") || strings.Contains(kid, "..\\") || strings.HasPrefix(kid, "/") ||
			strings.ContainsAny(kid, "'\"|;`$\x00") || strings.Contains(kid, "--") {
			where, got = w, "kid="+kid
			return true
		}
		return false
	})
	return where, got, hit
}

// mayHoldAlgNone: "none" in any case, or a JSON escape that could spell it.
func mayHoldAlgNone(raw []byte) bool {
	return bytes.IndexByte(raw, '\\') >= 0 || containsFoldASCII(raw, "none")
}

// mayHoldOddKid: a "kid" member and a byte or pair checkJWTKidInjection
// looks for (a backslash covers escaped quotes, NULs and key names).
func mayHoldOddKid(raw []byte) bool {
	if bytes.IndexByte(raw, '\\') >= 0 {
		return true
	}
	return bytes.Contains(raw, []byte(`"kid"`)) &&
		(bytes.ContainsAny(raw, "'|;`$/") || bytes.Contains(raw, []byte("..")) || bytes.Contains(raw, []byte("--")))
}

// containsFoldASCII reports whether b contains the lower-case ASCII word w
// in any case.
func containsFoldASCII(b []byte, w string) bool {
	for i := 0; i+len(w) <= len(b); i++ {
		j := 0
		for j < len(w) && b[i+j]|0x20 == w[j] {
			j++
		}
		if j == len(w) {
			return true
		}
	}
	return false
}

// graphQLOps returns the GraphQL documents of a request: the "query" of a
// JSON body (or of each element of a batch), the body of an
// application/graphql request, or the query parameter of a GET. batch is
// the number of operations of a JSON array body.
func graphQLOps(req *call.Request, hx *headerIndex) (docs []string, batch int) {
	ct := strings.ToLower(hdrGet(req, hx, hkContentType, "Content-Type"))
	body := strings.TrimSpace(string(req.Body))
	switch {
	case strings.HasPrefix(ct, "application/graphql"):
		return []string{body}, 0
	case strings.HasPrefix(ct, "application/json") && len(body) > 0:
		type op struct {
			Query string `json:"query"`
		}
		if body[0] == '[' {
			var ops []op
			if json.Unmarshal(req.Body, &ops) != nil {
				return nil, 0
			}
			for _, o := range ops {
				if o.Query != "" {
					docs = append(docs, o.Query)
				}
			}
			return docs, len(ops)
		}
		if body[0] == '{' && strings.Contains(body, `"query"`) {
			var o op
			if json.Unmarshal(req.Body, &o) == nil && o.Query != "" && looksGraphQL(o.Query) {
				return []string{o.Query}, 0
			}
		}
	case req.Method == "GET" && strings.Contains(strings.ToLower(req.Path), "graphql"):
		for kv := range strings.SplitSeq(req.RawQuery, "&") {
			k, v, _ := strings.Cut(kv, "=")
			if k == "query" {
				if d, err := url.QueryUnescape(v); err == nil {
					return []string{d}, 0
				}
			}
		}
	}
	return nil, 0
}

// looksGraphQL tells a GraphQL document from another API's "query" field
// (search strings, SQL consoles): an operation keyword or a selection set.
func looksGraphQL(q string) bool {
	q = strings.TrimSpace(q)
	return strings.HasPrefix(q, "{") || strings.HasPrefix(q, "query") || strings.HasPrefix(q, "mutation") ||
		strings.HasPrefix(q, "subscription") || strings.HasPrefix(q, "fragment")
}

// GraphQL abuse limits. A real client's operation is a few levels deep and
// names each field once; deeper nesting and hundreds of aliases are how
// one request asks for the work of thousands (denial of service, or
// brute force through aliases under one rate-limit count).
const (
	graphQLMaxDepth   = 12
	graphQLMaxAliases = 50
	graphQLMaxBatch   = 10
)

// checkGraphQLIntrospection flags schema introspection (__schema,
// __type): production APIs usually turn it off, and an attacker's first
// step is to map the schema with it.
func checkGraphQLIntrospection(req *call.Request, hx *headerIndex, _ *Config) (string, string, bool) {
	docs, batch := graphQLOps(req, hx)
	return graphQLIntrospection(docs, batch)
}

// graphQLDocCheck is a GraphQL check on graphQLOps' result: the scan
// parses a request's GraphQL documents once for every such rule.
type graphQLDocCheck func(docs []string, batch int) (string, string, bool)

// graphQLCheck returns the document form of a GraphQL request check.
func graphQLCheck(name string) graphQLDocCheck {
	switch name {
	case "graphql-introspection":
		return graphQLIntrospection
	case "graphql-abuse":
		return graphQLAbuse
	}
	return nil
}

func graphQLIntrospection(docs []string, _ int) (string, string, bool) {
	for _, d := range docs {
		if i := strings.Index(d, "__schema"); i >= 0 {
			return "body", excerptAround(d, i), true
		}
		if i := strings.Index(d, "__type("); i >= 0 {
			return "body", excerptAround(d, i), true
		}
	}
	return "", "", false
}

// checkGraphQLAbuse flags batches of many operations, deep nesting and
// alias floods.
func checkGraphQLAbuse(req *call.Request, hx *headerIndex, _ *Config) (string, string, bool) {
	docs, batch := graphQLOps(req, hx)
	return graphQLAbuse(docs, batch)
}

func graphQLAbuse(docs []string, batch int) (string, string, bool) {
	if batch > graphQLMaxBatch {
		return "body", "batch of " + strconv.Itoa(batch) + " operations", true
	}
	for _, d := range docs {
		depth, maxDepth, aliases := 0, 0, 0
		inString := false
		var pt parenTracker
		pt.reset()
		for i := 0; i < len(d); i++ {
			c := d[i]
			if inString {
				pt.add(c)
				if c == '\\' {
					if i+1 < len(d) {
						pt.add(d[i+1])
					}
					i++
				} else if c == '"' {
					inString = false
				}
				continue
			}
			switch c {
			case '"':
				inString = true
			case '{':
				depth++
				maxDepth = max(maxDepth, depth)
			case '}':
				depth--
			case ':':
				// an alias is "name: field" inside a selection set (an
				// argument "name: value" sits inside parentheses).
				if depth > 0 && !pt.inside() {
					aliases++
				}
			}
			pt.add(c)
		}
		if maxDepth > graphQLMaxDepth {
			return "body", "selection depth " + strconv.Itoa(maxDepth), true
		}
		if aliases > graphQLMaxAliases {
			return "body", strconv.Itoa(aliases) + " aliases", true
		}
	}
	return "", "", false
}

// parenTracker answers, for the bytes added so far, whether their end is
// inside an open "(" of the current selection set: scanning back from the
// end to the last brace, some "(" has more "(" than ")" after it (string
// contents included, as such a backward scan sees them). It keeps the
// balance since the last brace and its lowest value before a "(", so the
// alias count is linear in the document (the backward scan it replaces ran
// once per ':' and made alias floods quadratic).
type parenTracker struct {
	bal, minOpen int // minOpen: lowest balance before a "(" since the last brace
}

func (p *parenTracker) reset() { p.bal, p.minOpen = 0, math.MaxInt }

func (p *parenTracker) add(c byte) {
	switch c {
	case '{', '}':
		p.reset()
	case '(':
		p.minOpen = min(p.minOpen, p.bal)
		p.bal++
	case ')':
		p.bal--
	}
}

func (p *parenTracker) inside() bool { return p.minOpen != math.MaxInt && p.bal > p.minOpen }

func excerptAround(s string, i int) string {
	lo, hi := max(0, i-20), min(len(s), i+40)
	return s[lo:hi]
}

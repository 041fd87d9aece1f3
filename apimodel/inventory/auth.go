package inventory

import (
	"github.com/apiwarden/apiwarden/apimodel/asciifold"
	"strings"

	"github.com/apiwarden/apiwarden/apimodel/call"
)

// maxAuthNameLen bounds header and cookie names kept in auth scheme labels,
// so a client cannot grow labels with garbage names.
const maxAuthNameLen = 64

// detectAuth returns the authentication schemes one request carries:
// "bearer-jwt", "bearer", "basic", another Authorization scheme lower-cased,
// "api-key:<header>", "cookie:<name>", "query-key:<param>", or "none".
func detectAuth(h call.Headers, queryKeys []string) []string {
	return appendAuth(nil, h, queryKeys)
}

// appendAuth is detectAuth appending to out (a caller's buffer: the
// inventory's per-call scratch has room for the usual one or two).
func appendAuth(out []string, h call.Headers, queryKeys []string) []string {
	base := len(out)
	for _, f := range h {
		name := f.Name
		switch {
		case strings.EqualFold(name, "Authorization"):
			out = append(out, authorizationScheme(f.Value))
		case strings.EqualFold(name, "Cookie"):
			out = appendSessionCookies(out, f.Value)
		case isAPIKeyHeader(name):
			out = append(out, "api-key:"+strings.ToLower(name))
		}
	}
	for _, k := range queryKeys {
		out = append(out, "query-key:"+k)
	}
	if len(out) == base {
		return noAuth
	}
	return out
}

// noAuth is returned for requests without credentials; callers only read it,
// and sharing it saves an allocation per anonymous request.
var noAuth = []string{"none"}

func authorizationScheme(v string) string {
	v = strings.TrimSpace(v)
	scheme, cred, _ := strings.Cut(v, " ")
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		if isJWT(strings.TrimSpace(cred)) {
			return "bearer-jwt"
		}
		return "bearer"
	case strings.EqualFold(scheme, "Basic"):
		return "basic"
	case scheme == "" || len(scheme) > 32 || !isAuthToken(scheme):
		return "other"
	}
	return strings.ToLower(scheme)
}

func isAuthToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// isAPIKeyHeader matches X-API-Key, Api-Key, X-Auth-Token and other *key*
// headers, except the standard ones that are not credentials.
func isAPIKeyHeader(name string) bool {
	if len(name) > maxAuthNameLen {
		return false
	}
	// Most headers contain no "key" at all; test that first without
	// allocating a lower-cased copy.
	if !asciifold.Contains(name, "key") && !asciifold.Contains(name, "token") {
		return false
	}
	ln := strings.ToLower(name)
	if strings.HasPrefix(ln, "sec-") || strings.Contains(ln, "idempotency") || strings.Contains(ln, "cache") {
		return false
	}
	return strings.Contains(ln, "key") || ln == "x-auth-token" || ln == "x-access-token" || ln == "x-api-token"
}

// appendSessionCookies adds "cookie:<name>" for cookies whose name marks a
// session or credential.
func appendSessionCookies(out []string, v string) []string {
	for part := range strings.SplitSeq(v, ";") {
		name, _, _ := strings.Cut(strings.TrimSpace(part), "=")
		if name == "" || len(name) > maxAuthNameLen {
			continue
		}
		if isSessionCookie(name) {
			out = append(out, "cookie:"+name)
		}
	}
	return out
}

func isSessionCookie(name string) bool {
	ln := strings.ToLower(name)
	for _, w := range [...]string{"sess", "sid", "auth", "token", "jwt", "login", "remember"} {
		if strings.Contains(ln, w) {
			return true
		}
	}
	return false
}

// isAPIKeyParam matches query parameters that carry credentials.
func isAPIKeyParam(name string) bool {
	switch strings.ToLower(name) {
	case "api_key", "apikey", "api-key", "key", "access_token", "token", "auth", "auth_token":
		return true
	}
	return false
}

package behavior

import (
	"strings"
	"testing"
)

// refAPIKeyHeader and refAuthPath are isAPIKeyHeader and the path half of
// isAuthEndpoint before their fast paths: the fast paths must agree.
func refAPIKeyHeader(name string) bool {
	var buf [64]byte
	ln := lowerInto(buf[:0], name)
	if strings.HasPrefix(ln, "sec-") || strings.Contains(ln, "idempotency") || strings.Contains(ln, "cache") {
		return false
	}
	return strings.Contains(ln, "api-key") || strings.Contains(ln, "apikey") || ln == "x-auth-token" ||
		ln == "x-access-token" || ln == "x-api-token"
}

func refAuthPath(path string) bool {
	lp := strings.ToLower(path)
	for _, w := range [...]string{"login", "signin", "sign-in", "auth", "token", "session", "password"} {
		if strings.Contains(lp, w) {
			return true
		}
	}
	return false
}

func TestAPIKeyHeaderFastPath(t *testing.T) {
	names := []string{"", "Host", "Accept", "X-API-Key", "x-apikey", "Api-Key", "X-Auth-Token", "X-ACCESS-TOKEN",
		"x-api-token", "X-Token", "Sec-Api-Key", "Idempotency-Key", "X-Cache-Key", "Keep-Alive", "X-Key",
		"X-Api-K\u212aey", "X-Api-\u212aey", "X-Auth-To\u212aen", strings.Repeat("x", 70) + "-api-key",
		"Authorization", "Cookie", "X-Forwarded-For", "User-Agent", "x-my-apikey-v2", "tokenapikey"}
	for _, n := range names {
		if got, want := isAPIKeyHeader(n), refAPIKeyHeader(n); got != want {
			t.Errorf("isAPIKeyHeader(%q) = %v, want %v", n, got, want)
		}
	}
}

func TestAuthPathFastPath(t *testing.T) {
	paths := []string{"/", "/api/v1/users/1", "/LOGIN", "/api/SignIn", "/sign-in", "/oauth/Token", "/v1/sessions",
		"/reset-PASSWORD", "/to\u212aen", "/t\u00f6ken", "/api/\u0130login", "/Auth", "/au", "/api/v1/ping",
		"/sess\u0130on", "/a/b/c/d/e/f/g/h/i/j/k", "/\xff\xfelogin", "/\xfftoken"}
	for _, p := range paths {
		if got, want := isAuthEndpoint(p, nil), refAuthPath(p); got != want {
			t.Errorf("isAuthEndpoint(%q) = %v, want %v", p, got, want)
		}
	}
}

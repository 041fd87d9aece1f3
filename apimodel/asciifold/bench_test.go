package asciifold

import "testing"

// BenchmarkContains: the behavioural model's and the inventory's searches
// on one ordinary request (header names for "key"/"token", the path for
// the auth words), all misses as on most calls.
func BenchmarkContains(b *testing.B) {
	names := []string{"Host", "User-Agent", "Accept", "Accept-Language", "Content-Type", "Origin", "Referer",
		"Cookie", "Content-Length"}
	paths := []string{"/api/v1/users/123", "/api/v1/orders", "/api/v1/ping"}
	words := []string{"login", "signin", "sign-in", "auth", "token", "session", "password"}
	n := 0
	for b.Loop() {
		for _, h := range names {
			if Contains(h, "key") || Contains(h, "token") {
				n++
			}
		}
		for _, p := range paths {
			for _, w := range words {
				if Contains(p, w) {
					n++
				}
			}
		}
	}
	if n != 0 {
		b.Fatal(n)
	}
}

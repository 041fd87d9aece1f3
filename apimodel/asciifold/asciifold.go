// Package asciifold matches ASCII words case-insensitively without
// building lowered copies: the detector and the behavioural model run it on
// every header and parameter name of every request.
package asciifold

// Contains reports whether s contains w, which must be lower-case ASCII,
// ignoring the ASCII case of s.
func Contains(s, w string) bool {
	for i := 0; i+len(w) <= len(s); i++ {
		j := 0
		for ; j < len(w); j++ {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != w[j] {
				break
			}
		}
		if j == len(w) {
			return true
		}
	}
	return false
}

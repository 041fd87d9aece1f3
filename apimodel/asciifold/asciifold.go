// Package asciifold matches ASCII words case-insensitively without
// building lowered copies: the detector and the behavioural model run it on
// every header and parameter name of every request.
package asciifold

// Contains reports whether s contains w, which must be lower-case ASCII,
// ignoring the ASCII case of s.
func Contains(s, w string) bool {
	if len(w) == 0 {
		return true
	}
	// Nearly every position fails on its first byte (most calls find
	// nothing), so that test is one OR and one compare: for a letter,
	// c|0x20 == w[0] holds exactly for its two cases (no other byte ORs
	// into a lower-case letter); any other byte compares as it is.
	w0, fold := w[0], byte(0)
	if 'a' <= w0 && w0 <= 'z' {
		fold = 0x20
	}
	rest := w[1:]
	for i := 0; i+len(w) <= len(s); i++ {
		if s[i]|fold != w0 {
			continue
		}
		if hasFoldPrefix(s[i+1:], rest) {
			return true
		}
	}
	return false
}

// hasFoldPrefix reports whether s starts with w (lower-case ASCII, no
// longer than s), folding the ASCII case of s.
func hasFoldPrefix(s, w string) bool {
	for j := 0; j < len(w); j++ {
		c := s[j]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != w[j] {
			return false
		}
	}
	return true
}

// HasPrefix reports whether s starts with w, which must be lower-case
// ASCII, ignoring the ASCII case of s.
func HasPrefix(s, w string) bool {
	return len(s) >= len(w) && hasFoldPrefix(s, w)
}

package detect

import (
	"html"
	"strings"
	"unicode"
	"unicode/utf8"
)

// decode undoes the encodings attackers stack to slip a payload past a
// literal matcher: repeated percent-encoding (including IIS %uXXXX and '+'
// for form data), HTML entities, JSON/JavaScript escapes, overlong UTF-8 for
// '.', '/' and '\', and NUL bytes. Each step allocates only when it changes
// something, so clean values cost a scan and no allocation.
func decode(s string, plus bool, passes int) string {
	if plus && strings.IndexByte(s, '+') >= 0 {
		s = strings.ReplaceAll(s, "+", " ")
	}
	for i := 0; i < passes && strings.IndexByte(s, '%') >= 0; i++ {
		d, changed := percentDecode(s)
		if !changed {
			break
		}
		s = d
	}
	if strings.IndexByte(s, '&') >= 0 && strings.IndexByte(s, ';') >= 0 || strings.Contains(s, "&#") {
		s = html.UnescapeString(s)
	}
	if strings.IndexByte(s, '\\') >= 0 {
		s = unescapeBackslash(s)
	}
	if strings.IndexByte(s, 0xc0) >= 0 || strings.IndexByte(s, 0xc1) >= 0 || strings.IndexByte(s, 0xe0) >= 0 || strings.IndexByte(s, 0xf0) >= 0 {
		s = fixOverlong(s)
	}
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
	}
	return s
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// hexRune parses n hex digits at s[i:], returning ok=false on any non-hex.
func hexRune(s string, i, n int) (rune, bool) {
	if i+n > len(s) {
		return 0, false
	}
	var r rune
	for j := 0; j < n; j++ {
		v, ok := unhex(s[i+j])
		if !ok {
			return 0, false
		}
		r = r<<4 | rune(v)
	}
	return r, true
}

// percentDecode decodes one layer of %XX and %uXXXX. Malformed escapes are
// kept literally, as lenient servers do, instead of failing the value.
func percentDecode(s string) (string, bool) {
	var b strings.Builder
	changed := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			if changed {
				b.WriteByte(c)
			}
			continue
		}
		if i+2 < len(s) {
			if hi, ok1 := unhex(s[i+1]); ok1 {
				if lo, ok2 := unhex(s[i+2]); ok2 {
					if !changed {
						b.Grow(len(s))
						b.WriteString(s[:i])
						changed = true
					}
					b.WriteByte(hi<<4 | lo)
					i += 2
					continue
				}
			}
		}
		if i+5 < len(s) && (s[i+1] == 'u' || s[i+1] == 'U') {
			if r, ok := hexRune(s, i+2, 4); ok {
				if !changed {
					b.Grow(len(s))
					b.WriteString(s[:i])
					changed = true
				}
				b.WriteRune(r)
				i += 5
				continue
			}
		}
		if changed {
			b.WriteByte(c)
		}
	}
	if !changed {
		return s, false
	}
	return b.String(), true
}

// unescapeBackslash decodes \uXXXX and \xHH (JSON and JavaScript string
// escapes seen inside query values). Other backslashes stay, so Windows
// paths such as ..\..\ survive for the traversal rules.
func unescapeBackslash(s string) string {
	var b strings.Builder
	changed := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' && i+1 < len(s) {
			var r rune
			var ok bool
			n := 0
			switch s[i+1] {
			case 'r', 'n':
				// Only the literal pair \r\n: lone \n is common in
				// Windows paths (C:\new) and harmless.
				if strings.HasPrefix(s[i:], `\r\n`) {
					if !changed {
						b.Grow(len(s))
						b.WriteString(s[:i])
						changed = true
					}
					b.WriteString("\r\n")
					i += 3
					continue
				}
			case 'u', 'U':
				r, ok = hexRune(s, i+2, 4)
				n = 6
			case 'x', 'X':
				r, ok = hexRune(s, i+2, 2)
				n = 4
			}
			if ok {
				if !changed {
					b.Grow(len(s))
					b.WriteString(s[:i])
					changed = true
				}
				b.WriteRune(r)
				i += n - 1
				continue
			}
		}
		if changed {
			b.WriteByte(c)
		}
	}
	if !changed {
		return s
	}
	return b.String()
}

// fixOverlong maps the overlong UTF-8 forms of '.', '/' and '\' (the
// classic %c0%ae%c0%ae/ traversal) to their ASCII meaning.
func fixOverlong(s string) string {
	r := strings.NewReplacer(
		"\xc0\xae", ".", "\xc0\xaf", "/", "\xc1\x9c", "\\", "\xc0\x2e", ".", "\xc0\x2f", "/",
		"\xe0\x80\xae", ".", "\xe0\x80\xaf", "/", "\xe0\x81\x9c", "\\",
		"\xf0\x80\x80\xae", ".", "\xf0\x80\x80\xaf", "/", "\xf0\x80\x81\x9c", "\\",
	)
	return r.Replace(s)
}

// canonical appends to dst the matching form of a decoded value: lower
// case, SQL block comments replaced by a space (MySQL /*!...*/ keeps its
// content, since the server executes it), runs of blanks folded to one
// space and runs containing a line break folded to one '\n', so
// "UNION/**/\tSELECT" and "union select" look the same to the keywords.
func canonical(dst []byte, s string) []byte {
	lastSpace := false
	inExec := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '/' && i+1 < len(s) && s[i+1] == '*' && strings.Contains(s[i+2:], "*/") {
			// Only closed comments: an unclosed "/*" is more often a path
			// wildcard than SQL, and stripping it would hide what follows.
			end := strings.Index(s[i+2:], "*/")
			if i+2 < len(s) && s[i+2] == '!' {
				// Executable comment: drop the markers and version digits only.
				j := i + 3
				for j < len(s) && s[j] >= '0' && s[j] <= '9' {
					j++
				}
				dst, lastSpace = appendSpace(dst, lastSpace, ' ')
				inExec = true
				i = j - 1
				continue
			}
			dst, lastSpace = appendSpace(dst, lastSpace, ' ')
			i += 2 + end + 1
			continue
		}
		if inExec && c == '*' && i+1 < len(s) && s[i+1] == '/' {
			inExec = false
			// Closing marker of an executable comment.
			dst, lastSpace = appendSpace(dst, lastSpace, ' ')
			i++
			continue
		}
		switch c {
		case ' ', '\t', '\v', '\f':
			dst, lastSpace = appendSpace(dst, lastSpace, ' ')
			continue
		case '\r', '\n':
			dst, lastSpace = appendSpace(dst, lastSpace, '\n')
			continue
		}
		lastSpace = false
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		} else if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r != utf8.RuneError {
				r = foldRune(r)
				dst = utf8.AppendRune(dst, r)
				i += size - 1
				continue
			}
		}
		dst = append(dst, c)
	}
	return dst
}

// appendSpace folds whitespace runs; a newline anywhere in the run wins
// because it separates shell commands and header lines.
func appendSpace(dst []byte, lastSpace bool, c byte) ([]byte, bool) {
	if lastSpace {
		if c == '\n' {
			dst[len(dst)-1] = '\n'
		}
		return dst, true
	}
	return append(dst, c), true
}

// foldRune lowers a non-ASCII rune and maps fullwidth ASCII (U+FF01..FF5E),
// used to dodge literal matchers, to plain ASCII.
func foldRune(r rune) rune {
	switch r {
	case 0x2215, 0x2044, 0x29f8: // division slash, fraction slash, big solidus
		return '/'
	case 0x2216, 0x29f9, 0xfe68: // set minus, big reverse solidus, small reverse solidus
		return '\\'
	case 0x2024, 0xfe52: // one dot leader, small full stop
		return '.'
	}
	if r >= 0xff01 && r <= 0xff5e {
		r = r - 0xff01 + '!'
		if r >= 'A' && r <= 'Z' {
			r += 'a' - 'A'
		}
		return r
	}
	return unicode.ToLower(r)
}

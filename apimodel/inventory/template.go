package inventory

import (
	"strings"
	"unicode"
)

// Path templating.
//
// A path is split into segments (empty segments dropped, so "/a//b/" is
// "/a/b"). Each segment is either kept as a literal or replaced by a
// placeholder. Inside the inventory every placeholder is the same canonical
// marker, whatever the kind of value it replaced: "/users/42", "/users/<uuid>"
// and, once learned, "/users/alice" are one endpoint. The kind of each value
// is kept as the parameter's type and format instead. This keeps the key
// space small and avoids templates that differ only by a parameter name,
// which OpenAPI rejects as conflicting paths.
//
// A segment becomes a placeholder when it is a value by its form (integer,
// UUID, hex hash, date, e-mail, opaque token, or a segment that cannot be a
// literal in an OpenAPI path) or when its position was learned as variable:
// once a position under one parent prefix has seen more than
// Config.MaxSegmentValues distinct literals, every literal there becomes a
// placeholder and endpoints already recorded under it are merged.
//
// Naming convention (rendered at snapshot time, deterministic from the
// template): a placeholder after a literal segment is named after that
// segment, singularised and camel-cased, with an "Id" suffix:
// "/users/{userId}", "/user-groups/{userGroupId}". A placeholder at the root
// or after another placeholder is "{id}". A repeated name in one template
// gets a numeric suffix: "/{id}/{id2}".

// placeholder is the canonical marker of a variable segment in keys. Real
// segments containing '{' are always variable, so a literal never equals it.
const placeholder = "{}"

// maxLiteralLen is the longest segment kept as a literal; longer segments
// are variable whatever their form, because static path words are short.
const maxLiteralLen = 64

// node is one position of a service's path trie. It exists to count the
// distinct literals seen below one prefix.
type node struct {
	children map[string]*node
	literals int  // children that are literals (not the placeholder)
	learned  bool // every literal here is a placeholder from now on
}

func (n *node) child(key string) *node {
	if n.children == nil {
		return nil
	}
	return n.children[key]
}

// size counts n and its descendants, so a deleted subtree gives its nodes
// back to the per-service bound.
func (n *node) size() int {
	s := 1
	for _, c := range n.children {
		s += c.size()
	}
	return s
}

// splitPath splits a request path into non-empty segments.
func splitPath(p string) []string { return appendSegments(nil, p) }

// appendSegments appends the non-empty segments of a request path to segs
// (a caller's buffer: no allocation for paths that fit in it).
func appendSegments(segs []string, p string) []string {
	if segs == nil {
		n := 0
		for i := 0; i < len(p); i++ {
			if p[i] == '/' {
				n++
			}
		}
		segs = make([]string, 0, n+1)
	}
	for len(p) > 0 {
		i := strings.IndexByte(p, '/')
		var s string
		if i < 0 {
			s, p = p, ""
		} else {
			s, p = p[:i], p[i+1:]
		}
		if s != "" {
			segs = append(segs, s)
		}
	}
	return segs
}

// isVariable reports whether a segment is a value by its form.
func isVariable(s string) bool {
	if len(s) > maxLiteralLen || strings.ContainsAny(s, "{}") {
		return true
	}
	switch {
	case isInteger(s), isUUID(s), isHexHash(s), isDate(s), isEmail(s), isToken(s):
		return true
	}
	return false
}

func isInteger(s string) bool {
	if s == "" {
		return false
	}
	if s[0] == '-' {
		s = s[1:]
	}
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

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		switch i {
		case 8, 13, 18, 23:
			if s[i] != '-' {
				return false
			}
		default:
			if !isHex(s[i]) {
				return false
			}
		}
	}
	return true
}

// isHexHash matches hex digests and hex ids: 16 hex digits or more (this
// covers md5, sha1, sha256 and 64-bit ids), with at least one digit so that
// long words made of a-f letters stay literal.
func isHexHash(s string) bool {
	if len(s) < 16 {
		return false
	}
	digit := false
	for i := 0; i < len(s); i++ {
		if !isHex(s[i]) {
			return false
		}
		if s[i] <= '9' {
			digit = true
		}
	}
	return digit
}

// isDate matches an ISO 8601 calendar date (2024-01-31).
func isDate(s string) bool {
	if len(s) != 10 || s[4] != '-' || s[7] != '-' {
		return false
	}
	for _, i := range [...]int{0, 1, 2, 3, 5, 6, 8, 9} {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	m := (s[5]-'0')*10 + s[6] - '0'
	d := (s[8]-'0')*10 + s[9] - '0'
	return m >= 1 && m <= 12 && d >= 1 && d <= 31
}

// isDateTime matches an RFC 3339 date-time (2024-01-31T10:00:00Z).
func isDateTime(s string) bool {
	if len(s) < 20 || !isDate(s[:10]) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') {
		return false
	}
	t := s[11:]
	if len(t) < 9 || t[2] != ':' || t[5] != ':' {
		return false
	}
	last := t[len(t)-1]
	return last == 'Z' || last == 'z' || (len(t) >= 14 && (t[len(t)-6] == '+' || t[len(t)-6] == '-'))
}

// isEmail is a cheap shape check: local@domain.tld without spaces.
func isEmail(s string) bool {
	at := strings.IndexByte(s, '@')
	if at <= 0 || at != strings.LastIndexByte(s, '@') || len(s) > 254 {
		return false
	}
	dom := s[at+1:]
	dot := strings.LastIndexByte(dom, '.')
	if dot <= 0 || dot == len(dom)-1 {
		return false
	}
	return !strings.ContainsAny(s, " \t/,;<>")
}

// isToken matches opaque tokens: a run of base64/base64url characters with a
// long part mixing letters and digits. Hyphenated slugs such as
// "release-notes-2024" stay literal because no part mixes letters and digits
// over 12 characters.
func isToken(s string) bool {
	if len(s) < 16 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == '+' || c == '=' || c == '~') {
			return false
		}
	}
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != '-' && s[i] != '_' && s[i] != '.' {
			continue
		}
		if i-start >= 12 && mixesLettersDigits(s[start:i]) {
			return true
		}
		start = i + 1
	}
	return false
}

func mixesLettersDigits(s string) bool {
	var l, d bool
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			d = true
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			l = true
		}
	}
	return l && d
}

// isCollectionRoot reports positions whose children are usually a fixed set
// of resource names rather than values: the root, "api", "rest" and version
// segments such as "v1". They get a higher learning threshold so that an API
// with many collections keeps them literal.
func isCollectionRoot(prefix []string) bool {
	if len(prefix) == 0 {
		return true
	}
	last := strings.ToLower(prefix[len(prefix)-1])
	switch last {
	case "api", "apis", "rest", "public", "internal", "admin":
		return true
	}
	if len(last) >= 2 && last[0] == 'v' && isInteger(last[1:]) {
		return true
	}
	return false
}

// renderTemplate turns canonical segments into the public template with
// named placeholders, and returns the parameter name per variable position.
func renderTemplate(segs []string) (string, map[int]string) {
	if len(segs) == 0 {
		return "/", nil
	}
	var b strings.Builder
	var names map[int]string
	used := map[string]int{}
	for i, s := range segs {
		b.WriteByte('/')
		if s != placeholder {
			b.WriteString(s)
			continue
		}
		name := "id"
		if i > 0 && segs[i-1] != placeholder {
			if base := identifier(singular(segs[i-1])); base != "" {
				name = base + "Id"
			}
		}
		used[name]++
		if n := used[name]; n > 1 {
			name += itoa(n)
		}
		if names == nil {
			names = map[int]string{}
		}
		names[i] = name
		b.WriteByte('{')
		b.WriteString(name)
		b.WriteByte('}')
	}
	return b.String(), names
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

// singular strips common English plural endings; it only has to produce a
// readable parameter name, not correct grammar.
func singular(w string) string {
	lw := strings.ToLower(w)
	switch {
	case len(lw) > 4 && strings.HasSuffix(lw, "ies"):
		return w[:len(w)-3] + "y"
	case len(lw) > 4 && (strings.HasSuffix(lw, "sses") || strings.HasSuffix(lw, "shes") ||
		strings.HasSuffix(lw, "ches") || strings.HasSuffix(lw, "xes")):
		return w[:len(w)-2]
	case len(lw) > 3 && strings.HasSuffix(lw, "s") && !strings.HasSuffix(lw, "ss") &&
		!strings.HasSuffix(lw, "us") && !strings.HasSuffix(lw, "is"):
		return w[:len(w)-1]
	}
	return w
}

// identifier camel-cases a segment into a parameter name made of ASCII
// letters and digits ("user-groups" -> "userGroups"), starting with a letter.
func identifier(s string) string {
	var b strings.Builder
	upper := false
	for _, r := range s {
		if r > unicode.MaxASCII || !(unicode.IsLetter(r) || unicode.IsDigit(r)) {
			upper = b.Len() > 0
			continue
		}
		if b.Len() == 0 {
			if unicode.IsDigit(r) {
				continue
			}
			r = unicode.ToLower(r)
		} else if upper {
			r = unicode.ToUpper(r)
		}
		upper = false
		b.WriteRune(r)
		if b.Len() >= 32 {
			break
		}
	}
	return b.String()
}

package detect

import (
	"bytes"
	"strings"

	"github.com/apiwarden/apiwarden/apimodel/asciifold"
	"github.com/apiwarden/apiwarden/apimodel/call"
)

// Checks of the file, include and lookup families (CRS 930, 931, 943,
// 944 log4shell) and the gates of the SQL rules written from the same
// gap analysis, for what a regular expression over the canonical form
// cannot express: a parent-directory step whose dots and separators come
// in any of the encodings servers undo (percent, overlong UTF-8, IIS %u
// and its best-fit code points, 0x literals), a Log4j lookup opener in
// its entity spellings, the raw query string and the headers the value
// scan skips, an include assignment in the raw query or body, and a
// session id as a multipart field name.

func familyValueCheck(name string) checkFunc {
	switch name {
	case "parent-step":
		return checkParentStep
	case "lookup-opener":
		return checkLookupOpener
	}
	return xssPHPValueCheck(name)
}

// familyGate returns the gates of the gap-analysis rules (see gates.go).
func familyGate(name string) gateFunc {
	switch name {
	case "not-after-word":
		return notAfterWordGate
	case "after-terminator":
		return afterTerminatorGate
	case "sql-call":
		return sqlCallGate
	case "segment-start":
		return segmentStartGate
	}
	return nil
}

// notAfterWordGate passes a keyword that starts a word which is not a
// method or member (nothing of [a-z0-9_.$] right before it): the anchored
// form of a "(?:^|[^\w.$])name(" pattern.
func notAfterWordGate(canon []byte, at int) bool {
	if at == 0 {
		return true
	}
	c := canon[at-1]
	return !(isWordByte(c) || c == '.' || c == '$')
}

// segmentStartGate passes a keyword that starts a path segment or word
// (nothing of [a-z0-9_.-] right before it): "/var/log" and "=etc/x", not
// "blog/" or "fetch/".
func segmentStartGate(canon []byte, at int) bool {
	if at == 0 {
		return true
	}
	c := canon[at-1]
	return !(isWordByte(c) || c == '.' || c == '-')
}

// sqlCallGate is notAfterWordGate for a function name that must be
// called: a '(' within the next 40 bytes (anchored rules skip the needs
// gate, and names such as ord, user or insert start many words).
func sqlCallGate(canon []byte, at int) bool {
	return notAfterWordGate(canon, at) && bytes.IndexByte(canon[at:min(len(canon), at+40)], '(') >= 0
}

// afterTerminatorGate passes a ';' that ends a number, a quoted literal,
// a parenthesis or bracket, or that opens the value (blanks skipped):
// "1;select", "');drop", but not prose such as "ok; select the item".
func afterTerminatorGate(canon []byte, at int) bool {
	i := at - 1
	for i >= 0 && (canon[i] == ' ' || canon[i] == ';') {
		i--
	}
	if i < 0 {
		return true
	}
	switch c := canon[i]; {
	case c >= '0' && c <= '9', c == '\'', c == '"', c == '`', c == ')', c == ']':
		return true
	}
	return false
}

func familyRequestCheck(name string) requestCheckFunc {
	switch name {
	case "raw-request-traversal":
		return checkRawRequest(traversalMaybe, func(v string) bool {
			var buf [1024]byte
			d := decode(v, false, 3)
			return checkParentStep(d, canonical(buf[:0], d))
		}, false)
	case "raw-request-lookup":
		return checkRawRequest(lookupMaybe, func(v string) bool {
			var buf [1024]byte
			d := decode(v, false, 3)
			return checkLookupOpener(d, canonical(buf[:0], d))
		}, true)
	case "rfi-include-assignment":
		return checkRFIAssignment
	}
	return xssPHPRequestCheck(name)
}

// sepAt returns the length of a path separator written at c[i:] (0 when
// there is none): '/', '\' or ';' (Tomcat's path parameter), what the
// decoder leaves of overlong or mis-encoded slashes (a lone 0xc0/0xc1 lead
// byte before a slash, "%qf", "%9v", "%8s", "%pc" after one, %bg%qf), the
// 5- and 6-byte overlong forms, IIS best-fit code points U+EFC8 and
// U+F025, and 0x2f / 0x5c literals.
func sepAt(c []byte, i int) int {
	if i >= len(c) {
		return 0
	}
	switch b := c[i]; b {
	case '/', '\\', ';':
		return 1
	case 0xc0, 0xc1:
		if i+1 < len(c) && (c[i+1] == '/' || c[i+1] == '\\' || c[i+1] == 0x1c || c[i+1] == 0xaf || c[i+1] == 0x9c) {
			return 2
		}
		if i+3 < len(c) && c[i+1] == '%' {
			switch string(c[i+2 : i+4]) {
			case "qf", "9v", "8s", "pc", "9c", "1c", "af":
				return 4
			}
		}
	case '%':
		if hasAt(c, i, "%bg%qf") {
			return 6
		}
	case '0':
		if hasAt(c, i, "0x2f") || hasAt(c, i, "0x5c") {
			return 4
		}
	case 0xf8:
		if hasAt(c, i, "\xf8\x80\x80\x80\xaf") {
			return 5
		}
	case 0xfc:
		if hasAt(c, i, "\xfc\x80\x80\x80\x80\xaf") {
			return 6
		}
	case 0xee:
		if hasAt(c, i, "\ueFC8") {
			return 3
		}
	case 0xef:
		if hasAt(c, i, "\uf025") {
			return 3
		}
	}
	return 0
}

// dotAt returns the length of a dot at c[i:]: '.', a 0xc0 lead byte the
// decoder left before a dot-like byte, the 5- and 6-byte overlong forms
// and the 0x2e literal.
func dotAt(c []byte, i int) int {
	if i >= len(c) {
		return 0
	}
	switch c[i] {
	case '.':
		return 1
	case 0xc0:
		if i+1 < len(c) {
			switch c[i+1] {
			case '.', '^', 'n', 0xae, 0xee, 0xfe:
				return 2
			}
		}
	case '0':
		if hasAt(c, i, "0x2e") {
			return 4
		}
	case 0xf8:
		if hasAt(c, i, "\xf8\x80\x80\x80\xae") {
			return 5
		}
	case 0xfc:
		if hasAt(c, i, "\xfc\x80\x80\x80\x80\xae") {
			return 6
		}
	}
	return 0
}

func hasAt(c []byte, i int, s string) bool {
	return len(c)-i >= len(s) && string(c[i:i+len(s)]) == s
}

// quoteNoise are the bytes a shell or a lenient filter drops from a path
// (".\"./", "..^/"), so they may sit between the dots and separators.
func quoteNoise(b byte) bool { return b == '"' || b == '\'' || b == '^' }

// checkParentStep reports a parent-directory step: two or three dots
// between separators, or at the start of the value followed by one. A dot
// may be followed by '?' or a control byte (..%01/, .?./) that some
// servers drop, and blanks before the closing separator are ignored.
func checkParentStep(_ string, c []byte) bool {
	if !parentStepMaybe(c) {
		return false // most values: byte searches only
	}
	if parentAt(c, 0) {
		return true
	}
	for i := 0; i < len(c); i++ {
		if n := sepAt(c, i); n > 0 && parentAt(c, i+n) {
			return true
		}
	}
	return false
}

// parentStepMaybe is the cheap gate of checkParentStep: a dot followed
// by a dot or by the noise a step may carry ('?', a quote, '^', a control
// byte), or one of the dot spellings that are not a '.' (0x2e, overlong
// lead bytes).
func parentStepMaybe(c []byte) bool {
	for i := 0; ; {
		j := bytes.IndexByte(c[i:], '.')
		if j < 0 {
			break
		}
		i += j + 1
		if i < len(c) {
			switch n := c[i]; {
			case n == '.', n == '?', n == '"', n == '\'', n == '^', n < 0x20:
				return true
			}
		}
	}
	return bytes.Contains(c, []byte("0x2e")) || bytes.IndexByte(c, 0xc0) >= 0 || bytes.IndexByte(c, 0xf8) >= 0 || bytes.IndexByte(c, 0xfc) >= 0
}

// strayPercent reports a '%' at c[i] that the decoder left because no
// escape follows it ("%\..%\.."): lenient servers (IIS, some Java
// containers) drop it, so it may sit between the dots and a separator.
// A '%' that starts a separator spelling (%bg%qf) is not stray.
func strayPercent(c []byte, i int) bool {
	return c[i] == '%' && !(i+2 < len(c) && isHex(c[i+1]) && isHex(c[i+2])) && sepAt(c, i) == 0
}

func isHex(b byte) bool { _, ok := unhex(b); return ok }

// parentAt reports whether c[i:] holds 2-3 dots and then a separator.
func parentAt(c []byte, i int) bool {
	dots := 0
	for i < len(c) {
		if quoteNoise(c[i]) || dots > 0 && strayPercent(c, i) {
			i++
			continue
		}
		n := dotAt(c, i)
		if n == 0 {
			if dots > 0 && (c[i] == '?' || c[i] < 0x20 && c[i] != '\n') {
				i++
				continue
			}
			break
		}
		dots++
		i += n
	}
	if dots < 2 || dots > 3 {
		return false
	}
	for i < len(c) && (c[i] == ' ' || quoteNoise(c[i]) || strayPercent(c, i)) {
		i++
	}
	return sepAt(c, i) > 0
}

// checkLookupOpener reports a Log4j lookup opener ('$' or &dollar, then
// '{' or &lbrace / &lcub, the entities with or without their ';') that
// names jndi or ctx, or that holds a second opener within 15 bytes
// before its '}' (the nesting every obfuscated lookup needs).
func checkLookupOpener(_ string, c []byte) bool {
	for i := 0; i < len(c); i++ {
		n := lookupOpenAt(c, i)
		if n == 0 {
			continue
		}
		j := i + n
		for j < len(c) && c[j] == ' ' {
			j++
		}
		if hasAt(c, j, "jndi") || hasAt(c, j, "ctx") {
			return true
		}
		for k := i + n; k < len(c) && k <= i+n+15; k++ {
			if c[k] == '}' {
				break
			}
			if lookupOpenAt(c, k) > 0 {
				return true
			}
		}
	}
	return false
}

func lookupOpenAt(c []byte, i int) int {
	j := i
	switch {
	case hasAt(c, j, "$"):
		j++
	case hasAt(c, j, "&dollar"):
		j += len("&dollar")
		if hasAt(c, j, ";") {
			j++
		}
	default:
		n := numEntityAt(c, j, '$')
		if n == 0 {
			return 0
		}
		j += n
	}
	if n := numEntityAt(c, j, '{'); n > 0 {
		return j + n - i
	}
	if hasAt(c, j, "\\{") {
		j++ // a JavaScript escape of the brace: $\{
	}
	for _, e := range [...]string{"{", "&lbrace", "&lcub"} {
		if hasAt(c, j, e) {
			j += len(e)
			if e != "{" && hasAt(c, j, ";") {
				j++
			}
			return j - i
		}
	}
	return 0
}

// checkRawRequest runs match on what the value scan does not see whole:
// the raw query string (a payload whose '&' or '=' splits it into
// fields, as in &dollar;{jndi:...}, or one inert-looking token such as
// 0x2f..0x5c) and the headers the scan skips (negotiation, caching,
// credentials and fetch metadata: see skipHeaders), which a WAF still
// inspects, Host included. The framing headers the smuggling rules judge
// and Cookie (parsed into cookies) are left out.
//
// With cookie set it also reads the Cookie header whole: the value scan
// splits it at each ';', which cuts an entity-spelled opener
// (&#36;&#123;jndi:…) into pieces that no longer match.
func checkRawRequest(maybe, match func(string) bool, cookie bool) requestCheckFunc {
	return func(req *call.Request, hx *headerIndex, _ *Config) (string, string, bool) {
		if q := req.RawQuery; q != "" && maybe(q) {
			if len(q) > 8<<10 {
				q = q[:8<<10]
			}
			if match(q) {
				return "query", q, true
			}
		}
		look := func(v string) (string, bool) {
			if len(v) > 8<<10 {
				v = v[:8<<10]
			}
			return v, maybe(v) && match(v) // !maybe: the common case, no decoding
		}
		if hx != nil {
			for m := hx.skip &^ (hx.pos[hkContentLength] | hx.pos[hkTransferEncoding] | hx.pos[hkCookie]); m != 0; m &= m - 1 {
				h := &req.Headers[first(m)]
				if v, ok := look(h.Value); ok {
					return "header:" + h.Name, v, true
				}
			}
			if cookie {
				for m := hx.pos[hkCookie]; m != 0; m &= m - 1 {
					h := &req.Headers[first(m)]
					if v, ok := look(h.Value); ok {
						return "header:" + h.Name, v, true
					}
				}
			}
			return "", "", false
		}
		for _, h := range req.Headers {
			ln := lowerHeaderName(h.Name)
			if ln == "cookie" && !cookie || ln != "cookie" && (!skipHeaders[ln] || ln == "content-length" || ln == "transfer-encoding") {
				continue
			}
			if v, ok := look(h.Value); ok {
				return "header:" + h.Name, v, true
			}
		}
		return "", "", false
	}
}

// traversalMaybe is a cheap test of a raw value for a dot pair or for an
// encoding that could hide one (percent, 0x literals, backslash escapes):
// byte searches first, folded searches only after a '%'.
func traversalMaybe(v string) bool {
	if strings.Contains(v, "..") || strings.IndexByte(v, '\\') >= 0 || strings.Contains(v, "0x") || strings.Contains(v, "0X") {
		return true
	}
	return strings.IndexByte(v, '%') >= 0 && (asciifold.Contains(v, "%2e") || asciifold.Contains(v, "%25") ||
		asciifold.Contains(v, "%u") || asciifold.Contains(v, "%c0") || asciifold.Contains(v, "%e0") || asciifold.Contains(v, "%f"))
}

// lookupMaybe is a cheap test of a raw value for a lookup opener in any
// of the spellings the decoder undoes.
func lookupMaybe(v string) bool {
	if strings.IndexByte(v, '$') >= 0 {
		return true
	}
	return strings.IndexByte(v, '%') >= 0 && asciifold.Contains(v, "%24") ||
		strings.IndexByte(v, '&') >= 0 && (asciifold.Contains(v, "&dollar") || strings.Contains(v, "&#")) ||
		strings.IndexByte(v, '\\') >= 0 && (asciifold.Contains(v, `\u0024`) || asciifold.Contains(v, `\x24`))
}

// numEntityAt returns the length of a numeric character reference of
// byte b at c[i:] (&#36; &#x24; &#0036, the ';' optional as browsers
// and decoders accept it), 0 if there is none. c is lower-cased.
func numEntityAt(c []byte, i int, b byte) int {
	if !hasAt(c, i, "&#") {
		return 0
	}
	j, v, base := i+2, 0, 10
	if j < len(c) && c[j] == 'x' {
		base = 16
		j++
	}
	start := j
	for ; j < len(c) && j-start < 8; j++ {
		d, ok := unhex(c[j])
		if !ok || d >= byte(base) {
			break
		}
		v = v*base + int(d)
	}
	if j == start || v != int(b) {
		return 0
	}
	if j < len(c) && c[j] == ';' {
		j++
	}
	return j - i
}

// rfiSchemes are the URL schemes an include fetches.
var rfiSchemes = []string{"http://", "https://", "ftp://", "ftps://", "file://"}

// checkRFIAssignment looks in the raw query and body (any content type)
// for a URL assigned inside an include( call or to a parameter that
// PHP applications include (the form of the assignment, not the parsed
// parameters: "include($x=http://..." splits oddly into fields).
func checkRFIAssignment(req *call.Request, _ *headerIndex, _ *Config) (string, string, bool) {
	look := func(part, raw string) (string, string, bool) {
		if !assignsURL(raw) {
			return "", "", false
		}
		v := strings.ToLower(decode(raw, true, 2))
		for off := 0; ; {
			k := strings.Index(v[off:], "://")
			if k < 0 {
				return "", "", false
			}
			at := off + k
			off = at + 3
			for _, s := range rfiSchemes {
				start := at + 3 - len(s)
				if start < 1 || v[start:at+3] != s || v[start-1] != '=' {
					continue
				}
				if rfiAssignee(v[:start-1]) {
					return part, v[max(0, start-60):min(len(v), at+40)], true
				}
			}
		}
	}
	if p, e, ok := look("query", req.RawQuery); ok {
		return p, e, ok
	}
	if b := req.Body[:min(len(req.Body), 64<<10)]; assignsURL(b) {
		return look("body", string(b))
	}
	return "", "", false
}

// assignsURL is the cheap gate of checkRFIAssignment: an '=' (or %3d)
// right before an include scheme's first letters.
func assignsURL[T string | []byte](b T) bool {
	for i := 0; i < len(b); i++ {
		j := i
		switch {
		case b[i] == '=':
			j++
		case b[i] == '%' && i+2 < len(b) && b[i+1] == '3' && b[i+2]|0x20 == 'd':
			j += 3
		default:
			continue
		}
		if j+3 < len(b) {
			c0, c1, c2 := b[j]|0x20, b[j+1]|0x20, b[j+2]|0x20
			if c0 == 'h' && c1 == 't' && c2 == 't' || c0 == 'f' && (c1 == 't' && c2 == 'p' || c1 == 'i' && c2 == 'l') {
				return true
			}
		}
	}
	return false
}

// rfiAssignee reports whether the text before an '=' ends in an include
// parameter name or sits inside an unclosed include( call.
func rfiAssignee(before string) bool {
	for n := range rfiParams {
		if strings.HasSuffix(before, n) {
			return true
		}
	}
	i := strings.LastIndex(before, "include")
	if i < 0 || i > 0 && isWordByte(before[i-1]) {
		return false
	}
	rest := strings.TrimLeft(before[i+len("include"):], " \t\v")
	return strings.HasPrefix(rest, "(") && !strings.Contains(rest, ")")
}

// multipartSessionField returns the name of a multipart form field that
// carries a session id (a form field name is a parameter name to the
// application, as in a urlencoded body); ct is the request's
// Content-Type.
func multipartSessionField(req *call.Request, ct string) string {
	if len(ct) < 10 || !strings.EqualFold(ct[:10], "multipart/") {
		return ""
	}
	body := req.Body[:min(len(req.Body), 64<<10)]
	for {
		i := indexFold(body, "name=")
		if i < 0 {
			return ""
		}
		before := byte(' ')
		if i > 0 {
			before = body[i-1]
		}
		body = body[i+len("name="):]
		if before != ' ' && before != ';' && before != '\t' {
			continue // filename=
		}
		v := body
		end := -1
		if len(v) > 0 && v[0] == '"' {
			v = v[1:]
			for k := 0; k < len(v) && k < 128; k++ {
				if v[k] == '"' || v[k] == '\r' || v[k] == '\n' {
					end = k
					break
				}
			}
		} else {
			for k := 0; k < len(v) && k < 128; k++ {
				if v[k] == ';' || v[k] == '\r' || v[k] == '\n' || v[k] == ' ' {
					end = k
					break
				}
			}
		}
		if end <= 0 {
			continue
		}
		n := strings.ToLower(string(v[:end]))
		if sessionParams[n] || strings.HasPrefix(n, "aspsessionid") {
			return n
		}
	}
}

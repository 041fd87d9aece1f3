package detect

import (
	"bytes"
	"math/bits"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"github.com/corazawaf/libinjection-go"

	"github.com/apiwarden/apiwarden/apimodel/asciifold"
	"github.com/apiwarden/apiwarden/apimodel/call"
)

// checkFunc confirms a rule on one value; decoded keeps case and line
// breaks, canon is the folded form the keywords were matched on.
type checkFunc func(decoded string, canon []byte) bool

// requestCheckFunc looks at the request framing once per request and
// returns the part to blame and the evidence.
type requestCheckFunc func(req *call.Request, hx *headerIndex, lim *Config) (part, evidence string, ok bool)

func valueCheck(name string) checkFunc {
	switch name {
	case "libinjection-sqli":
		return checkSQLi
	case "libinjection-xss":
		return checkXSS
	case "ssrf":
		return checkSSRF
	case "jndi":
		return checkJNDI
	case "first-word-command":
		return checkFirstWordCommand
	case "php-dynamic-call":
		return checkPHPDynamicCall
	case "xss-obfuscated-tag":
		return checkObfuscatedTag
	case "has-comment":
		// The gate of a comment rule: canonical forms drop closed
		// comments, so no keyword can stand for one.
		return func(decoded string, _ []byte) bool { return strings.Contains(decoded, "/*") }
	}
	return familyValueCheck(name)
}

func requestCheck(name string) requestCheckFunc {
	switch name {
	case "smuggling-cl-te":
		return checkCLTE
	case "smuggling-multiple-cl":
		return checkMultipleCL
	case "smuggling-te-obfuscated":
		return checkTEObfuscated
	case "smuggling-cl-invalid":
		return checkCLInvalid
	case "header-oversized":
		return checkOversizedHeader
	case "session-fixation":
		return checkSessionFixation
	case "scanner-user-agent":
		return checkScannerUA
	case "multipart-charset":
		return checkMultipartCharset
	case "protocol-policy":
		return checkProtocolPolicy
	case "rfi-param":
		return checkRFIParam
	case "method-policy":
		return checkMethodPolicy
	case "body-content-type":
		return checkBodyContentType
	case "body-without-content-type":
		return checkBodyWithoutContentType
	case "header-shape":
		return checkHeaderShape
	case "jwt-alg-none":
		return checkJWTAlgNone
	case "jwt-kid-injection":
		return checkJWTKidInjection
	case "graphql-introspection":
		return checkGraphQLIntrospection
	case "graphql-abuse":
		return checkGraphQLAbuse
	case "upload-jsp":
		return uploadCheck(func(n string) bool { return scriptExt(n, jspExts) })
	case "upload-php":
		return uploadCheck(func(n string) bool { return scriptExt(n, phpExts) || phpSessionFile(n) })
	}
	return familyRequestCheck(name)
}

// checkSQLi runs libinjection only on values holding a character SQL
// injection needs to break out of a literal or chain a clause; plain words
// and numbers, most of the traffic, skip the tokenizer.
func checkSQLi(decoded string, _ []byte) bool {
	if len(decoded) < 2 {
		return false
	}
	if strings.ContainsAny(decoded, "‘’´ʼ") {
		// MySQL with a latin1 or ucs collation folds typographic quotes to
		// an apostrophe: judge the folded form (gated like any other).
		decoded = typoQuotes.Replace(decoded)
	}
	if !sqlGate(decoded) {
		return false
	}
	ok, _ := libinjection.IsSQLi(decoded)
	return ok && !filterExpression(decoded)
}

// sqlOnly are words and shapes of SQL an injection needs and a search
// filter language (JQL, Lucene, OData, SCIM) does not: statements,
// functions of time and data exfiltration, comments, tautologies.
var sqlOnly = regexp.MustCompile(`(?i)\b(?:select|union|insert|update|delete|drop|alter|create|exec|execute|declare|sleep|benchmark|waitfor|delay|having|into|outfile|case|when|then|procedure|information_schema|sysobjects|version|database|schema|char|chr|concat|substr|substring|ascii|load_file|pg_sleep|dbms_\w+|utl_\w+|xp_\w+|sp_\w+|0x[0-9a-f]+)\b|@@|\w\(|\d\s*(?:[=<>]|!=)\s*\d|\b(?:or|and|xor|not)\s+(?:true|false|\d|null\b)`)

// filterExpression reports whether v reads as a clause of a search filter
// language rather than a fragment that continues a SQL query: it starts
// with a field name, its double-quoted strings open and close at token
// edges, its parentheses balance, and it holds no apostrophe, backtick,
// statement separator, comment or SQL-only word (sqlOnly). An injection
// has to leave a literal or a numeric context first, which such a value
// cannot do.
func filterExpression(v string) bool {
	t := strings.TrimLeft(v, " \t")
	if t == "" || !isLetter(t[0]) || strings.ContainsAny(t, "'`;#\\") || strings.Contains(t, "--") || strings.Contains(t, "/*") {
		return false
	}
	depth, inStr := 0, false
	for i := 0; i < len(t); i++ {
		c := t[i]
		if inStr {
			if c == '"' {
				if i+1 < len(t) && !strings.ContainsRune(" \t\n),", rune(t[i+1])) {
					return false
				}
				inStr = false
			}
			continue
		}
		switch c {
		case '"':
			if i > 0 && !strings.ContainsRune(" \t\n(,=~<>!:", rune(t[i-1])) {
				return false
			}
			inStr = true
		case '(':
			depth++
		case ')':
			if depth--; depth < 0 {
				return false
			}
		}
	}
	return !inStr && depth == 0 && !sqlOnly.MatchString(t)
}

var typoQuotes = strings.NewReplacer("‘", "'", "’", "'", "´", "'", "ʼ", "'")

// sqlGate passes values that can leave a string literal (a quote or
// backtick), end a statement or open a comment, or that start like a
// numeric context ("1 or 1=1", "(1)union...").
func sqlGate(v string) bool {
	if strings.IndexAny(v, "\"`;#") >= 0 || strings.Contains(v, "--") || strings.Contains(v, "/*") {
		return true
	}
	if q := strings.IndexByte(v, '\''); q >= 0 {
		// One apostrophe between two letters (O'Brien, it's) cannot close
		// a literal and start SQL; anything else goes to libinjection.
		if strings.Count(v, "'") > 1 || q == 0 || q == len(v)-1 || !isLetter(v[q-1]) || !isLetter(v[q+1]) {
			return true
		}
	}
	t := strings.TrimLeft(v, " \t")
	if t == "" {
		return false
	}
	c := t[0]
	if c >= '0' && c <= '9' || c == '(' || c == '-' || c == '@' {
		return strings.IndexAny(t, " \t\n(=<>|&+") >= 0
	}
	return false
}

// checkXSS runs the HTML5 tokenizer on values that open a tag, carry a
// script URL, or can break out of an attribute (a quote and an '=').
func isLetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' || c >= 0x80 }

func checkXSS(decoded string, canon []byte) bool {
	if strings.IndexByte(decoded, '<') < 0 && !bytes.Contains(canon, []byte("script:")) &&
		(strings.IndexAny(decoded, "\"'`") < 0 || strings.IndexByte(decoded, '=') < 0) {
		return false
	}
	return libinjection.IsXSS(decoded)
}

// checkSSRF flags URLs whose host is this machine, a private or link-local
// network, or a cloud metadata service, in any of the IPv4 spellings that
// resolvers accept (decimal, hex, octal, short forms).
func checkSSRF(decoded string, _ []byte) bool {
	s := strings.ToLower(foldEnclosed(decoded))
	s = strings.ReplaceAll(s, "\\", "/")
	if slashlessURL(s) {
		return true
	}
	for n := 0; n < 4; n++ {
		i := strings.Index(s, "//")
		if i < 0 {
			return false
		}
		scheme := s[:i]
		if j := strings.LastIndexAny(scheme, " \"'=,(<>\n"); j >= 0 {
			scheme = scheme[j+1:]
		}
		scheme = strings.TrimSuffix(scheme, ":")
		rest := s[i+2:]
		s = rest
		if strings.HasPrefix(scheme, "jar:") {
			// jar:http://host!/ fetches the archive like its inner URL.
			scheme = "jar"
		}
		switch scheme {
		case "gopher", "dict", "tftp", "ldap", "netdoc", "jar", "sftp", "local_file":
			return true
		case "http", "https", "ftp", "ws", "wss", "":
		case "acap", "imap", "imaps", "irc", "ircs", "pop3", "pop3s", "rtmp", "rtsp", "smtp", "smtps",
			"telnet", "ldaps", "ssh", "redis", "memcached", "mongodb", "mysql", "postgres":
			// Clients of these protocols connect to the host like an
			// HTTP client would.
		default:
			continue
		}
		if scheme == "" && i != 0 {
			// A "//" inside a value (comment text, a path) is not a URL.
			continue
		}
		end := strings.IndexAny(rest, "/?#\n ")
		if end < 0 {
			end = len(rest)
		}
		auth := rest[:end]
		if at := strings.LastIndexByte(auth, '@'); at >= 0 {
			auth = auth[at+1:]
		}
		if internalHost(auth) || scheme != "" && obfuscatedIPHost(auth) {
			return true
		}
		// Parsers disagree on where the authority ends ("a.com:80 &@10.0.0.1:22/#
		// @a.com/"): every host-shaped piece before the path counts.
		if p := strings.IndexByte(rest, '/'); p > end && strings.IndexByte(rest[:p], '@') >= 0 {
			for _, piece := range strings.FieldsFunc(rest[:p], func(r rune) bool { return strings.ContainsRune("@ #&?", r) }) {
				if internalHost(piece) {
					return true
				}
			}
		}
	}
	return false
}

// slashlessURL finds http:host written without slashes (WHATWG parsers
// read "http:10.0.0.1" as http://10.0.0.1/) whose host is internal or an
// IP address in an obfuscated notation.
func slashlessURL(s string) bool {
	for off := 0; off < len(s); {
		i := strings.Index(s[off:], "http")
		if i < 0 {
			return false
		}
		i += off
		off = i + 4
		if i > 0 && isLetter(s[i-1]) {
			continue
		}
		rest := s[i+4:]
		rest = strings.TrimPrefix(rest, "s")
		if !strings.HasPrefix(rest, ":") || strings.HasPrefix(rest, ":/") {
			continue
		}
		rest = rest[1:]
		end := strings.IndexAny(rest, "/?#\n ")
		if end < 0 {
			end = len(rest)
		}
		if h := rest[:end]; h != "" && (internalHost(h) || obfuscatedIPHost(h)) {
			return true
		}
	}
	return false
}

// obfuscatedIPHost reports an IPv4 address written as one integer, in hex
// or octal, or with fewer than four parts: notations only written to get
// past a host filter.
func obfuscatedIPHost(hostport string) bool {
	host := hostport
	if j := strings.LastIndexByte(host, ':'); j >= 0 && strings.Count(host, ":") == 1 {
		host = host[:j]
	}
	if !looksNumericHost(host) || strings.Contains(host, ":") {
		return false
	}
	if _, ok := parseLooseIPv4(host); !ok {
		return strings.HasPrefix(host, "0x") && len(host) > 10 // overlong hex: parsers keep the low bits
	}
	parts := strings.Split(host, ".")
	if len(parts) == 1 && len(host) <= 5 && host[0] != '0' {
		// "http:8080" is a scheme and a port in many configs.
		return false
	}
	if len(parts) != 4 {
		return true
	}
	for _, p := range parts {
		if strings.HasPrefix(p, "0x") || len(p) > 1 && p[0] == '0' {
			return true
		}
	}
	return false
}

// foldEnclosed maps enclosed alphanumerics (circled digits and letters,
// dingbat circled digits), which IDNA normalisation turns into ASCII in a
// host name, to their ASCII form.
func foldEnclosed(v string) string {
	if strings.IndexByte(v, 0xe2) < 0 {
		return v
	}
	var b strings.Builder
	changed := false
	for _, r := range v {
		switch {
		case r >= 0x2460 && r <= 0x2473:
			b.WriteString(strconv.Itoa(int(r-0x2460) + 1))
		case r >= 0x2776 && r <= 0x277f:
			b.WriteString(strconv.Itoa(int(r-0x2776) + 1))
		case r >= 0x2780 && r <= 0x2789:
			b.WriteString(strconv.Itoa(int(r-0x2780) + 1))
		case r >= 0x278a && r <= 0x2793:
			b.WriteString(strconv.Itoa(int(r-0x278a) + 1))
		case r == 0x24ea || r == 0x24ff:
			b.WriteByte('0')
		case r >= 0x24b6 && r <= 0x24cf:
			b.WriteByte(byte('a' + r - 0x24b6))
		case r >= 0x24d0 && r <= 0x24e9:
			b.WriteByte(byte('a' + r - 0x24d0))
		default:
			b.WriteRune(r)
			continue
		}
		changed = true
	}
	if !changed {
		return v
	}
	return b.String()
}

// rebindingSuffixes are wildcard-DNS services that resolve a name to the
// address written in it (names under rebindingServices are caught before).
var rebindingSuffixes = []string{".nip.io", ".sslip.io", ".xip.io", ".nip.direct", ".traefik.me"}

// rebindingServices answer with an address taken from the name or switch
// between two addresses per query (DNS rebinding); any name under them is
// a way to reach an internal host past a name check.
var rebindingServices = []string{".rbndr.us", ".1u.ms", ".localtest.me", ".lvh.me", ".localhost", ".vcap.me", ".lacolhost.com"}

// embeddedAddr finds the address a wildcard-DNS name encodes: the last
// four dotted labels (a.10.0.0.1.nip.io), a dashed label
// (app-10-0-0-1.sslip.io) or a hex label (0a000001.nip.io).
func embeddedAddr(name string) (netip.Addr, bool) {
	labels := strings.Split(name, ".")
	if len(labels) >= 4 {
		if a, ok := parseLooseIPv4(strings.Join(labels[len(labels)-4:], ".")); ok {
			return a, true
		}
	}
	last := labels[len(labels)-1]
	if parts := strings.Split(last, "-"); len(parts) >= 4 {
		if a, ok := parseLooseIPv4(strings.Join(parts[len(parts)-4:], ".")); ok {
			return a, true
		}
	}
	if len(last) == 8 {
		if a, ok := parseLooseIPv4("0x" + last); ok {
			return a, true
		}
	}
	return parseLooseIPv4(name)
}

func internalHost(hostport string) bool {
	host := hostport
	if strings.HasPrefix(host, "[") {
		if j := strings.IndexByte(host, ']'); j > 0 {
			host = host[1:j]
		}
	} else if j := strings.LastIndexByte(host, ':'); j >= 0 && strings.Count(host, ":") == 1 {
		host = host[:j]
	}
	host = strings.TrimSuffix(host, ".")
	if k := strings.IndexByte(host, '%'); k >= 0 {
		host = host[:k] // IPv6 zone
	}
	switch host {
	case "localhost", "localhost.localdomain", "metadata.google.internal", "metadata",
		"instance-data", "metadata.azure.com", "kubernetes.default.svc", "0",
		"localtest.me", "lvh.me", "vcap.me", "lacolhost.com", "ip6-localhost", "ip6-loopback",
		"host.docker.internal", "gateway.docker.internal", "host.containers.internal":
		return true
	}
	for _, suf := range rebindingServices {
		if strings.HasSuffix(host, suf) {
			return true
		}
	}
	for _, suf := range rebindingSuffixes {
		if strings.HasSuffix(host, suf) {
			// 127.0.0.1.nip.io resolves to the embedded address.
			if a, ok := embeddedAddr(strings.TrimSuffix(host, suf)); ok {
				return internalAddr(a)
			}
			return false
		}
	}
	if !looksNumericHost(host) {
		return false
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return internalAddr(a.Unmap())
	}
	if a, ok := parseLooseIPv4(host); ok {
		return internalAddr(a)
	}
	return false
}

// looksNumericHost is a cheap filter before address parsing: IP literals
// in any notation use only hex digits, 'x', '.' and ':'.
func looksNumericHost(h string) bool {
	if h == "" {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c == 'x' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

func internalAddr(a netip.Addr) bool {
	if a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsUnspecified() ||
		a.IsLinkLocalMulticast() || a.IsInterfaceLocalMulticast() {
		return true
	}
	if a.Is4() {
		b := a.As4()
		// 100.64.0.0/10 carrier-grade NAT and 0.0.0.0/8.
		return b[0] == 100 && b[1]&0xc0 == 64 || b[0] == 0
	}
	// fd00:ec2::254 is inside fc00::/7 already (IsPrivate).
	return false
}

// parseLooseIPv4 accepts what inet_aton accepts: 1-4 parts, each decimal,
// 0x-hex or 0-octal, the last part filling the remaining bytes.
func parseLooseIPv4(s string) (netip.Addr, bool) {
	if s == "" || len(s) > 40 {
		return netip.Addr{}, false
	}
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	vals := make([]uint64, len(parts))
	for i, p := range parts {
		if p == "" {
			return netip.Addr{}, false
		}
		base := 10
		switch {
		case strings.HasPrefix(p, "0x"):
			base, p = 16, p[2:]
		case len(p) > 1 && p[0] == '0':
			base, p = 8, p[1:]
		}
		v, err := strconv.ParseUint(p, base, 32)
		if err != nil {
			return netip.Addr{}, false
		}
		vals[i] = v
	}
	var ip uint64
	last := len(vals) - 1
	for i := 0; i < last; i++ {
		if vals[i] > 255 {
			return netip.Addr{}, false
		}
		ip |= vals[i] << (24 - 8*uint(i))
	}
	if vals[last] >= 1<<(8*uint(4-last)) {
		return netip.Addr{}, false
	}
	ip |= vals[last]
	return netip.AddrFrom4([4]byte{byte(ip >> 24), byte(ip >> 16), byte(ip >> 8), byte(ip)}), true
}

// Log4j lookup obfuscations collapse to what Log4j itself would produce:
// ${lower:J} -> j, ${::-j} and ${env:NONE:-j} -> j (the default), and an
// unresolvable lookup without default -> "".
var (
	reLookupDefault = regexp.MustCompile(`\$\{[^${}]*?:-([^${}]*)\}`)
	reLookupCase    = regexp.MustCompile(`\$\{(?:lower|upper):([^${}]*)\}`)
	reLookupDate    = regexp.MustCompile(`\$\{date:'([^'${}]*)'\}`)
	reLookupEmpty   = regexp.MustCompile(`\$\{(?:env|sys|ctx|main|bundle|k8s|docker|java|spring|web|log4j|marker|map|sd|event|base64):[^${}]*\}`)
	reJNDI          = regexp.MustCompile(`\$\{\s*jndi\s*:`)
)

const maxLookupPasses = 8

func checkJNDI(_ string, canon []byte) bool {
	s := string(canon)
	if reJNDI.MatchString(s) {
		return true
	}
	for i := 0; i < maxLookupPasses; i++ {
		n := reLookupDefault.ReplaceAllString(s, "$1")
		n = reLookupCase.ReplaceAllStringFunc(n, func(m string) string {
			// Case lookups change case like Java does: ${upper:ı} is "I".
			sub := reLookupCase.FindStringSubmatch(m)
			return strings.ToLower(strings.ToUpper(sub[1]))
		})
		n = reLookupDate.ReplaceAllString(n, "$1")
		if n == s {
			n = reLookupEmpty.ReplaceAllString(n, "")
			if n == s {
				break
			}
		}
		s = n
		if reJNDI.MatchString(s) {
			return true
		}
	}
	return false
}

func headerNameIs(name, want string) bool {
	// want is lower-case ASCII. An ASCII name without blanks at its ends
	// is its own TrimSpace and folds byte for byte: compared here,
	// without the calls (the request checks ask this of every header).
	if n := len(name); n > 0 && name[0] > ' ' && name[n-1] > ' ' && isASCII(name) {
		return n == len(want) && asciifold.HasPrefix(name, want)
	}
	return strings.EqualFold(strings.TrimSpace(name), want)
}

func checkCLTE(req *call.Request, hx *headerIndex, _ *Config) (string, string, bool) {
	if hx != nil {
		// The walk kept the last value of each.
		cl, te := hx.pos[hkContentLength], hx.pos[hkTransferEncoding]
		if cl == 0 || te == 0 {
			return "", "", false
		}
		return "header:Transfer-Encoding", "Content-Length: " + req.Headers[last(cl)].Value + ", Transfer-Encoding: " + req.Headers[last(te)].Value, true
	}
	var cl, te string
	var hasCL, hasTE bool
	for _, h := range req.Headers {
		switch {
		case headerNameIs(h.Name, "content-length"):
			cl, hasCL = h.Value, true
		case headerNameIs(h.Name, "transfer-encoding"):
			te, hasTE = h.Value, true
		}
	}
	if hasCL && hasTE {
		return "header:Transfer-Encoding", "Content-Length: " + cl + ", Transfer-Encoding: " + te, true
	}
	return "", "", false
}

func checkMultipleCL(req *call.Request, hx *headerIndex, _ *Config) (string, string, bool) {
	var vals []string
	if hx != nil {
		for m := hx.pos[hkContentLength]; m != 0; m &= m - 1 {
			vals = append(vals, strings.Split(req.Headers[first(m)].Value, ",")...)
		}
	} else {
		for _, h := range req.Headers {
			if headerNameIs(h.Name, "content-length") {
				vals = append(vals, strings.Split(h.Value, ",")...)
			}
		}
	}
	for i := 1; i < len(vals); i++ {
		if strings.TrimSpace(vals[i]) != strings.TrimSpace(vals[0]) {
			return "header:Content-Length", strings.Join(vals, ", "), true
		}
	}
	return "", "", false
}

// checkTEObfuscated flags Transfer-Encoding values or names that front and
// back ends may parse differently: anything but a clean "chunked" list,
// repeated TE headers, padded names, and TE on HTTP/1.0.
func checkTEObfuscated(req *call.Request, hx *headerIndex, _ *Config) (string, string, bool) {
	n := 0
	if hx != nil {
		// A plain name has no blanks at its ends: no padded name here.
		te := hx.pos[hkTransferEncoding]
		for m := te | hx.teName; m != 0; m &= m - 1 {
			h := &req.Headers[first(m)]
			if te&(m&-m) == 0 {
				return "header:" + h.Name, h.Name + ": " + h.Value, true
			}
			n++
			if p, e, ok := teValueObfuscated(h.Value); ok {
				return p, e, ok
			}
		}
	} else {
		for _, h := range req.Headers {
			trimmed := strings.TrimSpace(h.Name)
			lname := lowerHeaderName(trimmed)
			if lname == "transfer_encoding" || (lname != "transfer-encoding" && strings.Contains(strings.ReplaceAll(lname, " ", ""), "transfer-encoding")) {
				return "header:" + h.Name, h.Name + ": " + h.Value, true
			}
			if lname != "transfer-encoding" {
				continue
			}
			n++
			if trimmed != h.Name {
				return "header:Transfer-Encoding", "padded header name " + strconv.Quote(h.Name), true
			}
			if p, e, ok := teValueObfuscated(h.Value); ok {
				return p, e, ok
			}
		}
	}
	if n > 1 {
		return "header:Transfer-Encoding", "repeated Transfer-Encoding", true
	}
	if n == 1 && req.Proto == "HTTP/1.0" {
		return "header:Transfer-Encoding", "Transfer-Encoding on HTTP/1.0", true
	}
	return "", "", false
}

// teValueObfuscated judges the value of one Transfer-Encoding header.
func teValueObfuscated(v string) (string, string, bool) {
	if strings.ContainsAny(v, "\t\r\n\x00\x0b\x0c") || v != strings.TrimSpace(v) {
		return "header:Transfer-Encoding", strconv.Quote(v), true
	}
	for _, tok := range strings.Split(strings.ToLower(v), ",") {
		switch strings.TrimSpace(tok) {
		case "chunked", "gzip", "deflate", "compress", "identity":
		default:
			return "header:Transfer-Encoding", strconv.Quote(v), true
		}
	}
	if !strings.HasSuffix(strings.ToLower(strings.TrimSpace(v)), "chunked") {
		return "header:Transfer-Encoding", strconv.Quote(v), true
	}
	if v != "chunked" && strings.EqualFold(v, "chunked") {
		return "header:Transfer-Encoding", strconv.Quote(v), true
	}
	return "", "", false
}

func checkCLInvalid(req *call.Request, hx *headerIndex, _ *Config) (string, string, bool) {
	if hx != nil {
		// A plain name has no blanks at its ends: no padded name here.
		for m := hx.pos[hkContentLength]; m != 0; m &= m - 1 {
			if p, e, ok := clValueInvalid(req.Headers[first(m)].Value); ok {
				return p, e, ok
			}
		}
		return "", "", false
	}
	for _, h := range req.Headers {
		if !headerNameIs(h.Name, "content-length") {
			continue
		}
		if strings.TrimSpace(h.Name) != h.Name {
			return "header:Content-Length", "padded header name " + strconv.Quote(h.Name), true
		}
		if p, e, ok := clValueInvalid(h.Value); ok {
			return p, e, ok
		}
	}
	return "", "", false
}

// clValueInvalid judges the value of one Content-Length header.
func clValueInvalid(raw string) (string, string, bool) {
	v := strings.TrimSpace(raw)
	if v == "" || len(v) > 19 {
		return "header:Content-Length", strconv.Quote(raw), true
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			if v[i] == ',' {
				break // list form, judged by checkMultipleCL
			}
			return "header:Content-Length", strconv.Quote(raw), true
		}
	}
	return "", "", false
}

func checkOversizedHeader(req *call.Request, hx *headerIndex, cfg *Config) (string, string, bool) {
	if hx != nil && hx.maxValue <= cfg.MaxHeaderValueBytes && len(req.Headers) <= cfg.MaxHeaderCount && hx.total <= cfg.MaxHeaderBytes {
		return "", "", false // the walk below finds nothing
	}
	total := 0
	for _, h := range req.Headers {
		l := len(h.Name) + len(h.Value)
		total += l
		if len(h.Value) > cfg.MaxHeaderValueBytes {
			return "header:" + h.Name, strconv.Itoa(len(h.Value)) + " bytes", true
		}
	}
	if len(req.Headers) > cfg.MaxHeaderCount {
		return "headers", strconv.Itoa(len(req.Headers)) + " headers", true
	}
	if total > cfg.MaxHeaderBytes {
		return "headers", strconv.Itoa(total) + " header bytes", true
	}
	return "", "", false
}

// headerPunct drops the separators header-name spellings vary in
// (built once: a Replacer per call cost 9 KB and 2 µs per request).
var headerPunct = strings.NewReplacer("-", "", "_", "", ".", "")

// uploadNames yields the file names a request uploads: the values of
// file-name headers (X-Filename, X_Filename, X-File-Name...) and the
// filename parameters of a multipart body.
func uploadNames(req *call.Request, hx *headerIndex, yield func(part, name string) bool) {
	fileHeader := func(h *call.Header) bool {
		n := headerPunct.Replace(strings.ToLower(strings.TrimSpace(h.Name)))
		return !(strings.HasSuffix(n, "filename") || n == "xfile") || yield("header:"+h.Name, h.Value)
	}
	if hx != nil {
		for m := hx.fileName; m != 0; m &= m - 1 {
			if !fileHeader(&req.Headers[first(m)]) {
				return
			}
		}
	} else {
		for i := range req.Headers {
			if !asciifold.Contains(req.Headers[i].Name, "file") {
				continue // the common case: no allocation per header
			}
			if !fileHeader(&req.Headers[i]) {
				return
			}
		}
	}
	mt := strings.ToLower(hdrGet(req, hx, hkContentType, "Content-Type"))
	if !strings.HasPrefix(mt, "multipart/") {
		return
	}
	body := req.Body
	for {
		i := indexFold(body, "filename")
		if i < 0 {
			return
		}
		body = body[i+len("filename"):]
		v := bytes.TrimLeft(body, " \t*")
		if len(v) == 0 || v[0] != '=' {
			continue
		}
		v = bytes.TrimLeft(v[1:], " \t")
		end := bytes.IndexAny(v, ";\r\n")
		if len(v) > 0 && v[0] == '"' {
			v = v[1:]
			end = bytes.IndexAny(v, "\"\r\n")
		}
		if end < 0 {
			end = len(v)
		}
		if !yield("multipart:filename", string(v[:end])) {
			return
		}
	}
}

func indexFold(b []byte, lower string) int {
	for i := 0; i+len(lower) <= len(b); i++ {
		if b[i]|0x20 == lower[0] && bytes.EqualFold(b[i:i+len(lower)], []byte(lower)) {
			return i
		}
	}
	return -1
}

// scriptExt reports whether a file name ends in one of exts once the
// trailing dots, blanks and NULs that Windows and some servers strip are
// removed (a.jsp.. is saved as a.jsp).
func scriptExt(name string, exts []string) bool {
	n := strings.ToLower(strings.TrimRight(strings.ReplaceAll(name, " ", ""), ". \t\x00"))
	if i := strings.IndexAny(n, "\x00;"); i >= 0 {
		n = n[:i] // a.jsp%00.png, a.jsp;.png
	}
	for _, e := range exts {
		if strings.HasSuffix(n, e) {
			return true
		}
	}
	return false
}

var jspExts = []string{".jsp", ".jspx", ".jspf", ".jsw", ".jsv", ".jspa", ".jhtml"}
var phpExts = []string{".php", ".phtml", ".php3", ".php4", ".php5", ".php6", ".php7", ".php8", ".phps", ".pht", ".phar", ".phpt", ".pgif", ".phtm", ".inc", ".htaccess", ".user.ini"}

// phpSessionFile matches PHP session file names (sess_ and a session id):
// uploading one plants a serialized session.
func phpSessionFile(name string) bool {
	n := strings.ToLower(name)
	if i := strings.LastIndexAny(n, `/\`); i >= 0 {
		n = n[i+1:]
	}
	id, ok := strings.CutPrefix(n, "sess_")
	if !ok || len(id) < 16 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == ',' || c == '-') {
			return false
		}
	}
	return true
}

func uploadCheck(match func(string) bool) requestCheckFunc {
	return func(req *call.Request, hx *headerIndex, _ *Config) (string, string, bool) {
		var part, ev string
		uploadNames(req, hx, func(p, n string) bool {
			if match(n) {
				part, ev = p, n
				return false
			}
			return true
		})
		return part, ev, part != ""
	}
}

// phpCallees are the functions an attacker hides behind string pieces,
// casts or arrays: ("sys"."tem")('id'), [system][0](ls), (string)"exec"().
var phpCallees = []string{"system", "exec", "passthru", "popen", "procopen", "eval", "assert", "phpinfo", "readfile", "fopen", "include", "require", "unlink", "createfunction", "calluserfunc"}

// checkPHPDynamicCall squeezes the 80 bytes before each call parenthesis
// that follows a quote, ')' or ']' (dropping quotes, dots, brackets,
// blanks, casts, comments and array indexes) and looks for a function
// name that executes code at its end.
func checkPHPDynamicCall(_ string, canon []byte) bool {
	var sq [96]byte
	for i := 1; i < len(canon); i++ {
		if canon[i] != '(' {
			continue
		}
		j := i - 1
		for j > 0 && canon[j] == ' ' {
			j--
		}
		if c := canon[j]; c != ')' && c != ']' && c != '\'' && c != '"' {
			continue
		}
		n := 0
		inComment := false
		for k := j; k >= 0 && k > i-120 && n < len(sq); k-- {
			c := canon[k]
			switch {
			case inComment:
				if c == '/' && k+1 < len(canon) && canon[k+1] == '*' {
					inComment = false
				}
				continue
			case c == '/' && k > 0 && canon[k-1] == '*':
				inComment = true
				continue
			case c == '\'' || c == '"' || c == '.' || c == '(' || c == ')' || c == '[' || c == ']' || c == ' ' || c == '{' || c == '}' || c == '_' || c >= '0' && c <= '9' || c == '/' || c == '*':
				continue
			case c >= 'a' && c <= 'z':
				sq[n] = c
				n++
				continue
			}
			break
		}
		// sq holds the letters backwards.
		for _, f := range phpCallees {
			if n < len(f) {
				continue
			}
			ok := true
			for x := 0; x < len(f); x++ {
				if sq[x] != f[len(f)-1-x] {
					ok = false
					break
				}
			}
			if ok {
				return true
			}
		}
	}
	return false
}

// startTools are Unix tools whose names are not English words, and the
// prefix commands (time, nohup, sudo...) that run another one: a value
// starting with one of them is worth the command regex.
var startTools = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`ansible chef cscli pipx pip strace ltrace cpulimit flock base32 base64 bsdtar
		gcc g++ c89 c99 clang irb rmt python perl php lua tclsh jrunscript jjs ssh scp sftp rsync tftp telnet
		ncat netcat socat wget lwp aria2c nslookup whois traceroute nmap masscan crontab systemctl useradd
		adduser usermod chpasswd visudo pkexec doas umount chmod chown chattr setfacl pkill killall iptables
		nft ufw tcpdump gdb ldd objdump readelf xxd hexdump shred mkfifo mknod gawk nawk mawk egrep fgrep
		ifconfig netstat lsof whoami uname hostnamectl lsb_release dmesg printenv ulimit vdir chgrp vim
		kubectl podman crictl apt aptitude dpkg yum dnf rpm pacman zypper psql mysql sqlite redis mongosh
		openssl aa apparmor_parser setenforce getenforce sestatus unzip gunzip bzip 7z nohup busybox sudo
		chroot bash zsh ksh csh tcsh dash sh time env exec command builtin xargs timeout nice stdbuf`) {
		m[w] = true
	}
	return m
}()

func checkFirstWordCommand(_ string, canon []byte) bool {
	v := bytes.TrimLeft(canon, " \t\n")
	for _, p := range []string{"/usr/local/bin/", "/usr/bin/", "/usr/sbin/", "/bin/", "/sbin/"} {
		if bytes.HasPrefix(v, []byte(p)) {
			v = v[len(p):]
			break
		}
	}
	end := 0
	for end < len(v) && end < 32 {
		c := v[end]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == '+') {
			break
		}
		end++
	}
	w := string(v[:end])
	if i := strings.IndexByte(w, '-'); i > 0 {
		w = w[:i]
	}
	w = strings.TrimRight(w, "0123456789.")
	return w != "" && (startTools[w] || startTools[string(v[:end])])
}

// sessionParams are the session cookie names of common frameworks: in a
// URL or form sent from another site (or from no page at all) they plant
// a session id the attacker knows.
var sessionParams = map[string]bool{
	"_flask_session": true, "_rails_session": true, "meteor_login_token": true, "cakephp": true, "jwsession": true,
	"jservsession": true, "phpsession": true, "zend_session_id": true, "play_session": true, "wlsession": true,
	"session-token": true, "cfsid": true,
	"phpsessid": true, "jsessionid": true, "aspsessionid": true, "asp.net_sessionid": true, "sid": true,
	"connect.sid": true, "laravel_session": true, "next-auth.session-token": true, "__host-next-auth.session-token": true,
	"__secure-next-auth.session-token": true, "koa:sess": true, "koa.sess": true, "sails.sid": true, "shiny-token": true,
	"weblogicsession": true, "cftoken": true, "cfid": true, "session-id": true, "session_id": true, "sessionid": true,
	"sessid": true, "ci_session": true, "rack.session": true, "_session_id": true, "symfony": true, "express.sid": true,
}

func sessionParamIn(raw string) string {
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		name, _, _ := strings.Cut(pair, "=")
		n := strings.ToLower(decode(name, true, 2))
		if sessionParams[n] || strings.HasPrefix(n, "aspsessionid") {
			return name
		}
	}
	return ""
}

func checkSessionFixation(req *call.Request, hx *headerIndex, _ *Config) (string, string, bool) {
	name := sessionParamIn(req.RawQuery)
	if p := strings.ToLower(req.Path); name == "" && strings.Contains(p, ";jsessionid=") {
		name = "jsessionid"
	}
	ct := hdrGet(req, hx, hkContentType, "Content-Type")
	if name == "" && strings.HasPrefix(strings.ToLower(ct), "application/x-www-form-urlencoded") {
		name = sessionParamIn(string(req.Body))
	}
	if name == "" {
		name = multipartSessionField(req, ct)
	}
	if name == "" {
		return "", "", false
	}
	ref := hdrGet(req, hx, hkReferer, "Referer")
	if ref == "" {
		return "query-name:" + name, "session id without a referring page", true
	}
	host := strings.ToLower(hdrGet(req, hx, hkHost, "Host"))
	if h, _, ok := strings.Cut(host, ":"); ok {
		host = h
	}
	rh := strings.ToLower(ref)
	if i := strings.Index(rh, "://"); i >= 0 {
		rh = rh[i+3:]
	}
	if i := strings.IndexAny(rh, "/:?#"); i >= 0 {
		rh = rh[:i]
	}
	if host != "" && (rh == host || strings.HasSuffix(rh, "."+host) || strings.HasSuffix(host, "."+rh)) {
		return "", "", false
	}
	return "query-name:" + name, "session id sent from " + rh, true
}

var scannerNames = []string{"nikto", "sqlmap", "nmap", "masscan", "nessus", "acunetix", "w3af", "dirbuster", "gobuster",
	"wpscan", "zgrab", "nuclei", "havij", "arachni", "openvas", "netsparker", "jorgee", "zmeu", "morfeus", "whatweb",
	"fimap", "nstealth", "paros", "webinspect", "brutus", "grabber", "burpcollaborator", "commix", "wfuzz", "ffuf",
	"feroxbuster", "skipfish", "appscan", "qualys", "zap/", "owasp zap", "dirb/", "xsser", "bsqlbf", "sqlninja", "pangolin",
	"absinthe", "vega/", "jaeles", "httpx", "interactsh", "log4j-scan", "struts-pwn", "metis", "masscan-ng", "cgichk", "webshag"}

// scannerByFirst lists scannerNames by first byte: one pass over a User-Agent
// tests only the names starting with each byte (52 substring searches per
// request before; the Aho-Corasick automaton's start-byte prefilter costs
// more than that on a short value).
var scannerByFirst = func() (t [256][]string) {
	for _, n := range scannerNames {
		t[n[0]] = append(t[n[0]], n)
	}
	return t
}()

func containsScannerName(ua []byte) bool {
	for i, c := range ua {
		for _, n := range scannerByFirst[c] {
			if len(ua)-i >= len(n) && string(ua[i:i+len(n)]) == n {
				return true
			}
		}
	}
	return false
}

func checkScannerUA(req *call.Request, hx *headerIndex, _ *Config) (string, string, bool) {
	if hx != nil {
		for m := hx.pos[hkUserAgent]; m != 0; m &= m - 1 {
			if v := req.Headers[first(m)].Value; scannerUA(v) {
				return "header:User-Agent", v, true
			}
		}
		return "", "", false
	}
	for _, h := range req.Headers {
		if !headerNameIs(h.Name, "user-agent") {
			continue
		}
		if scannerUA(h.Value) {
			return "header:User-Agent", h.Value, true
		}
	}
	return "", "", false
}

// scannerUA reports whether strings.ToLower(ua) contains a scanner name.
// An ASCII value is lowered into a stack buffer (no allocation); any other
// goes through strings.ToLower, whose Unicode folding (the Kelvin sign
// lowers to 'k') the ASCII path would miss.
func scannerUA(ua string) bool {
	var buf [256]byte
	if len(ua) > len(buf) || !isASCII(ua) {
		return containsScannerName([]byte(strings.ToLower(ua)))
	}
	b := buf[:len(ua)]
	for i := 0; i < len(ua); i++ {
		c := ua[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b[i] = c
	}
	return containsScannerName(b)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

var reMultipartCharset = regexp.MustCompile(`(?i)content-type\s*:[^\r\n]*?charset\s*=\s*["']?([\w.:-]+)`)
var reCharsetField = regexp.MustCompile(`(?i)name\s*=\s*"?_charset_"?[^\r\n]*\r?\n(?:[^\r\n]+\r?\n)*\r?\n([^\r\n]*)`)

// checkMultipartCharset flags parts declaring a charset a filter may not
// decode (UTF-7, Shift-JIS, EUC...), and a _charset_ field with one.
func checkMultipartCharset(req *call.Request, hx *headerIndex, _ *Config) (string, string, bool) {
	if !strings.HasPrefix(strings.ToLower(hdrGet(req, hx, hkContentType, "Content-Type")), "multipart/") || len(req.Body) == 0 {
		return "", "", false
	}
	body := req.Body[:min(len(req.Body), 64<<10)]
	if indexFold(body, "charset") < 0 {
		return "", "", false
	}
	ok := func(cs string) bool {
		switch strings.ToLower(strings.TrimSpace(cs)) {
		case "utf-8", "utf8", "us-ascii", "ascii", "iso-8859-1", "iso-8859-15", "latin1", "windows-1252":
			return true
		}
		return false
	}
	for _, m := range reMultipartCharset.FindAllSubmatch(body, 32) {
		if !ok(string(m[1])) {
			return "multipart", "charset=" + string(m[1]), true
		}
	}
	if m := reCharsetField.FindSubmatch(body); m != nil && !ok(string(m[1])) {
		return "multipart:_charset_", string(m[1]), true
	}
	return "", "", false
}

var reContentType = regexp.MustCompile(`^[\w.+*-]+/[\w.+*-]+(?:\s*;\s*[\w.-]+=(?:"[^"\\]*"|[\w.+/:=-]+))*\s*;?\s*$`)
var reBadPartName = regexp.MustCompile(`(?i)content-disposition:[^\r\n]*?\b(?:file)?name\s*=\s*"[^"\r\n]*(?:[;=&]|\\")`)

// restrictedHeaders are request headers an API client never sends: WebDAV
// conditionals, httpoxy's Proxy, IIS Translate, back-end hints.
var restrictedHeaders = map[string]bool{"if": true, "lock-token": true, "proxy": true, "translate": true,
	"content-range": true, "back-end-server": true, "request-range": true, "x-http-method-override-2": false}

// checkProtocolPolicy enforces the request shape every API client keeps:
// a well-formed Content-Type with a known charset, no NUL in the query or
// headers, no restricted headers, sane multipart field names.
func checkProtocolPolicy(req *call.Request, hx *headerIndex, _ *Config) (string, string, bool) {
	if strings.Contains(req.RawQuery, "%00") || strings.IndexByte(req.RawQuery, 0) >= 0 {
		return "query", "NUL byte in the query", true
	}
	if p, ok := bodyNUL(req); ok {
		return p, "NUL byte in a " + p + " value", true
	}
	for i := range req.Headers {
		h := &req.Headers[i]
		var restricted, ct bool
		if hx != nil {
			restricted, ct = hx.restricted&(1<<i) != 0, hx.pos[hkContentType]&(1<<i) != 0
		} else {
			ln := lowerHeaderName(h.Name)
			restricted, ct = restrictedHeaders[ln], ln == "content-type"
		}
		if restricted {
			return "header:" + h.Name, "restricted header " + h.Name, true
		}
		if strings.Contains(h.Value, "%00") || strings.IndexByte(h.Value, 0) >= 0 {
			return "header:" + h.Name, "NUL byte in a header", true
		}
		if !ct {
			continue
		}
		if p, e, ok := contentTypePolicy(req, h.Value); ok {
			return p, e, ok
		}
	}
	return "", "", false
}

// bodyNUL reports a NUL byte in a JSON string (\u0000) or a form value
// (%00) of the body: text an API receives never holds one, and C-based
// back ends (file APIs, PHP) cut the string there (the "file.php%00.png"
// extension bypass). Only the decoded value scan would see it otherwise,
// and that drops NULs before matching.
func bodyNUL(req *call.Request) (string, bool) {
	if len(req.Body) < 3 || bytes.IndexByte(req.Body, '0') < 0 {
		return "", false
	}
	mt := req.Headers.Get("Content-Type")
	if i := strings.IndexByte(mt, ';'); i >= 0 {
		mt = mt[:i]
	}
	mt = strings.TrimSpace(mt)
	switch {
	case strings.EqualFold(mt, "application/json") || len(mt) > 5 && strings.EqualFold(mt[len(mt)-5:], "+json"):
		return "json", bytes.Contains(req.Body, []byte(`\u0000`))
	case strings.EqualFold(mt, "application/x-www-form-urlencoded"):
		return "form", bytes.Contains(req.Body, []byte("%00"))
	}
	return "", false
}

// contentTypePolicy judges one Content-Type header of req.
func contentTypePolicy(req *call.Request, raw string) (string, string, bool) {
	v := strings.TrimSpace(raw)
	if !reContentType.MatchString(v) {
		return "header:Content-Type", v, true
	}
	lv := strings.ToLower(v)
	if i := strings.Index(lv, "boundary="); i >= 0 && (!strings.HasPrefix(lv, "multipart/") || strings.Contains(lv[i:], "/")) {
		// A boundary on a non-multipart type, or one that is itself a
		// media type, makes parsers disagree on the body's type.
		return "header:Content-Type", v, true
	}
	if i := strings.Index(strings.ToLower(v), "charset="); i >= 0 {
		cs := strings.Trim(strings.ToLower(v[i+len("charset="):]), `" `)
		if j := strings.IndexAny(cs, "; "); j >= 0 {
			cs = cs[:j]
		}
		switch strings.Trim(cs, `"`) {
		case "utf-8", "utf8", "iso-8859-1", "iso-8859-15", "windows-1252", "us-ascii":
		default:
			return "header:Content-Type", "charset " + cs, true
		}
	}
	if strings.HasPrefix(strings.ToLower(v), "multipart/") && len(req.Body) > 0 {
		if m := reBadPartName.Find(req.Body[:min(len(req.Body), 64<<10)]); m != nil {
			return "multipart", string(m), true
		}
	}
	return "", "", false
}

// checkMethodPolicy flags methods outside the REST policy, and request
// lines whose method is not an HTTP token at all. The REST policy: GET,
// HEAD, POST, PUT, PATCH, DELETE and OPTIONS; anything else (WebDAV,
// TRACE, CONNECT, made-up verbs) has no handler and probes the server.
// A switch, not a map: a lookup per request cost more.
func checkMethodPolicy(req *call.Request, _ *headerIndex, _ *Config) (string, string, bool) {
	switch req.Method {
	case "", "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS":
		return "", "", false
	}
	return "method", req.Method, true
}

// apiContentTypes are the body media types an API accepts; a suffix
// type (+json, +xml) and the binary upload types pass too.
var apiContentTypes = map[string]bool{
	"application/json": true, "application/x-www-form-urlencoded": true, "multipart/form-data": true,
	"multipart/related": true, "multipart/mixed": true, "text/xml": true, "application/xml": true,
	"application/graphql": true, "text/plain": true, "text/csv": true, "application/octet-stream": true,
	"application/x-ndjson": true, "application/jsonl": true, "application/grpc": true, "application/grpc-web": true,
	"application/protobuf": true, "application/x-protobuf": true, "application/jwt": true, "application/pdf": true,
	"application/zip": true, "application/gzip": true, "application/yaml": true, "application/x-yaml": true,
	"text/yaml": true, "text/markdown": true, "text/html": true, "application/cbor": true, "application/msgpack": true,
	"application/x-msgpack": true, "application/javascript": true, "application/sql": true, "text/calendar": true,
	"application/x-tar": true, "application/soap+xml": true, "application/csp-report": true,
}

// checkBodyWithoutContentType flags a body sent without a Content-Type:
// parsers then guess its type, and disagree.
func checkBodyWithoutContentType(req *call.Request, hx *headerIndex, _ *Config) (string, string, bool) {
	if len(req.Body) == 0 {
		return "", "", false
	}
	if hx != nil {
		if hx.pos[hkContentType] != 0 {
			return "", "", false
		}
		return "body", "body without a Content-Type", true
	}
	for _, h := range req.Headers {
		if headerNameIs(h.Name, "content-type") {
			return "", "", false
		}
	}
	return "body", "body without a Content-Type", true
}

// checkBodyContentType flags two Content-Types, two charsets and a media
// type no API consumes.
func checkBodyContentType(req *call.Request, hx *headerIndex, _ *Config) (string, string, bool) {
	ct := ""
	n := 0
	if hx != nil {
		if m := hx.pos[hkContentType]; m != 0 {
			ct, n = req.Headers[last(m)].Value, bits.OnesCount64(m)
		}
	} else {
		for _, h := range req.Headers {
			if headerNameIs(h.Name, "content-type") {
				ct = h.Value
				n++
			}
		}
	}
	if n > 1 {
		return "header:Content-Type", "more than one Content-Type", true
	}
	if n == 0 {
		return "", "", false
	}
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	lct := strings.ToLower(ct)
	if i := strings.Index(lct, "charset"); i >= 0 && strings.Contains(lct[i+7:], "charset") {
		return "header:Content-Type", ct, true
	}
	if apiContentTypes[mt] || strings.HasSuffix(mt, "+json") || strings.HasSuffix(mt, "+xml") ||
		strings.HasPrefix(mt, "image/") || strings.HasPrefix(mt, "audio/") || strings.HasPrefix(mt, "video/") ||
		strings.HasPrefix(mt, "application/vnd.") || strings.HasPrefix(mt, "font/") {
		return "", "", false
	}
	return "header:Content-Type", ct, true
}

// checkHeaderShape flags negotiation headers no client sends: an Accept
// naming a charset outside UTF-8/Latin-1, an Accept-Encoding list longer
// than any browser's.
func checkHeaderShape(req *call.Request, hx *headerIndex, _ *Config) (string, string, bool) {
	if hx != nil {
		ck, ae, ac := hx.pos[hkCookie], hx.pos[hkAcceptEncoding], hx.pos[hkAccept]
		for m := ck | ae | ac; m != 0; m &= m - 1 {
			bit := m & -m
			if p, e, ok := headerShape(&req.Headers[first(m)], ck&bit != 0, ae&bit != 0, ac&bit != 0); ok {
				return p, e, ok
			}
		}
		return "", "", false
	}
	for i := range req.Headers {
		h := &req.Headers[i]
		if p, e, ok := headerShape(h, headerNameIs(h.Name, "cookie"), headerNameIs(h.Name, "accept-encoding"), headerNameIs(h.Name, "accept")); ok {
			return p, e, ok
		}
	}
	return "", "", false
}

// headerShape judges one header, a Cookie, Accept-Encoding or Accept
// header as cookie, acceptEnc and accept say.
func headerShape(h *call.Header, cookie, acceptEnc, accept bool) (string, string, bool) {
	switch {
	case cookie:
		// RFC 2109 cookies ($Version, $Path) are obsolete; parsers
		// split their quoted values differently (cookie smuggling).
		if strings.HasPrefix(strings.ToLower(strings.TrimSpace(h.Value)), "$version") {
			return "header:Cookie", h.Value, true
		}
	case acceptEnc:
		if len(h.Value) > 100 {
			return "header:Accept-Encoding", h.Value, true
		}
	case accept:
		if isASCII(h.Value) && !asciifold.Contains(h.Value, "charset") {
			return "", "", false // nothing to judge (an ASCII value lowers byte for byte)
		}
		lv := strings.ToLower(h.Value)
		for {
			i := strings.Index(lv, "charset")
			if i < 0 {
				break
			}
			lv = lv[i+7:]
			cs := strings.TrimLeft(lv, " \t=\"")
			if j := strings.IndexAny(cs, "\";, "); j >= 0 {
				cs = cs[:j]
			}
			switch cs {
			case "utf-8", "iso-8859-1", "iso-8859-15", "windows-1252":
			default:
				return "header:Accept", h.Value, true
			}
		}
	}
	return "", "", false
}

// rfiParams are parameters that well-known PHP applications pass to
// include(): a URL there is a remote file include.
var rfiParams = map[string]bool{"mosconfig_absolute_path": true, "_conf[path]": true, "_server[document_root]": true,
	"path[docroot]": true, "config[root_dir]": true, "gallery_basedir": true, "appserv_root": true}

func checkRFIParam(req *call.Request, hx *headerIndex, _ *Config) (string, string, bool) {
	scan := func(raw string) (string, string, bool) {
		for raw != "" {
			var pair string
			pair, raw, _ = strings.Cut(raw, "&")
			name, val, _ := strings.Cut(pair, "=")
			if !rfiParams[strings.ToLower(decode(name, true, 2))] {
				continue
			}
			v := strings.ToLower(decode(val, true, 2))
			for _, p := range []string{"http://", "https://", "ftp://", "ftps://", "file://"} {
				if strings.HasPrefix(v, p) {
					return "query:" + name, v, true
				}
			}
		}
		return "", "", false
	}
	if p, v, ok := scan(req.RawQuery); ok {
		return p, v, true
	}
	if len(req.Body) > 0 && strings.HasPrefix(strings.ToLower(hdrGet(req, hx, hkContentType, "Content-Type")), "application/x-www-form-urlencoded") {
		return scan(string(req.Body[:min(len(req.Body), 64<<10)]))
	}
	return "", "", false
}

// activeTags are the HTML elements that run script, load content or
// restyle the page.
var activeTags = []string{"script", "iframe", "frame", "object", "embed", "applet", "form", "dialog", "style", "svg",
	"math", "meta", "link", "base", "img", "image", "input", "button", "textarea", "video", "audio", "body", "html",
	"details", "marquee", "isindex", "template", "import", "xml", "xss"}

// checkObfuscatedTag flags a '<' opening an active element whose name is
// broken up by blanks, slashes or NULs ("<f o r m", "<s/c/r/i/p/t"), which
// lenient parsers and filters read differently, and VML namespaced
// elements ("<v:vmlframe").
func checkObfuscatedTag(decoded string, _ []byte) bool {
	for i := 0; i < len(decoded); i++ {
		if decoded[i] != '<' {
			continue
		}
		j := i + 1
		for j < len(decoded) && (decoded[j] == ' ' || decoded[j] == '/' || decoded[j] == 0 || decoded[j] == '\t') {
			j++
		}
		if j+2 < len(decoded) && (decoded[j]|0x20) == 'v' && decoded[j+1] == ':' && isLetter(decoded[j+2]) {
			return true
		}
		var name [12]byte
		n, seps := 0, 0
		for ; j < len(decoded) && n < len(name); j++ {
			c := decoded[j]
			switch {
			case c|0x20 >= 'a' && c|0x20 <= 'z':
				name[n] = c | 0x20
				n++
				continue
			case (c == ' ' || c == '/' || c == 0 || c == '\t' || c == '\n') && n > 0:
				seps++
				continue
			}
			break
		}
		if seps == 0 || n < 3 {
			continue
		}
		w := string(name[:n])
		for _, t := range activeTags {
			if w == t || len(t) >= 4 && strings.HasPrefix(w, t) {
				return true
			}
		}
	}
	return false
}

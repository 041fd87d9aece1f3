package inventory

import (
	"encoding/json"
	"net/netip"
	"sort"
	"strings"
)

// sensitiveSet is a bit set of sensitive data kinds, cheap to OR on the hot
// path; names are produced only in snapshots.
type sensitiveSet uint16

const (
	sensEmail sensitiveSet = 1 << iota
	sensCreditCard
	sensSSN
	sensJWT
	sensPassword
	sensSecret
	sensPrivateIP
	sensPhone
	sensIBAN
	sensUKNINO
)

// sensitiveNames are the public names, in bit order.
var sensitiveNames = [...]string{"email", "credit-card", "us-ssn", "jwt", "password", "secret", "private-ip",
	"phone", "iban", "uk-nino"}

func (s sensitiveSet) names() []string {
	var out []string
	for i, n := range sensitiveNames {
		if s&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

func sensitiveFromNames(names []string) sensitiveSet {
	var s sensitiveSet
	for _, n := range names {
		for i, k := range sensitiveNames {
			if n == k {
				s |= 1 << i
			}
		}
	}
	return s
}

// sensitiveInKey flags field and parameter names that carry credentials.
func sensitiveInKey(k string) sensitiveSet {
	if len(k) > 64 {
		return 0
	}
	// Normalise on the stack: lower case, separators dropped, so "api_key",
	// "Api-Key" and "apiKey" compare equal without allocating.
	var buf [64]byte
	n := 0
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c == '-' || c == '_' {
			continue
		}
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[n] = c
		n++
	}
	lk := string(buf[:n])
	switch {
	case strings.Contains(lk, "password") || strings.Contains(lk, "passwd") || lk == "pwd" || lk == "pass":
		return sensPassword
	case strings.Contains(lk, "secret") || strings.Contains(lk, "apikey") || strings.Contains(lk, "privatekey") ||
		lk == "accesstoken" || lk == "refreshtoken" || lk == "idtoken" || lk == "token" || lk == "authtoken":
		return sensSecret
	}
	return 0
}

// sensitiveInValue classifies one string leaf.
func sensitiveInValue(v string) sensitiveSet {
	if len(v) < 7 || len(v) > 4096 {
		return 0
	}
	switch {
	case isEmail(v):
		return sensEmail
	case isSSN(v):
		return sensSSN
	case isCreditCard(v):
		return sensCreditCard
	case isJWT(v):
		return sensJWT
	case isPhone(v):
		return sensPhone
	case isIBAN(v):
		return sensIBAN
	case isUKNINO(v):
		return sensUKNINO
	}
	if len(v) <= 15 && v[0] >= '1' && v[0] <= '9' {
		if a, err := netip.ParseAddr(v); err == nil && a.Is4() && a.IsPrivate() {
			return sensPrivateIP
		}
	}
	return 0
}

// sensitiveInNumber classifies an integer leaf: card numbers are often sent
// as JSON numbers.
func sensitiveInNumber(s string) sensitiveSet {
	if len(s) >= 13 && len(s) <= 19 && isCreditCard(s) {
		return sensCreditCard
	}
	return 0
}

// isCreditCard accepts 13 to 19 digits, optionally grouped by spaces or
// dashes, with a known issuer prefix and a valid Luhn check digit. The Luhn
// check is what keeps order numbers and other long ids out.
func isCreditCard(v string) bool {
	var digits [19]byte
	n := 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c >= '0' && c <= '9':
			if n == len(digits) {
				return false
			}
			digits[n] = c - '0'
			n++
		case c == ' ' || c == '-':
		default:
			return false
		}
	}
	if n < 13 {
		return false
	}
	switch d := digits[0]; {
	case d == 3 && (digits[1] == 4 || digits[1] == 7 || digits[1] == 0 || digits[1] == 6 || digits[1] == 8):
	case d == 4, d == 5, d == 6, d == 2:
	default:
		return false
	}
	sum := 0
	for i := 0; i < n; i++ {
		d := int(digits[n-1-i])
		if i%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}

// isSSN matches a US social security number written AAA-GG-SSSS, with the
// ranges the SSA never issues excluded.
func isSSN(v string) bool {
	if len(v) != 11 || v[3] != '-' || v[6] != '-' {
		return false
	}
	for i := 0; i < 11; i++ {
		if i == 3 || i == 6 {
			continue
		}
		if v[i] < '0' || v[i] > '9' {
			return false
		}
	}
	area, group, serial := v[0:3], v[4:6], v[7:11]
	return area != "000" && area != "666" && area[0] != '9' && group != "00" && serial != "0000"
}

// isPhone matches the two shapes in which APIs return phone numbers: E.164
// ("+" then 8 to 15 digits, spaces, dashes, dots or parentheses between
// them) and the North American grouping "(555) 123-4567" / "555-123-4567" /
// "555.123.4567" with its separators. A bare run of digits is not a phone
// number here: ids, timestamps and amounts look the same.
func isPhone(v string) bool {
	if len(v) > 24 {
		return false
	}
	if v[0] == '+' {
		digits := 0
		for i := 1; i < len(v); i++ {
			switch c := v[i]; {
			case c >= '0' && c <= '9':
				digits++
			case c == ' ' || c == '-' || c == '.' || c == '(' || c == ')':
			default:
				return false
			}
		}
		return digits >= 8 && digits <= 15 && v[1] >= '1' && v[1] <= '9'
	}
	// North American: NXX NXX XXXX with one separator style.
	w := v
	if w[0] == '(' {
		if len(w) != 14 || w[4] != ')' || w[5] != ' ' {
			return false
		}
		w = w[1:4] + "-" + w[6:]
	}
	if len(w) != 12 || w[3] != w[7] || (w[3] != '-' && w[3] != '.' && w[3] != ' ') {
		return false
	}
	for i := 0; i < 12; i++ {
		if i == 3 || i == 7 {
			continue
		}
		if w[i] < '0' || w[i] > '9' {
			return false
		}
	}
	return w[0] >= '2' && w[4] >= '2'
}

// isIBAN matches an International Bank Account Number: a country code, two
// check digits and up to 30 alphanumerics (spaces every four allowed), with
// the ISO 13616 mod-97 check, which keeps random codes out.
func isIBAN(v string) bool {
	var b [34]byte
	n := 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == ' ' {
			continue
		}
		if n == len(b) {
			return false
		}
		b[n] = c
		n++
	}
	if n < 15 || b[0] < 'A' || b[0] > 'Z' || b[1] < 'A' || b[1] > 'Z' || b[2] < '0' || b[2] > '9' || b[3] < '0' || b[3] > '9' {
		return false
	}
	rem := 0
	for i := range n {
		c := b[(i+4)%n] // the first four characters move to the end
		switch {
		case c >= '0' && c <= '9':
			rem = (rem*10 + int(c-'0')) % 97
		case c >= 'A' && c <= 'Z':
			rem = (rem*100 + int(c-'A') + 10) % 97
		default:
			return false
		}
	}
	return rem == 1
}

// isUKNINO matches a UK National Insurance number, "AB123456C" or
// "AB 12 34 56 C", with the prefixes HMRC never allocates excluded.
func isUKNINO(v string) bool {
	var b [9]byte
	n := 0
	for i := 0; i < len(v); i++ {
		if v[i] == ' ' {
			continue
		}
		if n == len(b) {
			return false
		}
		b[n] = v[i]
		n++
	}
	if n != 9 {
		return false
	}
	for i := 2; i < 8; i++ {
		if b[i] < '0' || b[i] > '9' {
			return false
		}
	}
	bad := func(c byte) bool { return c < 'A' || c > 'Z' || strings.IndexByte("DFIQUV", c) >= 0 }
	if bad(b[0]) || bad(b[1]) || b[1] == 'O' || b[8] < 'A' || b[8] > 'D' {
		return false
	}
	switch string(b[:2]) {
	case "BG", "GB", "NK", "KN", "TN", "NT", "ZZ":
		return false
	}
	return true
}

// isJWT matches a compact JWS: three base64url parts, the header being a
// JSON object ("eyJ" is the encoding of `{"`).
func isJWT(v string) bool {
	if !strings.HasPrefix(v, "eyJ") || len(v) < 20 {
		return false
	}
	parts := 1
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '.':
			parts++
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '=':
		default:
			return false
		}
	}
	return parts == 3
}

// SensitiveInJSON returns the sensitive data kinds in one JSON body's keys
// and leaves (the inventory's own classification), or nil when the body is
// not one JSON value. The behavioural model uses it to notice an endpoint
// that starts returning a kind it never returned.
func SensitiveInJSON(body []byte, maxNodes int) []string {
	v, ok := decodeJSON(body)
	if !ok {
		return nil
	}
	w := sensitiveWalk{lim: inferLimits{maxDepth: 16, maxProps: 256, maxNodes: maxNodes}}
	w.walk(v, 0)
	return w.sensitive.names()
}

// sensitiveWalk is inferResult.infer without the schema: it visits the
// same nodes in the same order under the same bounds and collects the
// same sensitive kinds, but builds no Schema and formats no string (the
// behavioural model scans responses for sensitive data only).
type sensitiveWalk struct {
	lim       inferLimits
	nodes     int
	sensitive sensitiveSet
}

func (w *sensitiveWalk) walk(v any, depth int) {
	w.nodes++
	switch x := v.(type) {
	case json.Number:
		if s := string(x); !strings.ContainsAny(s, ".eE") {
			w.sensitive |= sensitiveInNumber(s)
		}
	case string:
		w.sensitive |= sensitiveInValue(x)
	case []any:
		if depth >= w.lim.maxDepth || w.nodes >= w.lim.maxNodes {
			return
		}
		for _, e := range x {
			if w.nodes >= w.lim.maxNodes {
				break
			}
			w.walk(e, depth+1)
		}
	case map[string]any:
		if len(x) == 0 || depth >= w.lim.maxDepth || w.nodes >= w.lim.maxNodes {
			return
		}
		var buf [32]string
		keys := buf[:0]
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if len(keys) > w.lim.maxProps {
			keys = keys[:w.lim.maxProps]
		}
		for _, k := range keys {
			if w.nodes >= w.lim.maxNodes {
				break
			}
			w.sensitive |= sensitiveInKey(k)
			w.walk(x[k], depth+1)
		}
	}
}

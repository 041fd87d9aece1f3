package detect

import (
	"math/bits"
	"strings"

	"github.com/apiwarden/apiwarden/apimodel/asciifold"
	"github.com/apiwarden/apiwarden/apimodel/call"
)

// The request checks each asked the same questions of every header
// (which name is it, case-folded, trimmed, looked up in a map): about 25
// walks per request, a quarter of the per-call pipeline (issue #8). The
// scan now walks the headers once into a headerIndex and the checks read
// bit masks of header positions instead.
//
// The index only stands in for the walks when their three name
// comparisons agree: headerNameIs and lowerHeaderName trim blanks and fold
// Unicode, Headers.Get folds Unicode without trimming. For an ASCII name
// with no byte <= ' ' at its ends all three are a byte-wise ASCII fold.
// A request with any other name, or with more headers than the masks
// have bits, gets no index and its checks walk the headers as before.

// maxIndexedHeaders is the number of headers an index holds (one bit of a
// uint64 mask each).
const maxIndexedHeaders = 64

// hdrKey numbers the header names the checks look for by position.
type hdrKey uint8

const (
	hkContentLength hdrKey = iota
	hkTransferEncoding
	hkContentType
	hkHost
	hkUserAgent
	hkCookie
	hkAuthorization
	hkProxyAuthorization
	hkReferer
	hkAccept
	hkAcceptEncoding
	numHdrKeys
)

var hdrKeyNames = [numHdrKeys]string{
	hkContentLength: "content-length", hkTransferEncoding: "transfer-encoding", hkContentType: "content-type",
	hkHost: "host", hkUserAgent: "user-agent", hkCookie: "cookie", hkAuthorization: "authorization",
	hkProxyAuthorization: "proxy-authorization", hkReferer: "referer", hkAccept: "accept",
	hkAcceptEncoding: "accept-encoding",
}

// hdrClass is what the checks need of a lower-case header name.
type hdrClass struct {
	key                     hdrKey // numHdrKeys: none
	skip, known, restricted bool
}

// hdrClasses holds every name a check asks about; any other name has
// the zero properties.
var hdrClasses = func() map[string]hdrClass {
	m := map[string]hdrClass{}
	get := func(n string) hdrClass {
		if c, ok := m[n]; ok {
			return c
		}
		return hdrClass{key: numHdrKeys}
	}
	for k, n := range hdrKeyNames {
		c := get(n)
		c.key = hdrKey(k)
		m[n] = c
	}
	for n, v := range skipHeaders {
		c := get(n)
		c.skip = v
		m[n] = c
	}
	for n, v := range knownHeaders {
		c := get(n)
		c.known = v
		m[n] = c
	}
	for n, v := range restrictedHeaders {
		c := get(n)
		c.restricted = v
		m[n] = c
	}
	return m
}()

// maxClassName is the longest name in hdrClasses: a longer name has the
// zero properties without a lookup.
var maxClassName = func() int {
	n := 0
	for k := range hdrClasses {
		n = max(n, len(k))
	}
	return n
}()

// headerIndex is what one walk over a request's headers records. Bit i
// of a mask stands for req.Headers[i].
type headerIndex struct {
	// pos holds the positions of each name of hdrKeyNames.
	pos [numHdrKeys]uint64
	// skip, known and restricted: names skipHeaders, knownHeaders and
	// restrictedHeaders hold.
	skip, known, restricted uint64
	// teName: names checkTEObfuscated takes for a Transfer-Encoding
	// spelling (transfer_encoding, x-transfer-encoding, "transfer-encod ing").
	teName uint64
	// fileName: names holding "file" in any case (uploadNames).
	fileName uint64
	// jwtValue: values starting with "eyJ" (jwtCandidates).
	jwtValue uint64
	// total is the sum of name and value lengths, maxValue the longest
	// value (checkOversizedHeader).
	total, maxValue int
}

// plainHeaderName reports whether the index can stand in for the name
// comparisons on name (see above): ASCII, not empty, no blank or control
// byte at either end (every byte TrimSpace drops is <= ' ').
func plainHeaderName(name string) bool {
	n := len(name)
	return n > 0 && name[0] > ' ' && name[n-1] > ' ' && isASCII(name)
}

// build indexes hs; it returns false (and the checks must walk hs) when
// hs has more than maxIndexedHeaders headers or a name that is not plain.
func (x *headerIndex) build(hs call.Headers) bool {
	if len(hs) > maxIndexedHeaders {
		return false
	}
	*x = headerIndex{}
	var buf [64]byte
	for i := range hs {
		h := &hs[i]
		name := h.Name
		if !plainHeaderName(name) {
			return false
		}
		bit := uint64(1) << i
		x.total += len(name) + len(h.Value)
		x.maxValue = max(x.maxValue, len(h.Value))
		if strings.HasPrefix(h.Value, "eyJ") {
			x.jwtValue |= bit
		}
		if asciifold.Contains(name, "file") {
			x.fileName |= bit
		}
		c := hdrClass{key: numHdrKeys}
		if len(name) <= maxClassName && len(name) <= len(buf) {
			b := buf[:len(name)]
			for j := 0; j < len(name); j++ {
				ch := name[j]
				if 'A' <= ch && ch <= 'Z' {
					ch += 'a' - 'A'
				}
				b[j] = ch
			}
			if hc, ok := hdrClasses[string(b)]; ok {
				c = hc
			}
		}
		if c.key < numHdrKeys {
			x.pos[c.key] |= bit
		}
		if c.skip {
			x.skip |= bit
		}
		if c.known {
			x.known |= bit
		}
		if c.restricted {
			x.restricted |= bit
		}
		if c.key != hkTransferEncoding && teSpelling(name) {
			x.teName |= bit
		}
	}
	return true
}

// teSpelling reports, for a plain name that is not "transfer-encoding" in
// some case, what checkTEObfuscated asks of its lower-case form ln:
// ln == "transfer_encoding" or ln without spaces contains
// "transfer-encoding".
func teSpelling(name string) bool {
	const te = "transfer-encoding"
	if len(name) < len(te) {
		return false
	}
	if len(name) == len(te) && strings.EqualFold(name, "transfer_encoding") {
		return true
	}
	// A match in the name without its spaces starts at a byte that is not
	// a space and skips the spaces inside.
	for i := 0; i+len(te) <= len(name); i++ {
		if name[i]|0x20 != 't' {
			continue
		}
		j, k := i, 0
		for j < len(name) && k < len(te) {
			c := name[j]
			j++
			if c == ' ' {
				continue
			}
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != te[k] {
				break
			}
			k++
		}
		if k == len(te) {
			return true
		}
	}
	return false
}

// first returns the position of the first header of mask m (m != 0).
func first(m uint64) int { return bits.TrailingZeros64(m) }

// last returns the position of the last header of mask m (m != 0).
func last(m uint64) int { return 63 - bits.LeadingZeros64(m) }

// hdrGet is req.Headers.Get(name) for the name of key k, read from the
// index when there is one.
func hdrGet(req *call.Request, hx *headerIndex, k hdrKey, name string) string {
	if hx == nil {
		return req.Headers.Get(name)
	}
	if m := hx.pos[k]; m != 0 {
		return req.Headers[first(m)].Value
	}
	return ""
}

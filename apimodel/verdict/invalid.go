package verdict

import (
	"bytes"

	"github.com/apiwarden/apiwarden/apimodel/detect"
)

// InvalidRequest turns a request head the HTTP parser rejected into a
// finding. A head that starts with a well-formed request line but whose
// framing or headers the parser refuses to guess at (two Content-Lengths,
// an obfuscated Transfer-Encoding, a space before a colon) is what request
// smuggling sends: servers and proxies disagree on where it ends. The agent
// cannot judge its body, the server may still act on it, so it is
// cut-grade. Anything that does not even start like an HTTP/1 request
// (ciphertext, other protocols) is not a finding: ok is false.
func InvalidRequest(head []byte) (f detect.Finding, ok bool) {
	line, _, _ := bytes.Cut(head, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	method, rest, ok1 := bytes.Cut(line, []byte(" "))
	target, proto, ok2 := bytes.Cut(rest, []byte(" "))
	if !ok1 || !ok2 || len(method) == 0 || len(method) > 16 || len(target) == 0 {
		return detect.Finding{}, false
	}
	for _, c := range method {
		if c < 'A' || c > 'Z' {
			return detect.Finding{}, false
		}
	}
	if !bytes.Equal(proto, []byte("HTTP/1.1")) && !bytes.Equal(proto, []byte("HTTP/1.0")) {
		return detect.Finding{}, false
	}
	return detect.Finding{
		RuleID: "http-invalid-framing", Class: "smuggling", Severity: detect.SeverityHigh, Confidence: 90,
		Part: "head", Excerpt: string(line[:min(len(line), 120)]),
		Description: "request head the parser rejects (ambiguous framing or header syntax)",
	}, true
}

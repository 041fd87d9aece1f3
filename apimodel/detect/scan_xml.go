package detect

import (
	"bytes"
)

// maxXMLNodes bounds the text nodes of one XML body inspected one by one.
const maxXMLNodes = 256

// xmlText inspects the text nodes of an XML body (element content and
// CDATA sections, entities decoded) one by one, as form values: a value
// in <id>1' or '1'='1</id> is a field to the application just as id=...
// is, and rules anchored to a value's start or judging it alone cannot
// see it inside the whole document. Markup, comments, processing
// instructions and the DOCTYPE are skipped (the whole body is still
// inspected as text afterwards, for XXE and friends).
func (s *scan) xmlText(body []byte) {
	fk := mustBit(KindForm)
	var tag string
	n := 0
	for i := 0; i < len(body) && n < maxXMLNodes; {
		if body[i] != '<' {
			j := bytes.IndexByte(body[i:], '<')
			if j < 0 {
				j = len(body) - i
			}
			// Trimmed as bytes: the indentation between elements of a
			// pretty-printed document is a text node too, and is not
			// worth a string.
			if t := bytes.TrimSpace(body[i : i+j]); len(t) > 0 {
				n++
				if !s.value(&partRef{kind: fk, prefix: "xml:", name: tag}, string(t), false) {
					return
				}
			}
			i += j
			continue
		}
		rest := body[i:]
		switch {
		case bytes.HasPrefix(rest, []byte("<![CDATA[")):
			end := bytes.Index(rest, []byte("]]>"))
			if end < 0 {
				end = len(rest)
			}
			if t := bytes.TrimSpace(rest[9:end]); len(t) > 0 {
				n++
				if !s.value(&partRef{kind: fk, prefix: "xml:", name: tag}, string(t), false) {
					return
				}
			}
			i += min(len(rest), end+3)
			continue
		case bytes.HasPrefix(rest, []byte("<!--")):
			end := bytes.Index(rest, []byte("-->"))
			if end < 0 {
				return
			}
			i += end + 3
			continue
		}
		end := bytes.IndexByte(rest, '>')
		if end < 0 {
			return
		}
		if k := rest[1:end]; len(k) > 0 && k[0] != '/' && k[0] != '?' && k[0] != '!' {
			if sp := bytes.IndexAny(k, " \t\r\n/"); sp >= 0 {
				k = k[:sp]
			}
			tag = string(k)
		}
		i += end + 1
	}
}

package detect

import (
	"strings"
	"testing"

	"github.com/apiwarden/apiwarden/apimodel/call"
)

// FuzzInspect feeds arbitrary paths, queries, header values and bodies of
// each content type; Inspect must never panic and must keep its bounds.
func FuzzInspect(f *testing.F) {
	f.Add("/a/../b", "q=%253Cscript%253E&u[$ne]=1", "${jndi:ldap://x}", `{"a":[{"b":"\u003c"}]}`, uint8(0))
	f.Add("/", "a=%u00", "\r\n", "--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nv\r\n--b--", uint8(2))
	f.Add("/x", "%", "%%", "<!DOCTYPE a [<!ENTITY x SYSTEM \"f\">]>", uint8(3))
	f.Add("/x", "a=&=&&", "", `{"a":"\ud800"}`, uint8(0))
	d := newDetector(f, Config{MaxInspectBytes: 4096, MaxParts: 64, MaxJSONDepth: 8})
	cts := []string{jsonCT, formCT, "multipart/form-data; boundary=b", "application/xml", ""}
	f.Fuzz(func(t *testing.T, path, query, header, body string, ct uint8) {
		req := &call.Request{Method: "POST", Path: path, RawQuery: query, Proto: "HTTP/1.1", Body: []byte(body),
			Headers: call.Headers{{Name: "User-Agent", Value: header}, {Name: "Content-Type", Value: cts[int(ct)%len(cts)]},
				{Name: "Cookie", Value: header}, {Name: "Transfer-Encoding", Value: header}, {Name: "Content-Length", Value: header}}}
		fs := d.Inspect(req, "svc")
		if len(fs) > DefaultMaxFindings {
			t.Fatalf("%d findings over the bound", len(fs))
		}
		for _, f := range fs {
			if strings.ContainsAny(f.Excerpt, "\r\n") || strings.ContainsAny(f.Part, "\r\n") {
				t.Fatalf("unescaped control characters in %+v", f)
			}
		}
	})
}

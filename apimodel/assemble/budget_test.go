package assemble

import (
	"strings"
	"testing"

	"github.com/apiwarden/apiwarden/apimodel/capture"
)

// skipped adds a chunk whose tail past copied bytes the kernel's copy
// budget counted without copying (capture.FlagSkipped).
func (v *conv) skipped(fromClient bool, data string, payload int) *conv {
	v.add(fromClient, data, capture.FlagSkipped)
	c := &v.chunks[len(v.chunks)-1]
	c.PayloadLen = uint32(payload)
	if fromClient {
		v.seqC += uint32(payload - len(data))
	} else {
		v.seqS += uint32(payload - len(data))
	}
	return v
}

// A body cut by the copy budget is a truncated body, not a broken call, and
// the connection's next call is parsed as usual.
func TestSkippedBodyIsTruncatedNotGap(t *testing.T) {
	a, calls := newAsm(Config{})
	big := "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n" + `{"a":"`
	v := newConv(cli, srv).handshake().
		add(true, req, 0).
		skipped(false, big, len(big)+2000). // head + prefix copied, 2000 skipped
		skipped(false, "", 100000-6-2000).  // the rest of the body: counted only
		add(true, req, 0).add(false, resp, 0).
		// A chunked body cannot be followed past a skip: that call ends
		// truncated and the next one is found again.
		add(true, req, 0).
		skipped(false, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\nxyz", 5000).
		add(true, req, 0).add(false, resp, 0).
		close()
	for _, c := range v.chunks {
		a.Add(c)
	}
	a.Flush()
	if len(*calls) != 4 {
		t.Fatalf("%d calls, want 4", len(*calls))
	}
	first := (*calls)[0]
	if first.Gap || first.Response == nil || !first.Response.BodyTruncated || first.Response.BodySize != 100000 ||
		!strings.HasPrefix(string(first.Response.Body), `{"a":"`) {
		t.Errorf("skipped body: gap %v resp %+v", first.Gap, first.Response)
	}
	if c := (*calls)[1]; c.Gap || c.Response == nil || string(c.Response.Body) != "ok" {
		t.Errorf("call after the skipped body: %+v", c)
	}
	if c := (*calls)[2]; c.Response == nil || !c.Response.BodyTruncated || c.Gap {
		t.Errorf("chunked skipped body: %+v", c.Response)
	}
	if c := (*calls)[3]; c.Response == nil || string(c.Response.Body) != "ok" {
		t.Errorf("call after the chunked skip: %+v", c)
	}
	if st := a.Stats(); st.Stream.Gaps != 0 {
		t.Errorf("stream gaps %d, want 0 (skips are not losses)", st.Stream.Gaps)
	}
}

package assemble

import (
	"log/slog"
	"testing"
	"time"

	"github.com/apiwarden/apiwarden/apimodel/call"
	"github.com/apiwarden/apiwarden/apimodel/capture"
)

// FuzzAssemble decodes the input as a sequence of chunks (direction,
// flags, sequence jitter, truncation, payload) on two flows, one TC and
// one TLS, with tiny limits. Nothing may panic, every call has a request,
// and the buffered-byte gauge returns to zero after Flush.
func FuzzAssemble(f *testing.F) {
	f.Add([]byte("\x00\x02\x00\x00\x00\x01\x12\x00\x00\x00\x00\x10\x00\x00\x14GET / HTTP/1.1\r\n\r\n\x01\x10\x00\x00\x26HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		a := New(Config{MaxFlows: 2, MaxBufferedBytes: 64, MaxBodyBytesTotal: 24, Stream: streamCfg(), HTTP: httpCfg()},
			slog.New(slog.DiscardHandler), func(c *call.Call) {
				if c.Request == nil {
					t.Fatal("call without request")
				}
			})
		seq := [2]uint32{1 << 31, 7}
		now := t0
		for len(in) >= 5 {
			hdr := in[:5]
			in = in[5:]
			d := int(hdr[0] & 1)
			n := min(int(hdr[4]), len(in))
			data := in[:n]
			in = in[n:]
			k := capture.FlowKey{Src: cli, Dst: srv}
			if d == 1 {
				k = k.Reverse()
			}
			c := capture.Chunk{Time: now, Key: k, Flags: hdr[1], Data: data, PayloadLen: uint32(n) + uint32(hdr[3]&7),
				Seq: seq[d] + uint32(int8(hdr[2])), Source: capture.SourceTCIngress}
			if hdr[0]&2 != 0 {
				c.Source = capture.SourceTLSRead + capture.Source(d)
				c.PID, c.ConnID = 1, 2
			}
			if hdr[0]&4 != 0 {
				a.Tick(now.Add(3 * time.Second))
			}
			a.Add(c)
			seq[d] += uint32(n)
			now = now.Add(time.Millisecond)
		}
		a.Flush()
		if st := a.Stats(); st.BufferedBytes != 0 || st.BodyBytes != 0 || st.FlowsActive != 0 {
			t.Fatalf("after flush: %+v", st)
		}
	})
}

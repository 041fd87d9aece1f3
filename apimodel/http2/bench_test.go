package http2

import (
	"testing"
	"time"

	"github.com/apiwarden/apiwarden/apimodel/call"
)

// benchConn pre-encodes n calls on one connection (HPACK state carried from
// call to call as a real client and server do) and returns the bytes of
// each call per direction; the first call also carries the preface and
// SETTINGS.
func benchConn(n int, grpc bool) [][2][]byte {
	b := newBuilder()
	out := make([][2][]byte, 0, n)
	var off [2]int
	reqBody := []byte(`{"customer":"c-1029","items":[{"sku":"A-100","qty":2},{"sku":"B-220","qty":1}],"shipping":{"method":"express","address_id":"adr-77"},"note":""}`)
	for i := 0; i < n; i++ {
		sid := uint32(1 + 2*i)
		if grpc {
			b.headers(FromClient, sid, false, ":method", "POST", ":scheme", "http", ":authority", "shop.internal.example.com:8443",
				":path", "/shop.v2.Orders/Create", "content-type", "application/grpc", "te", "trailers",
				"user-agent", "grpc-go/1.85.0", "grpc-timeout", "999m")
			b.data(FromClient, sid, true, append([]byte{0, 0, 0, 0, byte(len(reqBody))}, reqBody...))
			b.headers(FromServer, sid, false, ":status", "200", "content-type", "application/grpc")
			b.data(FromServer, sid, false, []byte{0, 0, 0, 0, 12, 10, 10, 'o', 'r', 'd', '-', '0', '0', '0', '0', '1', 16})
			b.headers(FromServer, sid, true, "grpc-status", "0", "grpc-message", "")
		} else {
			// The same fields as the HTTP/1 benchGet.
			b.headers(FromClient, sid, true, ":method", "GET", ":scheme", "https", ":authority", "shop.internal.example.com:8443",
				":path", "/api/v2/orders/8a1f3c9e-4b7d-4e2a-9f10-3c5d7e9a1b2c/items?limit=50&offset=100&expand=product",
				"user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
				"accept", "application/json", "accept-encoding", "gzip, deflate, br",
				"authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
				"x-request-id", "7f9e2d1c-55aa-4c3b-8e0f-1a2b3c4d5e6f")
			b.headers(FromServer, sid, false, ":status", "200", "content-type", "application/json", "content-length", "13",
				"date", "Wed, 25 Nov 2026 18:00:00 GMT")
			b.data(FromServer, sid, true, []byte("{\"items\":[]}\n"))
		}
		var c [2][]byte
		for d := 0; d < 2; d++ {
			all := b.buf[d].Bytes()
			c[d] = all[off[d]:]
			off[d] = len(all)
		}
		out = append(out, c)
	}
	// Slices into the final buffers (earlier ones may have moved).
	var pos [2]int
	for i := range out {
		for d := 0; d < 2; d++ {
			l := len(out[i][d])
			out[i][d] = b.buf[d].Bytes()[pos[d] : pos[d]+l]
			pos[d] += l
		}
	}
	return out
}

func benchDecoder(b *testing.B, grpc bool) {
	const n = 4096
	calls := benchConn(n, grpc)
	var st Stats
	emitted := 0
	emit := func(*call.Call) { emitted++ }
	c := NewConn(Config{}, &st, emit)
	now := time.Unix(1, 0)
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		if i == n {
			c = NewConn(Config{}, &st, emit)
			i = 0
		}
		c.Feed(FromClient, calls[i][0], now)
		c.Feed(FromServer, calls[i][1], now)
		i++
	}
	if emitted == 0 || st.HPACKErrors != 0 || st.FrameErrors != 0 || st.Partial != 0 {
		b.Fatalf("emitted %d, stats %+v", emitted, st)
	}
	b.ReportMetric(float64(st.Frames)/float64(emitted), "frames/call")
	b.ReportMetric(float64(st.Frames)/b.Elapsed().Seconds(), "frames/s")
}

// BenchmarkDecoder decodes one call per iteration (ns/op = ns/call) on a
// long-lived connection: BenchmarkDecoder/GET is the HTTP/2 form of
// http1.BenchmarkParseCall.
func BenchmarkDecoder(b *testing.B) {
	b.Run("GET", func(b *testing.B) { benchDecoder(b, false) })
	b.Run("gRPC-unary", func(b *testing.B) { benchDecoder(b, true) })
}

package http1

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/apiwarden/apiwarden/apimodel/call"
)

// benchGet is a typical ~400-byte API GET.
const benchGet = "GET /api/v2/orders/8a1f3c9e-4b7d-4e2a-9f10-3c5d7e9a1b2c/items?limit=50&offset=100&expand=product HTTP/1.1\r\n" +
	"Host: shop.internal.example.com:8443\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36\r\n" +
	"Accept: application/json\r\n" +
	"Accept-Encoding: gzip, deflate, br\r\n" +
	"Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U\r\n" +
	"X-Request-Id: 7f9e2d1c-55aa-4c3b-8e0f-1a2b3c4d5e6f\r\n" +
	"\r\n"

const benchPost = "POST /api/v2/orders HTTP/1.1\r\n" +
	"Host: shop.internal.example.com:8443\r\n" +
	"User-Agent: okhttp/4.12.0\r\n" +
	"Content-Type: application/json\r\n" +
	"Accept: application/json\r\n" +
	"Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U\r\n" +
	"Content-Length: 143\r\n" +
	"\r\n" +
	`{"customer":"c-1029","items":[{"sku":"A-100","qty":2},{"sku":"B-220","qty":1}],"shipping":{"method":"express","address_id":"adr-77"},"note":""}`

func benchParse(b *testing.B, req string) {
	var n int
	c := NewConn(Config{}, &Stats{}, func(*call.Call) { n++ })
	data := []byte(req)
	now := time.Unix(1, 0)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		c.Feed(FromClient, data, now)
		// Parse requests only: drop the queued request as a response would.
		c.queue[0] = entry{}
		c.queue = c.queue[:0]
	}
	if c.p[0].state != stHead {
		b.Fatalf("parser state %d", c.p[0].state)
	}
}

func benchNetHTTP(b *testing.B, req string) {
	data := []byte(req)
	rd := bytes.NewReader(data)
	br := bufio.NewReader(rd)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(data)
		br.Reset(rd)
		r, err := http.ReadRequest(br)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseRequest(b *testing.B) {
	b.Run("GET", func(b *testing.B) { benchParse(b, benchGet) })
	b.Run("POST-JSON", func(b *testing.B) { benchParse(b, benchPost) })
}

func BenchmarkNetHTTPReadRequest(b *testing.B) {
	b.Run("GET", func(b *testing.B) { benchNetHTTP(b, benchGet) })
	b.Run("POST-JSON", func(b *testing.B) { benchNetHTTP(b, benchPost) })
}

// BenchmarkParseCall parses a request and its response and emits the call.
func BenchmarkParseCall(b *testing.B) {
	c := NewConn(Config{}, &Stats{}, func(*call.Call) {})
	req := []byte(benchGet)
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\nDate: Wed, 25 Nov 2026 18:00:00 GMT\r\n\r\n{\"items\":[]}\n")
	now := time.Unix(1, 0)
	b.ReportAllocs()
	for b.Loop() {
		c.Feed(FromClient, req, now)
		c.Feed(FromServer, resp, now)
	}
}

package detect

import (
	"fmt"
	"strings"
	"testing"

	"github.com/apiwarden/apiwarden/apimodel/call"
)

func BenchmarkInspect(b *testing.B) {
	// The same request over and over: every clean value after the first
	// call comes from the clean-value cache. cold/ is the cost without it
	// (every value new).
	d := newDetector(b, Config{})
	cold := newDetector(b, Config{CleanCacheSize: -1})
	var items []string
	for i := 0; len(strings.Join(items, ",")) < 100<<10; i++ {
		items = append(items, fmt.Sprintf(`{"id":"%08x-aaaa","name":"Seán O'Brien %d","note":"select the best option; it's great & cheap","url":"https://example.com/p/%d"}`, i, i, i))
	}
	for _, c := range []struct {
		name string
		r    *call.Request
	}{
		{"get", get("/api/v1/users/42/orders?status=shipped&sort=-created_at&q=rock+%26+roll", "User-Agent", "Mozilla/5.0 (X11; Linux x86_64)", "Referer", "https://app.example.com/orders")},
		{"json", post("/api/v1/orders", jsonCT, `{"items":[{"sku":"A-1","qty":2,"note":"Leave at the door, it's fine"}],"customer":{"name":"Zoë D'Arcy","email":"zoe@example.com"}}`)},
		// A realistic RS256 access token: the JWT checks decode its header.
		{"get-jwt", get("/api/v1/me", "Authorization", "Bearer eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImtleS0yMDI2LTAxIn0.eyJzdWIiOiJ1c2VyLTQyIiwic2NvcGUiOiJyZWFkIHdyaXRlIiwiZXhwIjoxOTAwMDAwMDAwfQ.c2lnbmF0dXJlLWJ5dGVzLWhlcmU")},
		{"graphql", post("/graphql", jsonCT, `{"query":"query Orders($first:Int){ viewer { orders(first:$first){ edges { node { id total items { sku qty } } } } } }","variables":{"first":20}}`)},
		{"form", post("/login", formCT, "email=a%40example.com&password=S3cr3t%21&remember=on")},
		{"attack", get("/x?q=%24%7Bjndi%3Aldap%3A%2F%2Fe%2Fa%7D&id=1%27%20OR%20%271%27%3D%271")},
		{"large-json", post("/api/v1/import", jsonCT, "["+strings.Join(items, ",")+"]")},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.r.Body) + len(c.r.RawQuery) + len(c.r.Path)))
			for b.Loop() {
				d.Inspect(c.r, "svc")
			}
		})
		b.Run("cold/"+c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.r.Body) + len(c.r.RawQuery) + len(c.r.Path)))
			for b.Loop() {
				cold.Inspect(c.r, "svc")
			}
		})
	}
}

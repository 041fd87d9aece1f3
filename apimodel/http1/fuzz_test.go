package http1

import (
	"slices"
	"testing"
)

// FuzzConn feeds arbitrary client and server bytes. The parser must never
// panic, must respect the body bound, and must give the same calls whether
// the bytes arrive at once or one at a time.
func FuzzConn(f *testing.F) {
	for _, s := range [][2]string{
		{getQuery, okJSON}, {postJSON, created}, {chunkedReq, chunkedOK},
		{"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n", "HTTP/1.1 101 Switching\r\n\r\n"},
		{"HEAD / HTTP/1.1\r\n\r\n", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"},
		{"\x00\xff", "HTTP/1.0 200 OK\r\n\r\nabc"},
	} {
		f.Add([]byte(s[0]), []byte(s[1]), uint8(7))
	}
	f.Fuzz(func(t *testing.T, client, server []byte, step uint8) {
		cfg := Config{MaxBodyBytes: 16, MaxHeaderBytes: 512, MaxHeaders: 8, BodyBudget: &BodyBudget{Max: 40}}
		whole := feed(cfg, string(client), string(server), nil, nil)
		s := int(step%16) + 1
		cuts := func(n int) []int {
			var c []int
			for i := s; i < n; i += s {
				c = append(c, i)
			}
			return c
		}
		split := feed(cfg, string(client), string(server), cuts(len(client)), cuts(len(server)))
		if cfg.BodyBudget.Used() != 0 {
			t.Fatalf("body budget not returned: %d", cfg.BodyBudget.Used())
		}
		if !slices.Equal(whole.calls, split.calls) {
			t.Fatalf("split by %d differs:\n whole %q\n split %q", s, whole.calls, split.calls)
		}
	})
}

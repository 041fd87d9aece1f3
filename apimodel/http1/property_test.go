package http1

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestSplitInvarianceRandomStreams builds streams from HTTP fragments and
// random bytes and demands the same calls however they are segmented (the
// fuzz target checks the same property with coverage guidance).
func TestSplitInvarianceRandomStreams(t *testing.T) {
	toks := []string{"GET /a HTTP/1.1\r\n", "POST /b?x=1 HTTP/1.1\r\n", "HEAD /h HTTP/1.1\r\n", "CONNECT h:1 HTTP/1.1\r\n",
		"Content-Length: 3\r\n", "Content-Length: 0\r\n", "Transfer-Encoding: chunked\r\n", "Upgrade: websocket\r\n",
		"Connection: close\r\n", "\r\n", "\r\n", "\r\n", "abc", "3;e=1\r\nabc\r\n", "0\r\n\r\n", "0\r\nT: v\r\n\r\n",
		"HTTP/1.1 200 OK\r\n", "HTTP/1.1 100 Continue\r\n", "HTTP/1.1 101 Switching\r\n", "HTTP/1.1 204 No\r\n",
		"HTTP/1.0 304 NM\r\n", "\n", "PRI * HTTP/2.0\r\n", "X"}
	r := rand.New(rand.NewPCG(9, 9))
	calls := 0
	for i := 0; i < 20000; i++ {
		var c, s []byte
		n := 60
		if i%100 == 0 {
			n = 3000
		}
		for range r.IntN(n) {
			if r.IntN(12) == 0 {
				c = append(c, byte(r.Uint32()))
			} else {
				c = append(c, toks[r.IntN(len(toks))]...)
			}
		}
		for range r.IntN(n) {
			if r.IntN(12) == 0 {
				s = append(s, byte(r.Uint32()))
			} else {
				s = append(s, toks[r.IntN(len(toks))]...)
			}
		}
		cfg := Config{MaxBodyBytes: 16, MaxHeaderBytes: 512, MaxHeaders: 8, BodyBudget: &BodyBudget{Max: 40}}
		w := feed(cfg, string(c), string(s), nil, nil)
		st := r.IntN(16) + 1
		cuts := func(n int) []int {
			var cc []int
			for i := st; i < n; i += st {
				cc = append(cc, i)
			}
			return cc
		}
		sp := feed(cfg, string(c), string(s), cuts(len(c)), cuts(len(s)))
		rc := feed(cfg, string(c), string(s), randomCuts(r, len(c)), randomCuts(r, len(s)))
		calls += len(w.calls)
		if cfg.BodyBudget.Used() != 0 {
			t.Fatalf("body budget not returned: %d", cfg.BodyBudget.Used())
		}
		if !slices.Equal(w.calls, sp.calls) || !slices.Equal(w.calls, rc.calls) {
			t.Fatalf("differ %q %q step %d: %q vs %q vs %q", c, s, st, w.calls, sp.calls, rc.calls)
		}
	}
	if calls == 0 {
		t.Fatal("no calls parsed: the generator is too random")
	}
	if testing.Verbose() {
		t.Logf("%d calls", calls)
	}
}

package http2

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/apiwarden/apiwarden/apimodel/call"
	"github.com/apiwarden/apiwarden/apimodel/http1"
)

// FuzzConn feeds arbitrary client and server bytes, at once and in steps.
// The decoder must never panic and must respect its bounds; a connection
// decoded without resync gives the same calls however the bytes are cut.
func FuzzConn(f *testing.F) {
	h2c := join(captureManyHeaders(f, 3))
	grpcEv := join(captureGRPC(f, func(hc healthpb.HealthClient) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "svc.A"})
	}))
	f.Add(h2c[0], h2c[1], uint8(7))
	f.Add(grpcEv[0], grpcEv[1], uint8(3))
	f.Add(h2c[0][len(Preface)+20:], h2c[1][30:], uint8(1))
	f.Add([]byte(Preface+"\x00\x00\x04\x01\x05\x00\x00\x00\x01\x82\x84\x86\x41"), []byte{0, 0, 1, 1, 5, 0, 0, 0, 1, 0x88}, uint8(2))
	f.Fuzz(func(t *testing.T, client, server []byte, step uint8) {
		cfg := Config{MaxStreams: 4, MaxBodyBytes: 16, MaxHeaderListSize: 512, MaxHeaderBlock: 256,
			BodyBudget: &http1.BodyBudget{Max: 40}}
		whole := decodeDirs(cfg, [2][]byte{client, server})
		s := int(step%16) + 1
		var split result
		c := NewConn(cfg, &split.stats, func(cl *call.Call) { split.calls = append(split.calls, cl) })
		now := time.Unix(1, 0)
		for _, d := range []Dir{FromClient, FromServer} {
			b := [2][]byte{client, server}[d]
			for len(b) > 0 {
				n := min(s, len(b))
				c.Feed(d, b[:n], now)
				b = b[n:]
			}
		}
		c.Close(now)
		if cfg.BodyBudget.Used() != 0 {
			t.Fatalf("body budget not returned: %d", cfg.BodyBudget.Used())
		}
		for _, r := range []result{whole, split} {
			for _, cl := range r.calls {
				if len(cl.Request.Body) > 16 || (cl.Response != nil && len(cl.Response.Body) > 16) {
					t.Fatal("body bound")
				}
				size := 0
				for _, h := range cl.Request.Headers {
					size += len(h.Name) + len(h.Value) + 32
				}
				if size > 512 {
					t.Fatal("header list bound")
				}
			}
		}
		if whole.stats.Resyncs+whole.stats.MidJoin+split.stats.Resyncs+split.stats.MidJoin != 0 {
			return
		}
		sum := func(r result) []string {
			var out []string
			for _, cl := range r.calls {
				out = append(out, summary(cl)+fmt.Sprint(cl.Request.Headers))
			}
			return out
		}
		if !slices.Equal(sum(whole), sum(split)) {
			t.Fatalf("split by %d differs:\n%q\n%q", s, sum(whole), sum(split))
		}
	})
}

package http2

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"net/http"
	"strings"
	"testing"
	"time"

	xhttp2 "golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/apiwarden/apiwarden/apimodel/call"
	"github.com/apiwarden/apiwarden/apimodel/http1"
)

// join returns the bytes of each direction of a capture.
func join(ev []event) [2][]byte {
	var out [2][]byte
	for _, e := range ev {
		out[e.dir] = append(out[e.dir], e.data...)
	}
	return out
}

// frameStarts lists the offsets of frame headers in one direction.
func frameStarts(b []byte, client bool) []int {
	off := 0
	if client {
		off = len(Preface)
	}
	var out []int
	for off+9 <= len(b) {
		out = append(out, off)
		off += 9 + parseHeader(b[off:]).length
	}
	return out
}

func decodeDirs(cfg Config, dirs [2][]byte) result {
	var res result
	c := NewConn(cfg, &res.stats, func(cl *call.Call) { res.calls = append(res.calls, cl) })
	t := time.Unix(1, 0)
	c.Feed(FromClient, dirs[0], t)
	c.Feed(FromServer, dirs[1], t)
	c.Close(t)
	return res
}

func captureManyHeaders(t testing.TB, n int) []event {
	return captureH2C(t, func(c *http.Client, base string) {
		for i := 0; i < n; i++ {
			req, _ := http.NewRequest("GET", fmt.Sprintf("%s/api/items?id=%d", base, i), nil)
			req.Header.Set("X-Same", "constant-value")
			req.Header.Set("X-Id", fmt.Sprint(i))
			req.Header.Set("User-Agent", "h2test")
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
	})
}

// TestMidJoin drops the first k frames of each direction of a real
// connection (the agent started late): calls are either exact or marked
// partial, and a partial call never shows a value the full decode did not.
func TestMidJoin(t *testing.T) {
	ev := captureManyHeaders(t, 30)
	dirs := join(ev)
	full := decodeDirs(Config{}, dirs)
	if len(full.calls) != 30 {
		t.Fatalf("full decode: %d calls", len(full.calls))
	}
	byID := map[uint32]*call.Call{}
	for _, c := range full.calls {
		byID[c.StreamID] = c
	}
	cs, ss := frameStarts(dirs[0], true), frameStarts(dirs[1], false)
	totalPartial, totalExact := 0, 0
	for k := 1; k < len(cs); k += 3 {
		// Drop the server frames up to the same stream progress.
		ks := min(k, len(ss)-1)
		got := decodeDirs(Config{}, [2][]byte{dirs[0][cs[k]:], dirs[1][ss[ks]:]})
		if got.stats.MidJoin != 2 {
			t.Fatalf("k=%d: MidJoin=%d", k, got.stats.MidJoin)
		}
		for _, c := range got.calls {
			want := byID[c.StreamID]
			if want == nil {
				t.Fatalf("k=%d: stream %d not in the full decode", k, c.StreamID)
			}
			if c.Request.Method != want.Request.Method || c.Request.Path != want.Request.Path || c.Request.RawQuery != want.Request.RawQuery {
				t.Fatalf("k=%d: %s %s?%s, want %s %s?%s", k, c.Request.Method, c.Request.Path, c.Request.RawQuery,
					want.Request.Method, want.Request.Path, want.Request.RawQuery)
			}
			for _, h := range c.Request.Headers {
				if !containsHeader(want.Request.Headers, h) {
					t.Fatalf("k=%d stream %d: invented header %q: %q", k, c.StreamID, h.Name, h.Value)
				}
			}
			if len(c.Request.Headers) < len(want.Request.Headers) && !c.Partial {
				t.Fatalf("k=%d stream %d: fields missing but not partial", k, c.StreamID)
			}
			if c.Response != nil && c.Response.StatusCode != 0 && c.Response.StatusCode != want.Response.StatusCode {
				t.Fatalf("k=%d: status %d want %d", k, c.Response.StatusCode, want.Response.StatusCode)
			}
			if c.Partial {
				totalPartial++
			} else {
				totalExact++
			}
		}
		if len(got.calls) == 0 {
			t.Fatalf("k=%d: no call recovered", k)
		}
	}
	t.Logf("mid-join: %d partial, %d exact calls", totalPartial, totalExact)
	if totalPartial == 0 {
		t.Errorf("no partial call: the test does not exercise unknown dynamic entries")
	}
}

// TestMidJoinUnaligned starts each direction at an arbitrary byte: resync
// finds a frame boundary, and nothing panics or invents values.
func TestMidJoinUnaligned(t *testing.T) {
	ev := captureManyHeaders(t, 10)
	dirs := join(ev)
	r := rand.New(rand.NewSource(3))
	for i := 0; i < 200; i++ {
		a, b := r.Intn(len(dirs[0])), r.Intn(len(dirs[1]))
		got := decodeDirs(Config{}, [2][]byte{dirs[0][a:], dirs[1][b:]})
		for _, c := range got.calls {
			if !strings.HasPrefix(c.Request.Path, "/api/items") {
				t.Fatalf("path %q", c.Request.Path)
			}
		}
	}
}

func containsHeader(hs call.Headers, h call.Header) bool {
	for _, x := range hs {
		if x == h {
			return true
		}
	}
	return false
}

// builder writes frames of both directions with the x/net framer.
type builder struct {
	buf [2]bytes.Buffer
	fr  [2]*xhttp2.Framer
	enc [2]*hpack.Encoder
	hb  [2]bytes.Buffer
}

func newBuilder() *builder {
	b := &builder{}
	b.buf[0].WriteString(Preface)
	for d := 0; d < 2; d++ {
		b.fr[d] = xhttp2.NewFramer(&b.buf[d], nil)
		b.fr[d].SetMaxReadFrameSize(1 << 24)
		b.enc[d] = hpack.NewEncoder(&b.hb[d])
		b.fr[d].WriteSettings()
	}
	return b
}

func (b *builder) headers(d Dir, sid uint32, end bool, kv ...string) {
	b.hb[d].Reset()
	for i := 0; i+1 < len(kv); i += 2 {
		b.enc[d].WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	block := b.hb[d].Bytes()
	// Split into HEADERS + CONTINUATION frames of at most 16 KiB.
	const max = 16384
	first := block[:min(max, len(block))]
	rest := block[len(first):]
	b.fr[d].WriteHeaders(xhttp2.HeadersFrameParam{StreamID: sid, BlockFragment: first, EndStream: end, EndHeaders: len(rest) == 0})
	for len(rest) > 0 {
		n := min(max, len(rest))
		b.fr[d].WriteContinuation(sid, n == len(rest), rest[:n])
		rest = rest[n:]
	}
}

func (b *builder) data(d Dir, sid uint32, end bool, p []byte) {
	for len(p) > 16384 {
		b.fr[d].WriteData(sid, false, p[:16384])
		p = p[16384:]
	}
	b.fr[d].WriteData(sid, end, p)
}

func (b *builder) decode(cfg Config) result {
	return decodeDirs(cfg, [2][]byte{b.buf[0].Bytes(), b.buf[1].Bytes()})
}

func req(path string) []string {
	return []string{":method", "GET", ":scheme", "http", ":authority", "h", ":path", path}
}

func TestMaxStreamsBound(t *testing.T) {
	for _, n := range []int{4, 5} {
		b := newBuilder()
		for i := 0; i < n; i++ {
			b.headers(FromClient, uint32(1+2*i), true, req(fmt.Sprintf("/s/%d", i))...)
		}
		for i := 0; i < n; i++ {
			b.headers(FromServer, uint32(1+2*i), true, ":status", "200")
		}
		got := b.decode(Config{MaxStreams: 4})
		if len(got.calls) != n {
			t.Fatalf("n=%d: %d calls", n, len(got.calls))
		}
		wantLimit := uint64(n - 4)
		if got.stats.StreamLimit != wantLimit {
			t.Fatalf("n=%d: StreamLimit=%d want %d", n, got.stats.StreamLimit, wantLimit)
		}
		if n == 5 {
			// Stream 1 was emitted early, without its response.
			if got.calls[0].StreamID != 1 || got.calls[0].Response != nil || !got.calls[0].Gap {
				t.Fatalf("evicted call: %s", summary(got.calls[0]))
			}
		}
	}
}

func TestMaxHeaderListSizeBound(t *testing.T) {
	base := req("/h")
	size := 0
	for i := 0; i < len(base); i += 2 {
		size += len(base[i]) + len(base[i+1]) + 32
	}
	val := strings.Repeat("v", 100)
	kv := append(append([]string{}, base...), "x-big", val)
	limit := size + len("x-big") + len(val) + 32
	for _, max := range []int{limit, limit - 1} {
		b := newBuilder()
		b.headers(FromClient, 1, true, kv...)
		b.headers(FromServer, 1, true, ":status", "200")
		got := b.decode(Config{MaxHeaderListSize: max})
		if len(got.calls) != 1 {
			t.Fatalf("max=%d: %d calls", max, len(got.calls))
		}
		c := got.calls[0]
		has := c.Request.Headers.Get("x-big") == val
		if max == limit && (!has || c.Partial || got.stats.HeaderLimit != 0) {
			t.Fatalf("at bound: has=%v partial=%v limit=%d", has, c.Partial, got.stats.HeaderLimit)
		}
		if max == limit-1 && (has || !c.Partial || got.stats.HeaderLimit != 1) {
			t.Fatalf("over bound: has=%v partial=%v limit=%d", has, c.Partial, got.stats.HeaderLimit)
		}
	}
}

func TestMaxHeaderBlockBound(t *testing.T) {
	// A block over MaxHeaderBlock is skipped; the table recovers and the
	// next request on the connection still decodes.
	b := newBuilder()
	b.headers(FromClient, 1, true, append(req("/big"), "x-huge", strings.Repeat("h", 60000))...)
	b.headers(FromClient, 3, true, req("/after")...)
	b.headers(FromServer, 1, true, ":status", "200")
	b.headers(FromServer, 3, true, ":status", "204")
	got := b.decode(Config{MaxHeaderBlock: 32 << 10})
	if len(got.calls) != 1 || got.calls[0].Request.Path != "/after" || got.calls[0].Response.StatusCode != 204 {
		for _, c := range got.calls {
			t.Log(summary(c))
		}
		t.Fatalf("calls %v %+v", got.calls, got.stats)
	}
	if got.stats.HeaderLimit == 0 {
		t.Fatal("HeaderLimit not counted")
	}
}

func TestMaxBodyBytesBound(t *testing.T) {
	const max = 1000
	for _, n := range []int{max, max + 1, 3 * 16384} {
		b := newBuilder()
		b.headers(FromClient, 1, false, append(req("/b"), ":method", "POST")...)
		b.data(FromClient, 1, true, bytes.Repeat([]byte{'a'}, n))
		b.headers(FromServer, 1, true, ":status", "200")
		got := b.decode(Config{MaxBodyBytes: max})
		r := got.calls[0].Request
		if r.BodySize != int64(n) || len(r.Body) != min(n, max) || r.BodyTruncated != (n > max) {
			t.Fatalf("n=%d: size=%d kept=%d truncated=%v", n, r.BodySize, len(r.Body), r.BodyTruncated)
		}
	}
}

func TestPaddingPriorityAndReset(t *testing.T) {
	var cb, sb bytes.Buffer
	cb.WriteString(Preface)
	cf, sf := xhttp2.NewFramer(&cb, nil), xhttp2.NewFramer(&sb, nil)
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for i, kv := 0, append(req("/p"), "content-type", "text/plain"); i < len(kv); i += 2 {
		enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	cf.WriteHeaders(xhttp2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true, PadLength: 7,
		Priority: xhttp2.PriorityParam{StreamDep: 0, Weight: 3}})
	cf.WriteDataPadded(1, false, []byte("hello "), []byte{0, 0, 0})
	cf.WriteDataPadded(1, true, []byte("world"), make([]byte, 200))
	// Stream 3 is reset by the client before any response.
	hb.Reset()
	for i, kv := 0, req("/r"); i < len(kv); i += 2 {
		enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	cf.WriteHeaders(xhttp2.HeadersFrameParam{StreamID: 3, BlockFragment: hb.Bytes(), EndHeaders: true})
	cf.WriteRSTStream(3, xhttp2.ErrCodeCancel)
	var sh bytes.Buffer
	senc := hpack.NewEncoder(&sh)
	senc.WriteField(hpack.HeaderField{Name: ":status", Value: "100"})
	sf.WriteHeaders(xhttp2.HeadersFrameParam{StreamID: 1, BlockFragment: sh.Bytes(), EndHeaders: true})
	sh.Reset()
	senc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
	sf.WriteHeaders(xhttp2.HeadersFrameParam{StreamID: 1, BlockFragment: sh.Bytes(), EndHeaders: true})
	sf.WritePushPromise(xhttp2.PushPromiseParam{StreamID: 1, PromiseID: 2, BlockFragment: sh.Bytes(), EndHeaders: true})
	sf.WriteData(1, false, []byte("ok"))
	sh.Reset()
	senc.WriteField(hpack.HeaderField{Name: "x-trailer", Value: "t"})
	sf.WriteHeaders(xhttp2.HeadersFrameParam{StreamID: 1, BlockFragment: sh.Bytes(), EndHeaders: true, EndStream: true})
	got := decodeDirs(Config{}, [2][]byte{cb.Bytes(), sb.Bytes()})
	if len(got.calls) != 2 {
		t.Fatalf("%d calls", len(got.calls))
	}
	rst, c := got.calls[0], got.calls[1]
	if rst.Request.Path != "/r" || rst.Response != nil || got.stats.Resets != 1 {
		t.Fatalf("reset call %s", summary(rst))
	}
	if string(c.Request.Body) != "hello world" || c.Response.StatusCode != 200 || string(c.Response.Body) != "ok" ||
		c.Response.Trailers.Get("x-trailer") != "t" || c.Gap || c.Partial {
		t.Fatalf("call %s body=%q trailers=%v", summary(c), c.Request.Body, c.Response.Trailers)
	}
}

func TestDetect(t *testing.T) {
	ev := captureManyHeaders(t, 2)
	dirs := join(ev)
	if ok, cl := Detect(dirs[0]); !ok || cl != 1 {
		t.Fatalf("preface: %v %d", ok, cl)
	}
	cs, ss := frameStarts(dirs[0], true), frameStarts(dirs[1], false)
	// The client's first HEADERS frame, alone, says request.
	for _, o := range cs {
		if dirs[0][o+3] == frameHeaders {
			end := o + 9 + parseHeader(dirs[0][o:]).length
			if ok, cl := Detect(dirs[0][o:end]); !ok || cl != 1 {
				t.Fatalf("client HEADERS: %v %d", ok, cl)
			}
			break
		}
	}
	for _, o := range ss {
		if dirs[1][o+3] == frameHeaders {
			if ok, cl := Detect(dirs[1][o:]); !ok || cl != 0 {
				t.Fatalf("server HEADERS: %v %d", ok, cl)
			}
			break
		}
	}
	for _, s := range []string{"GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 200 OK\r\n", "\x16\x03\x01\x00\x05hello", strings.Repeat("\x00", 30)} {
		if ok, _ := Detect([]byte(s)); ok {
			t.Errorf("Detect(%q) = true", s)
		}
	}
}

func TestGapInData(t *testing.T) {
	b := newBuilder()
	b.headers(FromClient, 1, false, append(req("/g"), ":method", "POST")...)
	b.data(FromClient, 1, true, bytes.Repeat([]byte{'a'}, 5000))
	b.headers(FromClient, 3, true, req("/next")...)
	b.headers(FromServer, 1, true, ":status", "200")
	b.headers(FromServer, 3, true, ":status", "200")
	cl := b.buf[0].Bytes()
	i := bytes.Index(cl, bytes.Repeat([]byte{'a'}, 100))
	var res result
	c := NewConn(Config{}, &res.stats, func(x *call.Call) { res.calls = append(res.calls, x) })
	now := time.Unix(1, 0)
	c.Feed(FromClient, cl[:i+100], now)
	c.Gap(FromClient, 1000, now)
	c.Feed(FromClient, cl[i+1100:], now)
	c.Feed(FromServer, b.buf[1].Bytes(), now)
	c.Close(now)
	if len(res.calls) != 2 || !res.calls[0].Gap || res.calls[0].Request.BodySize != 5000 || res.calls[1].Request.Path != "/next" || res.calls[1].Gap {
		t.Fatalf("calls: %v %v", summary(res.calls[0]), res.calls)
	}
}

// TestMidJoinGRPC drops the first k frames of a real grpc-go connection:
// grpc-go indexes :path, content-type and te on first use, so calls after
// the join lack them (dropped and counted as NoPath) unless their block
// still carries literals; no call shows a wrong method or status.
func TestMidJoinGRPC(t *testing.T) {
	ev := captureGRPC(t, func(hc healthpb.HealthClient) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for i := 0; i < 10; i++ {
			hc.Check(ctx, &healthpb.HealthCheckRequest{Service: fmt.Sprintf("svc.%d", i%3)})
		}
	})
	dirs := join(ev)
	full := decodeDirs(Config{}, dirs)
	byID := map[uint32]*call.Call{}
	for _, c := range full.calls {
		byID[c.StreamID] = c
	}
	cs, ss := frameStarts(dirs[0], true), frameStarts(dirs[1], false)
	var decoded, noPath uint64
	for k := 1; k < len(cs); k++ {
		got := decodeDirs(Config{}, [2][]byte{dirs[0][cs[k]:], dirs[1][ss[min(k, len(ss)-1)]:]})
		for _, c := range got.calls {
			want := byID[c.StreamID]
			if want == nil || c.Request.Path != want.Request.Path || (c.GRPC != nil && want.GRPC.Status != c.GRPC.Status && c.GRPC.Status != -1) {
				t.Fatalf("k=%d: %s vs %v", k, summary(c), want)
			}
		}
		decoded += uint64(len(got.calls))
		noPath += got.stats.NoPath
	}
	t.Logf("grpc-go mid-join over %d join points: %d calls decoded, %d requests without :path", len(cs)-1, decoded, noPath)
}

// TestBodyBudgetShared: bodies held for calls not yet emitted count against
// the budget shared with HTTP/1; past it bodies are cut short, and every
// byte is returned when the calls leave.
func TestBodyBudgetShared(t *testing.T) {
	b := newBuilder()
	for i := 0; i < 3; i++ {
		sid := uint32(1 + 2*i)
		b.headers(FromClient, sid, false, append(req("/b"), ":method", "POST")...)
		b.data(FromClient, sid, true, bytes.Repeat([]byte{'a'}, 400))
	}
	for i := 0; i < 3; i++ {
		b.headers(FromServer, uint32(1+2*i), true, ":status", "200")
	}
	budget := &http1.BodyBudget{Max: 1000}
	var res result
	c := NewConn(Config{BodyBudget: budget}, &res.stats, func(x *call.Call) { res.calls = append(res.calls, x) })
	now := time.Unix(1, 0)
	c.Feed(FromClient, b.buf[0].Bytes(), now)
	if budget.Used() != 1000 || res.stats.BodyBudget != 1 {
		t.Fatalf("held %d, limit hits %d", budget.Used(), res.stats.BodyBudget)
	}
	c.Feed(FromServer, b.buf[1].Bytes(), now)
	c.Close(now)
	if budget.Used() != 0 || len(res.calls) != 3 {
		t.Fatalf("budget %d after %d calls", budget.Used(), len(res.calls))
	}
	kept := []int{len(res.calls[0].Request.Body), len(res.calls[1].Request.Body), len(res.calls[2].Request.Body)}
	if fmt.Sprint(kept) != "[400 400 200]" || !res.calls[2].Request.BodyTruncated || res.calls[2].Request.BodySize != 400 {
		t.Fatalf("kept %v", kept)
	}
}

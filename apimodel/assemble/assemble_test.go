package assemble

import (
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/apiwarden/apiwarden/apimodel/call"
	"github.com/apiwarden/apiwarden/apimodel/capture"
	"github.com/apiwarden/apiwarden/apimodel/http1"
	"github.com/apiwarden/apiwarden/apimodel/stream"
)

var (
	cli = netip.MustParseAddrPort("10.0.0.1:40000")
	srv = netip.MustParseAddrPort("10.0.0.2:8080")
	t0  = time.Unix(1000, 0)
)

// conv builds the chunks of one TCP conversation with running sequence
// numbers, as TC would capture them.
type conv struct {
	cli, srv   netip.AddrPort
	seqC, seqS uint32
	now        time.Time
	chunks     []capture.Chunk
}

func newConv(c, s netip.AddrPort) *conv {
	return &conv{cli: c, srv: s, seqC: 0xfffffff0, seqS: 5000, now: t0}
}

func (v *conv) add(fromClient bool, data string, flags uint8) *conv {
	v.now = v.now.Add(time.Millisecond)
	k := capture.FlowKey{Src: v.cli, Dst: v.srv}
	seq := &v.seqC
	src := capture.SourceTCIngress
	if !fromClient {
		k, seq, src = k.Reverse(), &v.seqS, capture.SourceTCEgress
	}
	v.chunks = append(v.chunks, capture.Chunk{Time: v.now, Key: k, Seq: *seq, Data: []byte(data),
		PayloadLen: uint32(len(data)), Flags: flags, Source: src})
	*seq += uint32(len(data))
	if flags&(capture.FlagSYN|capture.FlagFIN) != 0 {
		*seq++
	}
	return v
}

func (v *conv) handshake() *conv {
	return v.add(true, "", capture.FlagSYN).add(false, "", capture.FlagSYN|capture.FlagACK).add(true, "", capture.FlagACK)
}

func (v *conv) close() *conv {
	return v.add(true, "", capture.FlagFIN|capture.FlagACK).add(false, "", capture.FlagFIN|capture.FlagACK)
}

const (
	req  = "GET /items?id=3 HTTP/1.1\r\nHost: shop\r\n\r\n"
	resp = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
)

func newAsm(cfg Config) (*Assembler, *[]*call.Call) {
	var calls []*call.Call
	a := New(cfg, slog.New(slog.DiscardHandler), func(c *call.Call) { calls = append(calls, c) })
	return a, &calls
}

func TestConversation(t *testing.T) {
	a, calls := newAsm(Config{})
	for _, c := range newConv(cli, srv).handshake().add(true, req, 0).add(false, resp, 0).close().chunks {
		a.Add(c)
	}
	if len(*calls) != 1 {
		t.Fatalf("got %d calls", len(*calls))
	}
	c := (*calls)[0]
	if c.Client != cli || c.Server != srv || c.Response == nil || c.Response.StatusCode != 200 || c.Gap || c.Latency != time.Millisecond {
		t.Fatalf("call %+v", c)
	}
	st := a.Stats()
	if st.FlowsClosed != 1 || st.HTTP.Calls != 1 || st.Stream.Gaps != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestDoubleCaptureIsNoop(t *testing.T) {
	a, calls := newAsm(Config{})
	for _, c := range newConv(cli, srv).handshake().add(true, req, 0).add(false, resp, 0).close().chunks {
		a.Add(c)
		c.Ifindex = 7
		a.Add(c)
	}
	if len(*calls) != 1 || (*calls)[0].Response == nil {
		t.Fatalf("got %d calls", len(*calls))
	}
	if st := a.Stats(); st.Stream.Duplicates == 0 || st.LateChunks == 0 || st.FlowsCreated != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestMidStreamClientDetection(t *testing.T) {
	a, calls := newAsm(Config{})
	// The flow is first seen on a response body fragment, then a request.
	v := newConv(cli, srv).add(false, "tail of an old body", 0).add(true, req, 0).add(false, resp, 0)
	for _, c := range v.chunks {
		a.Add(c)
	}
	a.Flush()
	if len(*calls) != 1 || (*calls)[0].Client != cli || (*calls)[0].Response == nil {
		t.Fatalf("calls %+v", *calls)
	}
}

func TestResponseFirstDecidesRoles(t *testing.T) {
	a, calls := newAsm(Config{})
	// A response seen first says its sender is the server.
	v := newConv(cli, srv).add(false, resp, 0).add(true, req, 0).add(false, resp, 0)
	for _, c := range v.chunks {
		a.Add(c)
	}
	a.Flush()
	if len(*calls) != 1 || (*calls)[0].Server != srv {
		t.Fatalf("calls %+v", *calls)
	}
	if st := a.Stats(); st.HTTP.OrphanResponses != 1 {
		t.Fatalf("stats %+v", st.HTTP)
	}
}

func TestTLSCiphertextIgnoredAndPlaintextKeptApart(t *testing.T) {
	a, calls := newAsm(Config{})
	for _, c := range newConv(cli, srv).handshake().add(true, "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", 0).add(false, "\x16\x03\x03\x00\x7a\x02", 0).chunks {
		a.Add(c)
	}
	// The decrypted bytes of the same connection, from the server process.
	k := capture.FlowKey{Src: srv, Dst: cli}
	a.Add(capture.Chunk{Time: t0, Key: k.Reverse(), Seq: 0, Data: []byte(req), PayloadLen: uint32(len(req)), Source: capture.SourceTLSRead, PID: 42, ConnID: 5})
	a.Add(capture.Chunk{Time: t0, Key: k, Seq: 0, Data: []byte(resp), PayloadLen: uint32(len(resp)), Source: capture.SourceTLSWrite, PID: 42, ConnID: 5})
	a.Flush()
	st := a.Stats()
	if st.TLSCiphertextFlow != 1 || st.TLSChunks != 2 || st.FlowsCreated != 2 || st.FlowsClosed != 0 {
		t.Fatalf("stats %+v", st)
	}
	if len(*calls) != 1 || (*calls)[0].Response == nil || (*calls)[0].Client != cli {
		t.Fatalf("calls %+v", *calls)
	}
	if c := (*calls)[0]; c.TLS != TLSMarker || c.ServerProcess == nil || c.ServerProcess.PID != 42 || c.ClientProcess != nil {
		t.Fatalf("call %+v", c)
	}
}

func TestUnansweredOnFlush(t *testing.T) {
	a, calls := newAsm(Config{})
	for _, c := range newConv(cli, srv).handshake().add(true, req, 0).chunks {
		a.Add(c)
	}
	a.Flush()
	if len(*calls) != 1 || (*calls)[0].Response != nil {
		t.Fatalf("calls %+v", *calls)
	}
	if st := a.Stats(); st.HTTP.Unanswered != 1 || st.FlowsActive != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestFlowTableBound(t *testing.T) {
	a, calls := newAsm(Config{MaxFlows: 2})
	for i := range 3 {
		c := netip.AddrPortFrom(cli.Addr(), uint16(41000+i))
		for _, ch := range newConv(c, srv).handshake().add(true, req, 0).chunks {
			a.Add(ch)
		}
	}
	st := a.Stats()
	if st.FlowsEvictedFull != 1 || st.FlowsActive != 2 || len(*calls) != 1 || (*calls)[0].Client.Port() != 41000 {
		t.Fatalf("stats %+v calls %d", st, len(*calls))
	}
}

func TestIdleEvictionAndGapTimeout(t *testing.T) {
	a, calls := newAsm(Config{IdleTimeout: 10 * time.Second, GapTimeout: time.Second})
	v := newConv(cli, srv).handshake()
	head := "POST /p HTTP/1.1\r\nContent-Length: 6\r\n\r\n"
	v.add(true, head, 0)
	v.seqC += 3 // three body bytes lost
	v.add(true, "def", 0)
	for _, c := range v.chunks {
		a.Add(c)
	}
	a.Tick(v.now.Add(2 * time.Second)) // hole skipped, body finished
	if st := a.Stats(); st.Stream.Gaps != 1 || len(*calls) != 0 {
		t.Fatalf("stats %+v", st.Stream)
	}
	a.Tick(v.now.Add(11 * time.Second))
	if len(*calls) != 1 || !(*calls)[0].Gap || (*calls)[0].Request.BodySize != 6 {
		t.Fatalf("calls %+v", *calls)
	}
	if st := a.Stats(); st.FlowsEvictedIdle != 1 || st.FlowsActive != 0 || st.BufferedBytes != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestPortReuseAfterClose(t *testing.T) {
	a, calls := newAsm(Config{})
	for range 2 {
		for _, c := range newConv(cli, srv).handshake().add(true, req, 0).add(false, resp, 0).close().chunks {
			a.Add(c)
		}
	}
	if len(*calls) != 2 {
		t.Fatalf("got %d calls", len(*calls))
	}
}

func TestNotHTTP(t *testing.T) {
	a, _ := newAsm(Config{MaxProbes: 3})
	v := newConv(cli, srv)
	for range 4 {
		v.add(true, "\x00\x01\x02 redis-ish", 0)
	}
	for _, c := range v.chunks {
		a.Add(c)
	}
	if st := a.Stats(); st.NotHTTPFlows != 1 {
		t.Fatalf("stats %+v", st)
	}
	for _, c := range v.close().chunks[4:] {
		a.Add(c)
	}
	if st := a.Stats(); st.FlowsClosed != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func BenchmarkAssemble(b *testing.B) {
	v := newConv(cli, srv).handshake()
	for range 64 {
		v.add(true, req, 0).add(false, resp, 0)
	}
	v.close()
	b.ReportAllocs()
	defer func() {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*64), "ns/call")
	}()
	for b.Loop() {
		a := New(Config{}, slog.New(slog.DiscardHandler), func(*call.Call) {})
		for _, c := range v.chunks {
			a.Add(c)
		}
	}
}

func TestTLSConnIDReuse(t *testing.T) {
	a, calls := newAsm(Config{})
	k := capture.FlowKey{Src: cli, Dst: srv}
	for range 2 {
		a.Add(capture.Chunk{Time: t0, Key: k, Seq: 0, Data: []byte(req), PayloadLen: uint32(len(req)), Source: capture.SourceTLSRead, PID: 42, ConnID: 5})
		a.Add(capture.Chunk{Time: t0, Key: k.Reverse(), Seq: 0, Data: []byte(resp), PayloadLen: uint32(len(resp)), Source: capture.SourceTLSWrite, PID: 42, ConnID: 5})
	}
	a.EndConn(42, 5, t0)
	if len(*calls) != 2 || (*calls)[1].Response == nil {
		t.Fatalf("calls %d", len(*calls))
	}
}

func TestReadUntilCloseEndsAtFIN(t *testing.T) {
	a, calls := newAsm(Config{})
	v := newConv(cli, srv).handshake().add(true, "GET /old HTTP/1.0\r\n\r\n", 0).
		add(true, "", capture.FlagFIN|capture.FlagACK). // half-close after the request
		add(false, "HTTP/1.0 200 OK\r\n\r\npart one, ", 0).add(false, "part two", 0).
		add(false, "", capture.FlagFIN|capture.FlagACK)
	for _, c := range v.chunks {
		a.Add(c)
	}
	if len(*calls) != 1 || string((*calls)[0].Response.Body) != "part one, part two" {
		t.Fatalf("calls %+v", *calls)
	}
	if st := a.Stats(); st.FlowsClosed != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestRSTEndsFlow(t *testing.T) {
	a, calls := newAsm(Config{})
	v := newConv(cli, srv).handshake().add(true, req, 0).add(false, "", capture.FlagRST)
	for _, c := range v.chunks {
		a.Add(c)
	}
	if len(*calls) != 1 || (*calls)[0].Response != nil {
		t.Fatalf("calls %+v", *calls)
	}
	if st := a.Stats(); st.FlowsClosed != 1 || st.HTTP.Unanswered != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func streamCfg() stream.Config { return stream.Config{MaxBufferedBytes: 32, MaxSegments: 4} }
func httpCfg() http1.Config {
	return http1.Config{MaxHeaderBytes: 128, MaxHeaders: 4, MaxBodyBytes: 8, MaxFailures: 2, MaxPipeline: 2}
}

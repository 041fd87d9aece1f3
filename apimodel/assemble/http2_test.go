package assemble

import (
	"bytes"
	"testing"

	xhttp2 "golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/apiwarden/apiwarden/apimodel/call"
	"github.com/apiwarden/apiwarden/apimodel/capture"
	"github.com/apiwarden/apiwarden/apimodel/http1"
	"github.com/apiwarden/apiwarden/apimodel/http2"
)

// h2bytes returns the client and server bytes of one HTTP/2 connection
// with a GET (query) and a gRPC call; preface and SETTINGS included.
func h2bytes(preface bool) (client, server []byte) {
	var cb, sb, hb bytes.Buffer
	if preface {
		cb.WriteString(http2.Preface)
	}
	cf, sf := xhttp2.NewFramer(&cb, nil), xhttp2.NewFramer(&sb, nil)
	ce, se := hpack.NewEncoder(&hb), hpack.NewEncoder(&hb)
	block := func(e *hpack.Encoder, kv ...string) []byte {
		hb.Reset()
		for i := 0; i < len(kv); i += 2 {
			e.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
		}
		return append([]byte(nil), hb.Bytes()...)
	}
	if preface {
		cf.WriteSettings()
		sf.WriteSettings()
	}
	cf.WriteHeaders(xhttp2.HeadersFrameParam{StreamID: 1, EndHeaders: true, EndStream: true,
		BlockFragment: block(ce, ":method", "GET", ":scheme", "http", ":authority", "shop", ":path", "/items?id=3")})
	cf.WriteHeaders(xhttp2.HeadersFrameParam{StreamID: 3, EndHeaders: true,
		BlockFragment: block(ce, ":method", "POST", ":scheme", "http", ":authority", "shop", ":path", "/shop.v1.Orders/Get",
			"content-type", "application/grpc")})
	cf.WriteData(3, true, []byte{0, 0, 0, 0, 2, 8, 1})
	sf.WriteHeaders(xhttp2.HeadersFrameParam{StreamID: 1, EndHeaders: true, BlockFragment: block(se, ":status", "200")})
	sf.WriteData(1, true, []byte("ok"))
	sf.WriteHeaders(xhttp2.HeadersFrameParam{StreamID: 3, EndHeaders: true, BlockFragment: block(se, ":status", "200", "content-type", "application/grpc")})
	sf.WriteData(3, false, []byte{0, 0, 0, 0, 0})
	sf.WriteHeaders(xhttp2.HeadersFrameParam{StreamID: 3, EndHeaders: true, EndStream: true, BlockFragment: block(se, "grpc-status", "7")})
	return cb.Bytes(), sb.Bytes()
}

func checkH2Calls(t *testing.T, calls []*call.Call, partialOK bool) {
	t.Helper()
	if len(calls) != 2 {
		t.Fatalf("%d calls", len(calls))
	}
	get, rpc := calls[0], calls[1]
	if get.Protocol != call.ProtoH2 || get.Request.Path != "/items" || get.Request.RawQuery != "id=3" || get.Response.StatusCode != 200 {
		t.Fatalf("GET call %+v", get.Request)
	}
	if rpc.Protocol != call.ProtoGRPC || rpc.GRPC == nil || rpc.GRPC.Service != "shop.v1.Orders" || rpc.GRPC.Method != "Get" || rpc.GRPC.Status != 7 {
		t.Fatalf("gRPC call %+v %+v", rpc.Request, rpc.GRPC)
	}
	if !partialOK && (get.Partial || rpc.Partial) {
		t.Fatal("partial on a connection seen from its start")
	}
}

func TestHTTP2PlaintextTC(t *testing.T) {
	a, calls := newAsm(Config{})
	cb, sb := h2bytes(true)
	v := newConv(cli, srv).handshake()
	v.add(true, string(cb[:30]), 0).add(false, string(sb[:9]), 0).add(true, string(cb[30:]), 0).add(false, string(sb[9:]), 0).close()
	for _, c := range v.chunks {
		a.Add(c)
	}
	checkH2Calls(t, *calls, false)
	if c := (*calls)[0]; c.Client != cli || c.Server != srv {
		t.Fatalf("addresses %v %v", c.Client, c.Server)
	}
	if st := a.Stats(); st.HTTP2Flows != 1 || st.HTTP2.Calls != 2 || st.HTTP2.GRPCCalls != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestHTTP2OverTLS: the decrypted bytes of the server process (SSL_read the
// requests, SSL_write the responses); the server writes its SETTINGS
// before it reads the preface, as Go's server does after ALPN h2.
func TestHTTP2OverTLS(t *testing.T) {
	var seen []*call.Request
	a, calls := newAsm(Config{OnRequest: func(c *http1.Conn, r *call.Request) {
		if c.TLS != TLSMarker || c.ServerProcess == nil || c.ServerProcess.PID != 9 {
			t.Errorf("request hook conn %+v", c)
		}
		seen = append(seen, r)
	}})
	cb, sb := h2bytes(true)
	settings := sb[:9]
	var rseq, wseq uint32
	add := func(src capture.Source, b []byte) {
		seq := &rseq
		if src == capture.SourceTLSWrite {
			seq = &wseq
		}
		a.Add(capture.Chunk{Time: t0, Data: b, PayloadLen: uint32(len(b)), Seq: *seq, Source: src, PID: 9, ConnID: 4})
		*seq += uint32(len(b))
	}
	add(capture.SourceTLSWrite, settings)
	add(capture.SourceTLSRead, cb)
	add(capture.SourceTLSWrite, sb[9:])
	a.EndConn(9, 4, t0)
	checkH2Calls(t, *calls, false)
	if (*calls)[0].TLS != TLSMarker || (*calls)[0].ServerProcess.PID != 9 || len(seen) != 2 {
		t.Fatalf("TLS call %+v, %d requests hooked", (*calls)[0], len(seen))
	}
}

// TestHTTP2JoinedLate: no handshake, no preface, no SETTINGS: the roles and
// the protocol come from the frames.
func TestHTTP2JoinedLate(t *testing.T) {
	a, calls := newAsm(Config{})
	cb, sb := h2bytes(false)
	v := newConv(cli, srv)
	v.add(true, string(cb), 0).add(false, string(sb), 0).close()
	for _, c := range v.chunks {
		a.Add(c)
	}
	checkH2Calls(t, *calls, true)
	if st := a.Stats(); st.HTTP2.MidJoin != 2 {
		t.Fatalf("stats %+v", st.HTTP2)
	}
}

// TestHTTP2ServerSpeaksFirst: grpc-go's server writes SETTINGS as soon as
// it accepts, before the client's preface arrives.
func TestHTTP2ServerSpeaksFirst(t *testing.T) {
	a, calls := newAsm(Config{})
	cb, sb := h2bytes(true)
	v := newConv(cli, srv).handshake()
	v.add(false, string(sb[:9]), 0).add(true, string(cb), 0).add(false, string(sb[9:]), 0).close()
	for _, c := range v.chunks {
		a.Add(c)
	}
	checkH2Calls(t, *calls, false)
	if st := a.Stats(); st.HTTP2.MidJoin != 0 || st.HTTP.ParseErrors != 0 {
		t.Fatalf("stats %+v", st)
	}
}

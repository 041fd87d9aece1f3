package http2

import (
	"context"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/apiwarden/apiwarden/apimodel/call"
)

// event is one captured delivery: bytes sent by dir, in capture order.
type event struct {
	dir  Dir
	data []byte
}

// recorder captures what the server side of every accepted connection
// reads (client bytes) and writes (server bytes), in order.
type recorder struct {
	net.Listener
	mu    sync.Mutex
	conns [][]event
}

type recConn struct {
	net.Conn
	r   *recorder
	idx int
}

func (l *recorder) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.conns = append(l.conns, nil)
	idx := len(l.conns) - 1
	l.mu.Unlock()
	return &recConn{Conn: c, r: l, idx: idx}, nil
}

func (c *recConn) add(d Dir, b []byte) {
	c.r.mu.Lock()
	c.r.conns[c.idx] = append(c.r.conns[c.idx], event{d, append([]byte(nil), b...)})
	c.r.mu.Unlock()
}

func (c *recConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.add(FromClient, b[:n])
	}
	return n, err
}

func (c *recConn) Write(b []byte) (int, error) {
	c.add(FromServer, b)
	return c.Conn.Write(b)
}

func (l *recorder) events() [][]event {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([][]event, len(l.conns))
	copy(out, l.conns)
	return out
}

func listen(t testing.TB) *recorder {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return &recorder{Listener: l}
}

// captureH2C runs a Go net/http h2c server and client exchange and returns
// the captured connection.
func captureH2C(t testing.TB, client func(c *http.Client, base string)) []event {
	l := listen(t)
	mux := http.NewServeMux()
	mux.HandleFunc("/api/items", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Len", fmt.Sprint(len(b)))
		if r.Method == http.MethodPost {
			w.WriteHeader(201)
		}
		fmt.Fprintf(w, `{"q":%q,"n":%d}`, r.URL.RawQuery, len(b))
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(strings.Repeat("x", 100000)))
	})
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: mux, Protocols: &p}
	go srv.Serve(l)
	defer srv.Close()
	tr := &http.Transport{Protocols: &p}
	defer tr.CloseIdleConnections()
	client(&http.Client{Transport: tr}, "http://"+l.Addr().String())
	tr.CloseIdleConnections()
	srv.Close()
	ev := l.events()
	if len(ev) != 1 {
		t.Fatalf("%d connections captured", len(ev))
	}
	return ev[0]
}

func do(t testing.TB, c *http.Client, method, url, body string) {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, r)
	req.Header.Set("User-Agent", "h2test")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// captureGRPC runs a grpc-go health server and client.
func captureGRPC(t testing.TB, client func(hc healthpb.HealthClient)) []event {
	l := listen(t)
	s := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("svc.A", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(s, hs)
	go s.Serve(l)
	cc, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	client(healthpb.NewHealthClient(cc))
	cc.Close()
	s.Stop()
	ev := l.events()
	if len(ev) != 1 {
		t.Fatalf("%d connections captured", len(ev))
	}
	return ev[0]
}

func summary(c *call.Call) string {
	r := c.Request
	s := fmt.Sprintf("%s %s %s?%s body=%d", c.ProtocolName(), r.Method, r.Path, r.RawQuery, r.BodySize)
	if c.Response != nil {
		s += fmt.Sprintf(" -> %d body=%d", c.Response.StatusCode, c.Response.BodySize)
	} else {
		s += " -> none"
	}
	if g := c.GRPC; g != nil {
		s += fmt.Sprintf(" grpc=%s/%s status=%d msgs=%d/%d", g.Service, g.Method, g.Status, g.ReqMessages, g.RespMessages)
	}
	if c.Gap {
		s += " gap"
	}
	if c.Partial {
		s += " partial"
	}
	return s
}

type result struct {
	calls []*call.Call
	sums  []string
	stats Stats
}

// replay feeds captured events, each split at random points when r is set.
func replay(cfg Config, ev []event, r *rand.Rand) result {
	var res result
	c := NewConn(cfg, &res.stats, func(cl *call.Call) {
		res.calls = append(res.calls, cl)
	})
	t0 := time.Unix(1000, 0)
	for i, e := range ev {
		b := e.data
		for len(b) > 0 {
			n := len(b)
			if r != nil {
				n = 1 + r.Intn(len(b))
			}
			c.Feed(e.dir, b[:n], t0.Add(time.Duration(i)*time.Millisecond))
			b = b[n:]
		}
	}
	c.Close(t0.Add(time.Hour))
	for _, cl := range res.calls {
		res.sums = append(res.sums, summary(cl))
	}
	sort.Strings(res.sums)
	return res
}

func checkReplays(t *testing.T, cfg Config, ev []event, want []string) result {
	t.Helper()
	sort.Strings(want)
	res := replay(cfg, ev, nil)
	if fmt.Sprint(res.sums) != fmt.Sprint(want) {
		t.Fatalf("calls:\n%s\nwant:\n%s", strings.Join(res.sums, "\n"), strings.Join(want, "\n"))
	}
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 50; i++ {
		got := replay(cfg, ev, r)
		if fmt.Sprint(got.sums) != fmt.Sprint(want) {
			t.Fatalf("split run %d:\n%s\nwant:\n%s", i, strings.Join(got.sums, "\n"), strings.Join(want, "\n"))
		}
	}
	return res
}

func TestH2CCaptured(t *testing.T) {
	ev := captureH2C(t, func(c *http.Client, base string) {
		do(t, c, "GET", base+"/api/items?id=7&q=a", "")
		do(t, c, "POST", base+"/api/items", `{"name":"x"}`)
		do(t, c, "GET", base+"/missing", "")
		do(t, c, "GET", base+"/big", "")
		var wg sync.WaitGroup
		for i := 0; i < 5; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				do(t, c, "PUT", base+"/api/items?n="+fmt.Sprint(i), strings.Repeat("b", 1000*(i+1)))
			}()
		}
		wg.Wait()
	})
	want := []string{
		`h2 GET /api/items?id=7&q=a body=0 -> 200 body=22`,
		`h2 POST /api/items? body=12 -> 201 body=15`,
		`h2 GET /missing? body=0 -> 404 body=19`,
		`h2 GET /big? body=0 -> 200 body=100000`,
	}
	for i := 0; i < 5; i++ {
		want = append(want, fmt.Sprintf(`h2 PUT /api/items?n=%d body=%d -> 200 body=20`, i, 1000*(i+1)))
	}
	res := checkReplays(t, Config{}, ev, want)
	for _, cl := range res.calls {
		r := cl.Request
		if r.Host == "" || r.Headers.Get("user-agent") != "h2test" || r.Proto != "HTTP/2.0" {
			t.Errorf("request fields: %+v", r)
		}
		if r.Method == "POST" && string(r.Body) != `{"name":"x"}` {
			t.Errorf("POST body %q", r.Body)
		}
		if r.Path == "/big" && (!cl.Response.BodyTruncated || len(cl.Response.Body) != DefaultMaxBodyBytes) {
			t.Errorf("big body kept %d truncated=%v", len(cl.Response.Body), cl.Response.BodyTruncated)
		}
		if cl.StreamID == 0 || cl.StreamID%2 == 0 {
			t.Errorf("stream id %d", cl.StreamID)
		}
	}
	if res.stats.MidJoin != 0 || res.stats.FrameErrors != 0 || res.stats.HPACKErrors != 0 {
		t.Errorf("stats %+v", res.stats)
	}
}

func TestGRPCCaptured(t *testing.T) {
	ev := captureGRPC(t, func(hc healthpb.HealthClient) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for i := 0; i < 3; i++ {
			if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "svc.A"}); err != nil {
				t.Fatal(err)
			}
		}
		hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "nope"})
	})
	want := []string{
		`grpc POST /grpc.health.v1.Health/Check? body=12 -> 200 body=7 grpc=grpc.health.v1.Health/Check status=0 msgs=1/1`,
		`grpc POST /grpc.health.v1.Health/Check? body=12 -> 200 body=7 grpc=grpc.health.v1.Health/Check status=0 msgs=1/1`,
		`grpc POST /grpc.health.v1.Health/Check? body=12 -> 200 body=7 grpc=grpc.health.v1.Health/Check status=0 msgs=1/1`,
		`grpc POST /grpc.health.v1.Health/Check? body=11 -> 200 body=0 grpc=grpc.health.v1.Health/Check status=5 msgs=1/0`,
	}
	res := checkReplays(t, Config{}, ev, want)
	for _, cl := range res.calls {
		if cl.GRPC.Status == 5 && cl.GRPC.Message != "unknown service" {
			t.Errorf("grpc-message %q", cl.GRPC.Message)
		}
		if cl.GRPC.Timeout == "" || cl.GRPC.Kind() != "unary" {
			t.Errorf("grpc %+v kind %s", cl.GRPC, cl.GRPC.Kind())
		}
	}
}

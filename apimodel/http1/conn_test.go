package http1

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apiwarden/apiwarden/apimodel/call"
)

// summary renders a call compactly so table tests can state expectations.
func summary(c *call.Call) string {
	r := c.Request
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Method, r.Path)
	if r.RawQuery != "" {
		fmt.Fprintf(&b, "?%s", r.RawQuery)
	}
	if r.Host != "" {
		fmt.Fprintf(&b, " host=%s", r.Host)
	}
	if r.BodySize > 0 {
		fmt.Fprintf(&b, " req=%d:%q", r.BodySize, r.Body)
	}
	if r.BodyTruncated {
		b.WriteString(" reqtrunc")
	}
	if r.Chunked {
		b.WriteString(" reqchunked")
	}
	if p := c.Response; p != nil {
		fmt.Fprintf(&b, " -> %d", p.StatusCode)
		if p.BodySize > 0 {
			fmt.Fprintf(&b, " resp=%d:%q", p.BodySize, p.Body)
		}
		if p.BodyTruncated {
			b.WriteString(" resptrunc")
		}
		if p.Chunked {
			b.WriteString(" respchunked")
		}
	} else {
		b.WriteString(" -> none")
	}
	if c.Gap {
		b.WriteString(" gap")
	}
	return b.String()
}

type result struct {
	calls []string
	stats Stats
}

// feed runs client then server bytes through a Conn, each split at the
// given cut points, and closes it.
func feed(cfg Config, client, server string, cutsC, cutsS []int) result {
	var st Stats
	var out []string
	c := NewConn(cfg, &st, func(cl *call.Call) { out = append(out, summary(cl)) })
	t := time.Unix(100, 0)
	send := func(dir Dir, s string, cuts []int) {
		prev := 0
		for _, k := range append(slices.Clone(cuts), len(s)) {
			if k <= prev || k > len(s) {
				continue
			}
			c.Feed(dir, []byte(s[prev:k]), t)
			prev = k
		}
	}
	send(FromClient, client, cutsC)
	send(FromServer, server, cutsS)
	c.Close(t)
	return result{out, st}
}

func randomCuts(r *rand.Rand, n int) []int {
	if n < 2 {
		return nil
	}
	k := r.IntN(8) + 1
	cuts := make([]int, 0, k)
	for range k {
		cuts = append(cuts, r.IntN(n-1)+1)
	}
	slices.Sort(cuts)
	return cuts
}

func everyByte(n int) []int {
	cuts := make([]int, n)
	for i := range cuts {
		cuts[i] = i + 1
	}
	return cuts
}

// checkSplits demands identical output for the whole stream, seeded random
// splits and byte-by-byte feeding.
func checkSplits(t *testing.T, cfg Config, client, server string, want []string) result {
	t.Helper()
	whole := feed(cfg, client, server, nil, nil)
	if !slices.Equal(whole.calls, want) {
		t.Fatalf("calls:\n got %q\nwant %q", whole.calls, want)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 50 {
		got := feed(cfg, client, server, randomCuts(r, len(client)), randomCuts(r, len(server)))
		if !slices.Equal(got.calls, want) {
			t.Fatalf("split %d: calls:\n got %q\nwant %q", i, got.calls, want)
		}
	}
	got := feed(cfg, client, server, everyByte(len(client)), everyByte(len(server)))
	if !slices.Equal(got.calls, want) {
		t.Fatalf("byte by byte: calls:\n got %q\nwant %q", got.calls, want)
	}
	return whole
}

const (
	getQuery = "GET /api/v1/users?limit=10&sort=name HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n"
	okJSON   = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"users\":[]}\n"

	postJSON = "POST /api/v1/users HTTP/1.1\r\nHost: api.example.com\r\nContent-Type: application/json\r\nContent-Length: 27\r\n\r\n{\"name\":\"ann\",\"admin\":true}"
	created  = "HTTP/1.1 201 Created\r\nLocation: /api/v1/users/7\r\nContent-Length: 0\r\n\r\n"

	chunkedReq  = "POST /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;name=val\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: abc\r\n\r\n"
	chunkedResp = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n"
	chunkedOK   = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n"
)

func TestParse(t *testing.T) {
	cases := []struct {
		name           string
		client, server string
		want           []string
	}{
		{"get with query", getQuery, okJSON,
			[]string{`GET /api/v1/users?limit=10&sort=name host=api.example.com -> 200 resp=13:"{\"users\":[]}\n"`}},
		{"post json", postJSON, created,
			[]string{`POST /api/v1/users host=api.example.com req=27:"{\"name\":\"ann\",\"admin\":true}" -> 201`}},
		{"chunked request and response", chunkedReq, chunkedOK,
			[]string{`POST /upload host=h req=11:"hello world" reqchunked -> 200 resp=9:"Wikipedia" respchunked`}},
		{"transfer codings ending in chunked", "GET / HTTP/1.1\r\n\r\n", chunkedResp,
			[]string{`GET / -> 200 resp=10:"0123456789" respchunked`}},
		{"pipelined", getQuery + postJSON + "GET /x HTTP/1.1\r\n\r\n", okJSON + created + "HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno\n",
			[]string{
				`GET /api/v1/users?limit=10&sort=name host=api.example.com -> 200 resp=13:"{\"users\":[]}\n"`,
				`POST /api/v1/users host=api.example.com req=27:"{\"name\":\"ann\",\"admin\":true}" -> 201`,
				`GET /x -> 404 resp=3:"no\n"`,
			}},
		{"head has no body", "HEAD /big HTTP/1.1\r\nHost: h\r\n\r\nGET /next HTTP/1.1\r\n\r\n",
			"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
			[]string{`HEAD /big host=h -> 200`, `GET /next -> 200 resp=2:"ok"`}},
		{"204 and 304 have no body", "DELETE /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\nIf-None-Match: \"x\"\r\n\r\n",
			"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\nHTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 99\r\n\r\n",
			[]string{`DELETE /a -> 204`, `GET /b -> 304`}},
		{"100-continue interim skipped",
			"PUT /f HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nabcd",
			"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
			[]string{`PUT /f req=4:"abcd" -> 200`}},
		{"connection close body", "GET /old HTTP/1.0\r\n\r\n",
			"HTTP/1.0 200 OK\r\nConnection: close\r\n\r\nbody until close",
			[]string{`GET /old -> 200 resp=16:"body until close"`}},
		{"websocket upgrade stops parsing",
			"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x85garbage frames",
			"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello HTTP/1.1 200 OK\r\n\r\n",
			[]string{`GET /ws host=h -> 101`}},
		{"upgrade refused keeps parsing",
			"GET /ws HTTP/1.1\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
			"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nno",
			[]string{`GET /ws -> 200 resp=2:"no"`}},
		{"connect tunnel", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n\x16\x03\x01\x02\x00",
			"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x03",
			[]string{`CONNECT example.com:443 host=example.com:443 -> 200`}},
		{"absolute form", "GET http://proxy.test:8080/p?q=1 HTTP/1.1\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
			[]string{`GET /p?q=1 host=proxy.test:8080 -> 200`}},
		{"unanswered", getQuery, "",
			[]string{`GET /api/v1/users?limit=10&sort=name host=api.example.com -> none`}},
		{"request cut short", "POST /p HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc", "",
			[]string{`POST /p req=3:"abc" -> none gap`}},
		{"malformed line then valid request", "GARBAGE LINE\r\nX: y\r\n\r\nGET /ok HTTP/1.1\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
			[]string{`GET /ok -> 200`}},
		{"bare LF line endings", "GET /lf HTTP/1.1\nHost: h\n\n", "HTTP/1.1 200 OK\nContent-Length: 1\n\nx",
			[]string{`GET /lf host=h -> 200 resp=1:"x"`}},
		{"leading empty lines", "\r\n\r\nGET / HTTP/1.1\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
			[]string{`GET / -> 200`}},
		{"binary garbage", "\x00\x01\x02\xff\xfe binary \x00 protocol\r\n\r\n\x00\x00", "\x17\x03\x03\x00\x10",
			nil},
		{"http2 prior knowledge", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "\x00\x00\x06\x04", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkSplits(t, Config{}, tc.client, tc.server, tc.want)
		})
	}
}

func TestBodyCapBound(t *testing.T) {
	body := strings.Repeat("x", 1<<20)
	client := "POST /up HTTP/1.1\r\nContent-Length: 1048576\r\n\r\n" + body + "GET /after HTTP/1.1\r\n\r\n"
	server := "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
	var st Stats
	var calls []*call.Call
	c := NewConn(Config{MaxBodyBytes: 100}, &st, func(cl *call.Call) { calls = append(calls, cl) })
	now := time.Unix(1, 0)
	for i := 0; i < len(client); i += 1460 {
		c.Feed(FromClient, []byte(client[i:min(i+1460, len(client))]), now)
	}
	c.Feed(FromServer, []byte(server), now)
	if len(calls) != 2 {
		t.Fatalf("got %d calls", len(calls))
	}
	r := calls[0].Request
	if len(r.Body) != 100 || r.BodySize != 1<<20 || !r.BodyTruncated || cap(r.Body) != 100 {
		t.Fatalf("body len %d cap %d size %d trunc %v", len(r.Body), cap(r.Body), r.BodySize, r.BodyTruncated)
	}
	if calls[1].Request.Path != "/after" || st.BodyTruncated != 1 {
		t.Fatalf("second %q, stats %+v", calls[1].Request.Path, st)
	}
}

func TestHeaderLimits(t *testing.T) {
	many := "GET / HTTP/1.1\r\n" + strings.Repeat("X-A: b\r\n", 20) + "\r\n"
	res := checkSplits(t, Config{MaxHeaders: 10}, many+"GET /fine HTTP/1.1\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
		[]string{`GET /fine -> 200`})
	if res.stats.HeaderLimit != 1 || res.stats.ParseErrors != 1 {
		t.Fatalf("stats %+v", res.stats)
	}
	huge := "GET / HTTP/1.1\r\nCookie: " + strings.Repeat("a", 2000) + "\r\n\r\n"
	res = checkSplits(t, Config{MaxHeaderBytes: 1024}, huge+"GET /fine HTTP/1.1\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
		[]string{`GET /fine -> 200`})
	if res.stats.HeaderLimit == 0 {
		t.Fatalf("stats %+v", res.stats)
	}
	// Exactly at the bound is accepted.
	at := "GET / HTTP/1.1\r\n" + strings.Repeat("X-A: b\r\n", 10) + "\r\n"
	checkSplits(t, Config{MaxHeaders: 10}, at, "", []string{`GET / -> none`})
}

func TestGarbageIgnoredAfterFailures(t *testing.T) {
	garbage := strings.Repeat("\x00\x01binary\n", 400) + "GET /late HTTP/1.1\r\n\r\n"
	res := checkSplits(t, Config{MaxFailures: 3, MaxHeaderBytes: 256}, garbage, "", nil)
	if res.stats.IgnoredConns != 1 || res.stats.ParseErrors != 3 {
		t.Fatalf("stats %+v", res.stats)
	}
}

func TestGapInBody(t *testing.T) {
	var st Stats
	var out []string
	c := NewConn(Config{}, &st, func(cl *call.Call) { out = append(out, summary(cl)) })
	now := time.Unix(1, 0)
	// Known length: the gap is skipped inside the body, the next request parses.
	c.Feed(FromClient, []byte("POST /a HTTP/1.1\r\nContent-Length: 10\r\n\r\nab"), now)
	c.Gap(FromClient, 5, now)
	c.Feed(FromClient, []byte("xyzGET /b HTTP/1.1\r\n\r\n"), now)
	// Chunked: the gap loses framing; resync at the next request line.
	c.Feed(FromClient, []byte("POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc"), now)
	c.Gap(FromClient, 100, now)
	c.Feed(FromClient, []byte("junk\r\n0\r\n\r\nGET /d HTTP/1.1\r\n\r\n"), now)
	c.Feed(FromServer, []byte(strings.Repeat("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 4)), now)
	c.Close(now)
	want := []string{`POST /a req=10:"ab" reqtrunc -> 200 gap`, `GET /b -> 200`, `POST /c req=3:"abc" reqchunked -> 200 gap`, `GET /d -> 200`}
	if !slices.Equal(out, want) {
		t.Fatalf("got %q\nwant %q", out, want)
	}
}

func TestPipelineBound(t *testing.T) {
	client := strings.Repeat("GET /p HTTP/1.1\r\n\r\n", 5)
	res := checkSplits(t, Config{MaxPipeline: 2}, client, "", []string{
		"GET /p -> none", "GET /p -> none", "GET /p -> none", "GET /p -> none", "GET /p -> none"})
	if res.stats.PipelineLimit != 3 || res.stats.Unanswered != 5 {
		t.Fatalf("stats %+v", res.stats)
	}
}

func TestLatencyAndAddresses(t *testing.T) {
	var got *call.Call
	c := NewConn(Config{}, &Stats{}, func(cl *call.Call) { got = cl })
	t0 := time.Unix(10, 0)
	c.Feed(FromClient, []byte("GET / HTTP/1.1\r\n"), t0)
	c.Feed(FromClient, []byte("\r\n"), t0.Add(time.Millisecond))
	c.Feed(FromServer, []byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), t0.Add(6*time.Millisecond))
	if got == nil || got.Latency != 5*time.Millisecond || !got.Request.Start.Equal(t0) {
		t.Fatalf("call %+v", got)
	}
}

func TestDetect(t *testing.T) {
	for in, want := range map[string]Kind{
		"GET / HTTP/1.1": KindRequest, "OPTIONS * HTTP/1.1": KindRequest, "HTTP/1.1 200 OK": KindResponse,
		"\x16\x03\x01": KindUnknown, "GETX": KindUnknown, "": KindUnknown, "HTTP/2 200": KindUnknown,
	} {
		if got := Detect([]byte(in)); got != want {
			t.Errorf("Detect(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestParseRequestHead(t *testing.T) {
	var r call.Request
	if st := ParseRequestHead([]byte(getQuery), &r, 10); st != Done || r.Path != "/api/v1/users" || r.Headers.Get("user-agent") != "curl/8.5.0" {
		t.Fatalf("state %v request %+v", st, r)
	}
	if st := ParseRequestHead([]byte("GET / HTTP/1.1\r\nbad header\r\n\r\n"), &r, 10); st != Invalid {
		t.Fatalf("state %v", st)
	}
}

func TestBadTarget(t *testing.T) {
	for i := 0; i < 256; i++ {
		for pos := range 20 {
			b := []byte("/abcdefghijklmnopqrs")
			b[pos] = byte(i)
			want := i <= ' ' || i == 0x7f
			if got := badTarget(string(b)); got != want {
				t.Fatalf("byte %#x at %d: got %v", i, pos, got)
			}
		}
	}
}

func TestBodyBudget(t *testing.T) {
	bb := &BodyBudget{Max: 10}
	var st Stats
	var calls []*call.Call
	emit := func(cl *call.Call) { calls = append(calls, cl) }
	a := NewConn(Config{BodyBudget: bb}, &st, emit)
	b := NewConn(Config{BodyBudget: bb}, &st, emit)
	now := time.Unix(1, 0)
	a.Feed(FromClient, []byte("POST /a HTTP/1.1\r\nContent-Length: 8\r\n\r\n12345678"), now)
	b.Feed(FromClient, []byte("POST /b HTTP/1.1\r\nContent-Length: 8\r\n\r\nabcdefgh"), now)
	if bb.Used() != 10 || st.BodyBudgetLimit != 1 {
		t.Fatalf("used %d stats %+v", bb.Used(), st)
	}
	a.Feed(FromServer, []byte("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nokok"), now)
	// The budget was spent: this body is counted but not kept.
	if bb.Used() != 2 || len(calls) != 1 || calls[0].Response.Body != nil || !calls[0].Response.BodyTruncated || st.BodyBudgetLimit != 2 {
		t.Fatalf("used %d calls %d stats %+v", bb.Used(), len(calls), st)
	}
	b.Close(now)
	if bb.Used() != 0 || string(calls[1].Request.Body) != "ab" || !calls[1].Request.BodyTruncated {
		t.Fatalf("used %d body %q", bb.Used(), calls[1].Request.Body)
	}
	// An upgraded connection returns what it held.
	c := NewConn(Config{BodyBudget: bb}, &st, emit)
	c.Feed(FromClient, []byte("GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"), now)
	c.Feed(FromServer, []byte("HTTP/1.1 101 Switching Protocols\r\n\r\n"), now)
	d := NewConn(Config{BodyBudget: bb}, &st, emit)
	d.Feed(FromServer, []byte("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\norphan"), now)
	d.Close(now)
	if bb.Used() != 0 {
		t.Fatalf("used %d", bb.Used())
	}
}

// TestOnRequestBeforeResponse: every complete request is announced once, in
// order, before any of its response bytes are fed, and it is the same
// request the call later carries.
func TestOnRequestBeforeResponse(t *testing.T) {
	var st Stats
	var calls []*call.Call
	c := NewConn(Config{}, &st, func(cl *call.Call) { calls = append(calls, cl) })
	var seen []*call.Request
	c.OnRequest = func(conn *Conn, r *call.Request) {
		if conn != c {
			t.Error("wrong conn")
		}
		seen = append(seen, r)
	}
	now := time.Unix(0, 0)
	body := `{"a":1}`
	c.Feed(FromClient, []byte("GET /one HTTP/1.1\r\nHost: x\r\n\r\nPOST /two HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\n"+body[:3]), now)
	if len(seen) != 1 || seen[0].Path != "/one" {
		t.Fatalf("after first request: %d announced", len(seen))
	}
	c.Feed(FromClient, []byte(body[3:]), now)
	if len(seen) != 2 || seen[1].Path != "/two" || string(seen[1].Body) != body {
		t.Fatalf("second request not announced when complete: %+v", seen)
	}
	c.Feed(FromServer, []byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"), now)
	if len(calls) != 2 || calls[0].Request != seen[0] || calls[1].Request != seen[1] {
		t.Fatalf("calls do not carry the announced requests")
	}
}

// TestOnInvalidRequestSeesRejectedHeads: a request head the parser refuses
// (ambiguous framing) is handed to OnInvalidRequest whole, however it was
// segmented; a response the parser refuses is not.
func TestOnInvalidRequestSeesRejectedHeads(t *testing.T) {
	head := "POST /cart HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nContent-Length: 7\r\n\r\n"
	for split := 1; split < len(head); split += 7 {
		var st Stats
		c := NewConn(Config{}, &st, func(*call.Call) {})
		var got []string
		c.OnInvalidRequest = func(_ *Conn, h []byte) { got = append(got, string(h)) }
		now := time.Unix(0, 0)
		c.Feed(FromClient, []byte(head[:split]), now)
		c.Feed(FromClient, []byte(head[split:]+"0\r\n\r\n"), now)
		if len(got) != 1 || got[0] != head {
			t.Fatalf("split %d: %q", split, got)
		}
		c.Feed(FromServer, []byte("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"), now)
		if len(got) != 1 {
			t.Fatalf("response head reported: %q", got)
		}
	}
}

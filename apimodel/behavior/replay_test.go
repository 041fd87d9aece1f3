package behavior

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/apiwarden/apiwarden/apimodel/call"
)

var update = flag.Bool("update", false, "rewrite testdata/replay.jsonl and testdata/replay.golden")

// recorded is one line of testdata/replay.jsonl: a call as the agent
// reconstructs it, reduced to what the model reads.
type recorded struct {
	Template string `json:"tmpl"`
	Src      string `json:"src"`
	Method   string `json:"m"`
	Path     string `json:"p"`
	Query    string `json:"q,omitempty"`
	Body     string `json:"body,omitempty"`
	Status   int    `json:"st"`
	RespBody string `json:"resp,omitempty"`
	RespSize int64  `json:"size"`
	// At is milliseconds after t0; -1: no start time (the injected clock).
	At int `json:"at"`
}

func (r recorded) call() *call.Call {
	at := time.Time{}
	if r.At >= 0 {
		at = t0.Add(time.Duration(r.At) * time.Millisecond)
	}
	c := mkCall(r.Src, r.Method, r.Path, r.Status, at)
	c.Request.RawQuery = r.Query
	if r.Body != "" {
		c.Request.Body = []byte(r.Body)
		c.Request.BodySize = int64(len(r.Body))
		c.Request.Headers = call.Headers{{Name: "Content-Type", Value: "application/json"}}
	}
	c.Response.Body = []byte(r.RespBody)
	c.Response.BodySize = r.RespSize
	if r.RespBody != "" && r.RespSize == 0 {
		c.Response.BodySize = int64(len(r.RespBody))
	}
	return c
}

// recordCalls builds the replay fixture: benign traffic over two
// windows with every abuse pattern mixed in, JSON bodies with many keys
// (their order must not matter), and calls without a start time (they
// take the injected clock).
func recordCalls() []recorded {
	var out []recorded
	const users = "/api/v1/users/{userId}"
	for i := 0; i < 150; i++ {
		ms := i * 800 // 150 rounds over 2 minutes
		src := fmt.Sprintf("10.20.0.%d", 1+i%8)
		out = append(out,
			recorded{Template: "/api/v1/orders/{orderId}", Src: src, Method: "GET", Path: fmt.Sprintf("/api/v1/orders/%d", i%3), Status: 200, RespSize: 100, At: ms},
			recorded{Template: users, Src: src, Method: "PUT", Path: fmt.Sprintf("/api/v1/users/%d", i%8), Status: 200, At: ms,
				Body:     `{"name":"a","age":30,"city":"x","zip":"1","tags":["a"],"prefs":{"a":1,"b":true}}`,
				RespBody: `{"id":1,"email":"a@example.com"}`})
		st := 200
		if i%7 == 0 {
			st = 401
		}
		out = append(out, recorded{Template: "/api/v1/login", Src: src, Method: "POST", Path: "/api/v1/login", Status: st, At: ms,
			Body: fmt.Sprintf(`{"username":"user%d","password":"pw"}`, i%8)})
	}
	t := 130_000
	for i := 0; i < 150; i++ { // a scraper
		out = append(out, recorded{Template: "/api/v1/orders/{orderId}", Src: "192.0.2.66", Method: "GET",
			Path: fmt.Sprintf("/api/v1/orders/%d", 1000+i), Status: 200, RespSize: 100, At: t + i})
	}
	for i := 0; i < 60; i++ { // stuffing one account from 4 addresses
		out = append(out, recorded{Template: "/api/v1/login", Src: fmt.Sprintf("198.51.100.%d", 1+i%4), Method: "POST",
			Path: "/api/v1/login", Status: 401, At: t + 200 + i, Body: `{"username":"carol@example.com","password":"x"}`})
	}
	for i := 0; i < 30; i++ { // brute force from one address
		out = append(out, recorded{Template: "/api/v1/login", Src: "203.0.113.9", Method: "POST", Path: "/api/v1/login",
			Status: 401, At: t + 300 + i, Body: fmt.Sprintf(`{"username":"victim%d","password":"x"}`, i)})
	}
	// Mass assignment with keys in a different order each time, a type
	// drift and an unknown field, a card leak and a size jump (both
	// without a start time), a shadow endpoint.
	for i, b := range []string{
		`{"zip":"1","role":"admin","name":"a","isAdmin":true,"age":30}`,
		`{"isAdmin":true,"age":30,"role":"admin","name":"a","zip":"1"}`,
		`{"name":"a","age":"thirty","nickname":"n","city":"x"}`,
	} {
		out = append(out, recorded{Template: users, Src: fmt.Sprintf("192.0.2.%d", 80+i), Method: "PUT", Path: "/api/v1/users/1",
			Status: 200, At: t + 400 + i, Body: b, RespBody: `{"id":1}`})
	}
	// Past the endpoint's first 64 calls one response in 16 is scanned:
	// the leak repeats.
	for range 16 {
		out = append(out, recorded{Template: users, Src: "192.0.2.90", Method: "PUT", Path: "/api/v1/users/1", Status: 200, At: -1,
			Body: `{"name":"a"}`, RespBody: `{"id":1,"email":"a@example.com","card":"5500 0000 0000 0004"}`})
	}
	out = append(out,
		recorded{Template: users, Src: "192.0.2.91", Method: "PUT", Path: "/api/v1/users/1", Status: 200, At: -1,
			Body: `{"name":"a"}`, RespSize: 1 << 20},
		recorded{Template: "/api/v1/internal/debug", Src: "192.0.2.92", Method: "GET", Path: "/api/v1/internal/debug", Status: 200, At: t + 500})
	return out
}

// replaySpec documents everything the replay calls but the debug endpoint.
const replaySpec = `openapi: 3.0.3
info: {title: shop, version: "1"}
paths:
  /api/v1/orders/{id}:
    parameters: [{name: id, in: path, required: true, schema: {type: integer}}]
    get: {responses: {"200": {description: ok}}}
  /api/v1/users/{id}:
    parameters: [{name: id, in: path, required: true, schema: {type: integer}}]
    put: {responses: {"200": {description: ok}}}
  /api/v1/login:
    post: {responses: {"200": {description: ok}}}
`

func loadRecorded(t *testing.T) []recorded {
	t.Helper()
	const path = "testdata/replay.jsonl"
	if *update {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		for _, r := range recordCalls() {
			if err := enc.Encode(r); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []recorded
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r recorded
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// replay feeds the recorded calls to a fresh model (fixed key, fixed
// clock, positive mode against replaySpec).
func replay(t *testing.T, calls []recorded) []Anomaly {
	t.Helper()
	sp, err := ParseSpec([]byte(replaySpec))
	if err != nil {
		t.Fatal(err)
	}
	clock := t0.Add(3 * time.Minute)
	m := newModel(Config{LearningCalls: 100, Positive: true, Now: func() time.Time { return clock }})
	m.SetSpec("shop", sp)
	var out []Anomaly
	for _, r := range calls {
		out = append(out, m.Observe(r.call(), "shop", r.Template)...)
	}
	return out
}

// TestReplayRecordedDeterministic: the recorded calls, replayed twice,
// give the identical anomaly list, and the one in testdata/replay.golden
// (so also across processes, whose map orders differ).
func TestReplayRecordedDeterministic(t *testing.T) {
	calls := loadRecorded(t)
	a := replay(t, calls)
	b := replay(t, loadRecorded(t))
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("two replays differ:\n%v\n---\n%v", a, b)
	}
	var sb bytes.Buffer
	for _, an := range a {
		fmt.Fprintf(&sb, "%s %s %s %s %q\n", an.RuleID, an.Client.Source, an.Endpoint, an.Part, an.Excerpt)
	}
	const golden = "testdata/replay.golden"
	if *update {
		if err := os.WriteFile(golden, sb.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sb.Bytes(), want) {
		t.Fatalf("replay of %d calls differs from %s:\n%s", len(calls), golden, sb.String())
	}
	seen := map[string]bool{}
	for _, an := range a {
		seen[an.RuleID] = true
	}
	for _, r := range []string{RuleEnumeration, RuleCredentialStuffing, RuleBruteForce, RuleMassAssignment, RuleTypeDrift,
		RuleUnknownField, RuleSensitiveExposure, RuleResponseSize, RuleShadowEndpoint} {
		if !seen[r] {
			t.Errorf("replay raised no %s", r)
		}
	}
	t.Logf("%d recorded calls, %d findings", len(calls), len(a))
}

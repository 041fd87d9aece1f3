package e2e

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/apiwarden/apiwarden/e2e/harness"
)

// Services of the workload.
const (
	svcGo    = "goapi"
	svcPy    = "py"
	svcNginx = "nginx"
)

// req is one request of the workload and what it must produce.
type req struct {
	svc      string
	method   string
	target   string // path?query as sent
	headers  map[string]string
	body     string
	bodySize int  // synthetic body of this size
	chunked  bool // Transfer-Encoding: chunked
	status   int  // status the server answers
	tmpl     string
}

// step is a group of requests sent by one client invocation: "curl" (one
// curl per request), "keepalive" (one Go connection, sequential) or
// "pipeline" (one Go connection, all requests in one write).
type step struct {
	name string
	via  string
	reqs []req
	v6   bool // over IPv6 (only when the topology has it)
}

const (
	testJWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6ImFkYSJ9.c2lnbmF0dXJlLW5vdC1jaGVja2Vk"
	mb      = 1 << 20
)

var jsonHdr = map[string]string{"Content-Type": "application/json"}

func g(svc, method, target string, status int, tmpl string) req {
	return req{svc: svc, method: method, target: target, status: status, tmpl: tmpl}
}

func withBody(r req, body string) req { r.body = body; r.headers = jsonHdr; return r }

func withHdr(r req, k, v string) req {
	h := map[string]string{}
	for a, b := range r.headers {
		h[a] = b
	}
	h[k] = v
	r.headers = h
	return r
}

// workload is the script. Expected inventory and server logs derive from it.
// With ipv6, a few goapi steps go over IPv6 and must land in the same endpoints.
func workload(ipv6 bool) []step {
	steps := script()
	if ipv6 {
		const u = "/api/v1"
		steps = append(steps,
			step{name: "ipv6 curl", via: "curl", v6: true, reqs: []req{g(svcGo, "GET", u+"/users/11", 200, u+"/users/{}")}},
			step{name: "ipv6 pipeline", via: "pipeline", v6: true, reqs: []req{
				g(svcGo, "GET", u+"/search?q=v6&page=3", 200, u+"/search"),
				g(svcGo, "GET", u+"/reports/2026-02-28", 200, u+"/reports/{}"),
			}})
	}
	return steps
}

func script() []step {
	const u = "/api/v1"
	users := []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "niaj", "olivia", "peggy"}
	var profiles []req
	for _, n := range users {
		profiles = append(profiles, g(svcGo, "GET", u+"/profiles/"+n, 200, u+"/profiles/{}"))
	}
	upload := req{svc: svcGo, method: "POST", target: u + "/upload", bodySize: mb, status: 200, tmpl: u + "/upload", headers: jsonHdr}
	chunkedUpload := upload
	chunkedUpload.chunked = true
	return []step{
		{name: "list users", via: "curl", reqs: []req{g(svcGo, "GET", u+"/users", 200, u+"/users")}},
		{name: "head users", via: "curl", reqs: []req{g(svcGo, "HEAD", u+"/users", 200, u+"/users")}},
		{name: "create user", via: "curl", reqs: []req{withBody(g(svcGo, "POST", u+"/users", 201, u+"/users"), `{"name":"zoe","email":"zoe@example.com","age":31}`)}},
		{name: "user crud keepalive", via: "keepalive", reqs: []req{
			g(svcGo, "GET", u+"/users/1", 200, u+"/users/{}"),
			g(svcGo, "GET", u+"/users/2", 200, u+"/users/{}"),
			g(svcGo, "GET", u+"/users/17", 200, u+"/users/{}"),
			g(svcGo, "GET", u+"/users/0", 404, u+"/users/{}"),
			withBody(g(svcGo, "PUT", u+"/users/5", 200, u+"/users/{}"), `{"name":"eve"}`),
			g(svcGo, "DELETE", u+"/users/7", 204, u+"/users/{}"),
		}},
		{name: "orders with query", via: "curl", reqs: []req{g(svcGo, "GET", u+"/users/3/orders?limit=2&status=open", 200, u+"/users/{}/orders")}},
		{name: "orders keepalive", via: "keepalive", reqs: []req{
			g(svcGo, "GET", u+"/users/4/orders?limit=5", 200, u+"/users/{}/orders"),
			g(svcGo, "GET", u+"/users/9/orders?status=closed", 400, u+"/users/{}/orders"),
		}},
		{name: "ids pipelined", via: "pipeline", reqs: []req{
			g(svcGo, "GET", u+"/orders/3f2b8c1e-9a4d-4e5f-8b6a-1c2d3e4f5a6b", 200, u+"/orders/{}"),
			g(svcGo, "GET", u+"/orders/7d9e0f1a-2b3c-4d5e-9f60-718293a4b5c6", 200, u+"/orders/{}"),
			g(svcGo, "GET", u+"/files/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", 200, u+"/files/{}"),
		}},
		{name: "dates and emails", via: "keepalive", reqs: []req{
			g(svcGo, "GET", u+"/reports/2024-01-15", 200, u+"/reports/{}"),
			g(svcGo, "GET", u+"/reports/2025-12-31", 200, u+"/reports/{}"),
			g(svcGo, "GET", u+"/accounts/alice@example.com", 200, u+"/accounts/{}"),
			g(svcGo, "GET", u+"/accounts/bob.smith@example.org", 200, u+"/accounts/{}"),
		}},
		{name: "chunked upload 1MB", via: "curl", reqs: []req{chunkedUpload}},
		{name: "content-length upload 1MB in 4KB writes", via: "keepalive", reqs: []req{upload}},
		{name: "big response", via: "curl", reqs: []req{g(svcGo, "GET", u+"/big", 200, u+"/big")}},
		{name: "big response keepalive", via: "keepalive", reqs: []req{g(svcGo, "GET", u+"/big", 200, u+"/big"), g(svcGo, "GET", u+"/users", 200, u+"/users")}},
		{name: "search", via: "curl", reqs: []req{g(svcGo, "GET", u+"/search?q=shoes&page=2", 200, u+"/search")}},
		{name: "search keepalive", via: "keepalive", reqs: []req{g(svcGo, "GET", u+"/search?q=hat", 200, u+"/search")}},
		{name: "profiles (cardinality)", via: "keepalive", reqs: profiles},
		{name: "etag 200", via: "curl", reqs: []req{g(svcGo, "GET", u+"/etag", 200, u+"/etag")}},
		{name: "etag 304", via: "curl", reqs: []req{withHdr(g(svcGo, "GET", u+"/etag", 304, u+"/etag"), "If-None-Match", `"v1"`)}},
		{name: "admin with JWT", via: "curl", reqs: []req{withHdr(g(svcGo, "GET", u+"/admin/stats", 200, u+"/admin/stats"), "Authorization", "Bearer "+testJWT)}},
		{name: "admin without JWT", via: "curl", reqs: []req{g(svcGo, "GET", u+"/admin/stats", 401, u+"/admin/stats")}},
		{name: "mixed pipeline", via: "pipeline", reqs: []req{
			g(svcGo, "GET", u+"/users", 200, u+"/users"),
			g(svcGo, "GET", u+"/search?q=x&page=1", 200, u+"/search"),
			g(svcGo, "DELETE", u+"/users/8", 204, u+"/users/{}"),
		}},

		{name: "py health", via: "curl", reqs: []req{g(svcPy, "GET", "/health", 200, "/health")}},
		{name: "py items keepalive", via: "keepalive", reqs: []req{
			g(svcPy, "GET", "/items?category=tools", 200, "/items"),
			g(svcPy, "GET", "/items/1", 200, "/items/{}"),
			g(svcPy, "GET", "/items/99", 404, "/items/{}"),
		}},
		{name: "py create", via: "curl", reqs: []req{withBody(g(svcPy, "POST", "/items", 201, "/items"), `{"name":"drill","price":49.5}`)}},
		{name: "py pipeline", via: "pipeline", reqs: []req{
			g(svcPy, "GET", "/health", 200, "/health"),
			g(svcPy, "GET", "/items/2", 200, "/items/{}"),
			g(svcPy, "DELETE", "/items/2", 204, "/items/{}"),
		}},

		{name: "nginx static", via: "curl", reqs: []req{g(svcNginx, "GET", "/static/config.json", 200, "/static/config.json")}},
		{name: "nginx static 2", via: "curl", reqs: []req{g(svcNginx, "GET", "/static/version.json", 200, "/static/version.json")}},
		{name: "nginx keepalive", via: "keepalive", reqs: []req{
			g(svcNginx, "GET", "/ping", 200, "/ping"),
			g(svcNginx, "GET", "/ping", 200, "/ping"),
			g(svcNginx, "GET", "/gone", 404, "/gone"),
			g(svcNginx, "GET", "/status", 204, "/status"),
		}},
		{name: "nginx pipeline", via: "pipeline", reqs: []req{
			g(svcNginx, "GET", "/ping", 200, "/ping"),
			g(svcNginx, "GET", "/static/config.json", 200, "/static/config.json"),
			g(svcNginx, "GET", "/gone", 404, "/gone"),
		}},
	}
}

// runWorkload sends every step and checks each client saw the expected status.
func runWorkload(ctx context.Context, t *testing.T, w *world, steps []step) {
	t.Helper()
	for _, s := range steps {
		statuses, err := w.send(ctx, s)
		if err != nil {
			t.Errorf("step %q: %v", s.name, err)
			continue
		}
		for i, r := range s.reqs {
			if i >= len(statuses) || statuses[i] != r.status {
				t.Errorf("step %q: %s %s: status %v, want %d", s.name, r.method, r.target, statuses, r.status)
				break
			}
		}
	}
}

func (w *world) server(svc string) *harness.Server {
	switch svc {
	case svcGo:
		return w.goapi
	case svcPy:
		return w.py
	default:
		return w.nginx
	}
}

// send runs one step and returns the status of each request.
func (w *world) send(ctx context.Context, s step) ([]int, error) {
	if s.via == "curl" {
		var out []int
		for _, r := range s.reqs {
			code, err := w.curl(ctx, r, s.v6)
			if err != nil {
				return out, err
			}
			out = append(out, code)
		}
		return out, nil
	}
	addr := w.server(s.reqs[0].svc).Addr
	if s.v6 {
		addr = w.server(s.reqs[0].svc).Addr6
	}
	job := harness.ClientJob{Mode: s.via, Addr: addr}
	for _, r := range s.reqs {
		job.Requests = append(job.Requests, harness.ClientRequest{Method: r.method, Target: r.target,
			Headers: r.headers, Body: r.body, BodySize: r.bodySize, Chunked: r.chunked})
	}
	res, err := w.clients.Go(ctx, job)
	return res.Statuses, err
}

func (w *world) curl(ctx context.Context, r req, v6 bool) (int, error) {
	addr := w.server(r.svc).Addr
	if v6 {
		addr = w.server(r.svc).Addr6
	}
	url := "http://" + addr + r.target
	// -g: no URL globbing, so IPv6 brackets stay literal.
	args := []string{"-g", "-o", "/dev/null", "-w", "%{http_code}"}
	switch r.method {
	case "GET":
	case "HEAD":
		args = append(args, "-I")
	default:
		args = append(args, "-X", r.method)
	}
	for k, v := range r.headers {
		args = append(args, "-H", k+": "+v)
	}
	if r.body != "" {
		args = append(args, "--data-binary", r.body)
	}
	if r.bodySize > 0 {
		f := filepath.Join(w.dir, fmt.Sprintf("body-%d.bin", r.bodySize))
		if _, err := os.Stat(f); err != nil {
			if err := os.WriteFile(f, []byte(strings.Repeat("b", r.bodySize)), 0o644); err != nil {
				return 0, err
			}
		}
		args = append(args, "--data-binary", "@"+f)
	}
	if r.chunked {
		args = append(args, "-H", "Transfer-Encoding: chunked")
	}
	out, err := w.clients.Curl(ctx, append(args, url)...)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(out))
}

// expectedLogs is what each server must have logged: "METHOD PATH STATUS", sorted.
func expectedLogs(steps []step) map[string][]string {
	out := map[string][]string{}
	for _, s := range steps {
		for _, r := range s.reqs {
			path, _, _ := strings.Cut(r.target, "?")
			out[r.svc] = append(out[r.svc], fmt.Sprintf("%s %s %d", r.method, path, r.status))
		}
	}
	for _, v := range out {
		sort.Strings(v)
	}
	return out
}

// checkServerLogs asserts every server handled exactly the scripted requests.
func checkServerLogs(t *testing.T, w *world, steps []step) {
	t.Helper()
	want := expectedLogs(steps)
	for _, svc := range []string{svcGo, svcPy, svcNginx} {
		got, err := w.server(svc).RequestLog()
		if err != nil {
			t.Errorf("%s log: %v", svc, err)
			continue
		}
		sort.Strings(got)
		if d := diffLines(want[svc], got); d != "" {
			t.Errorf("%s request log differs from the workload (-want +got):\n%s", svc, d)
		}
	}
}

// diffLines is a multiset diff of two sorted line lists.
func diffLines(want, got []string) string {
	var b strings.Builder
	i, j := 0, 0
	for i < len(want) || j < len(got) {
		switch {
		case j >= len(got) || (i < len(want) && want[i] < got[j]):
			fmt.Fprintf(&b, "-%s\n", want[i])
			i++
		case i >= len(want) || got[j] < want[i]:
			fmt.Fprintf(&b, "+%s\n", got[j])
			j++
		default:
			i++
			j++
		}
	}
	return b.String()
}

// queryValues returns the first value of each query parameter of a target.
func queryValues(target string) map[string]string {
	_, q, ok := strings.Cut(target, "?")
	if !ok {
		return nil
	}
	v, _ := url.ParseQuery(q)
	out := map[string]string{}
	for k, vals := range v {
		out[k] = vals[0]
	}
	return out
}

// queryNames returns the query parameter names of a target.
func queryNames(target string) []string {
	_, q, ok := strings.Cut(target, "?")
	if !ok {
		return nil
	}
	v, _ := url.ParseQuery(q)
	var out []string
	for k := range v {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

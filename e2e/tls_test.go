package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiwarden/apiwarden/e2e/harness"
)

// TLS servers of the TLS tests, by the name the workload uses.
const (
	tlsNginx  = "nginx"  // shared libssl
	tlsPy     = "py"     // python ssl module -> shared libssl
	tlsNode   = "node"   // OpenSSL linked into /usr/bin/node
	tlsGo     = "goapi"  // Go crypto/tls, stripped binary, started after the agent
	tlsGnuTLS = "gnutls" // gnutls-serv --http, libgnutls
)

// tlsFamily is the library family each server's calls must be credited to:
// a substring of the inventory's `tls` keys and of /v1/processes visibility.
var tlsFamily = map[string]string{tlsNginx: "openssl", tlsPy: "openssl", tlsNode: "openssl", tlsGo: "go", tlsGnuTLS: "gnutls"}

// treq is one request of the TLS workload.
type treq struct {
	method, target, tmpl string
	status               int
	body                 string
	bodySize             int
}

// tstep is one client invocation against one server: "curl" (TLS 1.3, all
// requests on one keep-alive connection), "curl12" (same, TLS 1.2 only),
// "go" (goclient keep-alive), "py" (python http.client keep-alive).
type tstep struct {
	name string
	svc  string
	via  string
	reqs []treq
}

func tr(method, target string, status int, tmpl string) treq {
	return treq{method: method, target: target, status: status, tmpl: tmpl}
}

func trBody(r treq, body string) treq { r.body = body; return r }
func trSize(r treq, n int) treq       { r.bodySize = n; return r }

// tlsWorkloadBefore is sent to the servers started before the agent.
func tlsWorkloadBefore(gnutls bool) []tstep {
	steps := []tstep{
		{name: "nginx tls1.3 keepalive", svc: tlsNginx, via: "curl", reqs: []treq{
			tr("GET", "/ping", 200, "/ping"), tr("GET", "/ping", 200, "/ping"),
			tr("GET", "/gone", 404, "/gone"), tr("GET", "/status", 204, "/status"),
			tr("GET", "/static/version.json", 200, "/static/version.json"),
		}},
		{name: "nginx tls1.2", svc: tlsNginx, via: "curl12", reqs: []treq{
			tr("GET", "/ping", 200, "/ping"), tr("GET", "/gone", 404, "/gone"),
		}},
		{name: "nginx 1.5MB download", svc: tlsNginx, via: "curl", reqs: []treq{tr("GET", "/big/blob.json", 200, "/big/blob.json")}},
		{name: "nginx go client", svc: tlsNginx, via: "go", reqs: []treq{
			tr("GET", "/ping", 200, "/ping"), tr("GET", "/static/config.json", 200, "/static/config.json"),
		}},
		{name: "py keepalive", svc: tlsPy, via: "py", reqs: []treq{
			tr("GET", "/health", 200, "/health"),
			trBody(tr("POST", "/items", 201, "/items"), `{"name":"drill","price":49.5}`),
			tr("GET", "/items/3", 200, "/items/{}"),
			tr("GET", "/items/500", 404, "/items/{}"),
			trSize(tr("POST", "/upload", 200, "/upload"), 1200*1024),
			tr("GET", "/big", 200, "/big"),
			tr("GET", "/health", 200, "/health"),
		}},
		{name: "py curl", svc: tlsPy, via: "curl", reqs: []treq{tr("GET", "/health", 200, "/health")}},
		{name: "node curl", svc: tlsNode, via: "curl", reqs: []treq{tr("GET", "/hello", 200, "/hello")}},
		{name: "node curl post", svc: tlsNode, via: "curl", reqs: []treq{trBody(tr("POST", "/echo", 200, "/echo"), `{"msg":"hi","n":3}`)}},
		{name: "node go client", svc: tlsNode, via: "go", reqs: []treq{
			tr("GET", "/items/1", 200, "/items/{}"), tr("GET", "/items/2", 200, "/items/{}"),
			tr("GET", "/items/999", 404, "/items/{}"), tr("GET", "/big", 200, "/big"),
			tr("GET", "/hello", 200, "/hello"),
		}},
		{name: "node tls1.2", svc: tlsNode, via: "curl12", reqs: []treq{tr("GET", "/hello", 200, "/hello")}},
	}
	if gnutls {
		steps = append(steps, tstep{name: "gnutls curl", svc: tlsGnuTLS, via: "curl", reqs: []treq{tr("GET", "/", 200, "/")}},
			tstep{name: "gnutls curl 2", svc: tlsGnuTLS, via: "curl12", reqs: []treq{tr("GET", "/", 200, "/")}})
	}
	return steps
}

// tlsFirstRequest is the very first request the server started after the
// agent gets; it is its own endpoint, so its count proves it was captured.
var tlsFirstRequest = tstep{name: "goapi first request", svc: tlsGo, via: "curl", reqs: []treq{tr("GET", "/api/v1/ping", 200, "/api/v1/ping")}}

// tlsWorkloadAfter is sent to the Go TLS server after its first request.
func tlsWorkloadAfter() []tstep {
	const u = "/api/v1"
	return []tstep{
		{name: "goapi go keepalive", svc: tlsGo, via: "go", reqs: []treq{
			tr("GET", u+"/users/1", 200, u+"/users/{}"), tr("GET", u+"/users/2", 200, u+"/users/{}"),
			tr("GET", u+"/users/0", 404, u+"/users/{}"),
			trSize(tr("POST", u+"/upload", 200, u+"/upload"), 1<<20+4096),
			tr("GET", u+"/big", 200, u+"/big"),
			tr("GET", u+"/users", 200, u+"/users"),
		}},
		{name: "goapi py", svc: tlsGo, via: "py", reqs: []treq{
			trBody(tr("POST", u+"/users", 201, u+"/users"), `{"name":"zoe","email":"zoe@example.com"}`),
			tr("GET", u+"/users", 200, u+"/users"),
		}},
		{name: "goapi curl tls1.2", svc: tlsGo, via: "curl12", reqs: []treq{tr("GET", u+"/users/7", 200, u+"/users/{}")}},
	}
}

// tlsWorld is one topology with TLS servers started on demand.
type tlsWorld struct {
	dir     string
	topo    *harness.Topology
	certs   harness.Certs
	clients *harness.Clients
	stGoAPI string // stripped goapi
	servers map[string]*harness.Server
}

var strippedGoAPI = sync.OnceValues(func() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := filepath.Join(buildDir, "stripped")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	return harness.BuildStrippedGoAPI(ctx, dir)
})

func newTLSWorld(t *testing.T) *tlsWorld {
	t.Helper()
	requireRoot(t)
	if _, err := os.Stat(harness.NodeBin); err != nil {
		t.Skip("needs /usr/bin/node")
	}
	harness.CleanupStale(nil)
	bins, err := binaries()
	if err != nil {
		t.Fatalf("build test programs: %v", err)
	}
	w := &tlsWorld{dir: t.TempDir(), servers: map[string]*harness.Server{}}
	if w.stGoAPI, err = strippedGoAPI(); err != nil {
		t.Fatalf("build stripped goapi: %v", err)
	}
	topo, err := harness.NewTopology(harness.TopologyConfig{DisableOffload: *flagNoGSO}, nil)
	if err != nil {
		t.Fatalf("topology: %v", err)
	}
	w.topo = topo
	t.Cleanup(func() {
		if err := topo.Close(); err != nil {
			t.Errorf("topology cleanup: %v", err)
		}
	})
	if w.certs, err = harness.GenCerts(w.dir, topo.SrvIP, topo.SrvIP6); err != nil {
		t.Fatal(err)
	}
	w.clients = topo.NewClients(bins.GoClient, w.dir)
	return w
}

// start runs one TLS server in the server namespace until the test ends.
func (w *tlsWorld) start(t *testing.T, svc string) *harness.Server {
	t.Helper()
	var s *harness.Server
	var err error
	switch svc {
	case tlsNginx:
		s, err = w.topo.StartNginxTLS(w.dir, w.certs, true)
	case tlsPy:
		s, err = w.topo.StartPyTLS(w.dir, w.certs)
	case tlsNode:
		s, err = w.topo.StartNodeTLS(w.dir, w.certs)
	case tlsGo:
		s, err = w.topo.StartGoAPITLS(w.stGoAPI, w.dir, w.certs, true)
	case tlsGnuTLS:
		s, err = w.topo.StartGnuTLS(w.dir, w.certs)
	}
	if err != nil {
		t.Fatalf("start %s: %v", svc, err)
	}
	t.Cleanup(s.Kill)
	w.servers[svc] = s
	if err := w.topo.CheckReach(s.Addr, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	return s
}

func haveGnuTLS() bool {
	_, err := exec.LookPath("gnutls-serv")
	return err == nil
}

// send runs one step and returns the status of each request.
func (w *tlsWorld) send(ctx context.Context, s tstep) ([]int, error) {
	srv := w.servers[s.svc]
	switch s.via {
	case "curl", "curl12":
		// One curl, all URLs: curl reuses the connection (keep-alive).
		args := []string{"--http1.1", "--cacert", w.certs.CA, "-w", "%{http_code}\n"}
		if s.via == "curl12" {
			args = append(args, "--tlsv1.2", "--tls-max", "1.2")
		}
		for _, r := range s.reqs {
			if r.method != "GET" && len(s.reqs) > 1 {
				return nil, fmt.Errorf("curl step %q: only GET requests share one curl", s.name)
			}
			if r.body != "" {
				args = append(args, "-H", "Content-Type: application/json", "--data-binary", r.body)
			}
			args = append(args, "-o", "/dev/null", "https://"+srv.Addr+r.target)
		}
		out, err := w.clients.Curl(ctx, args...)
		if err != nil {
			return nil, err
		}
		var codes []int
		for _, f := range strings.Fields(out) {
			n, err := strconv.Atoi(f)
			if err != nil {
				return codes, fmt.Errorf("curl output %q", out)
			}
			codes = append(codes, n)
		}
		return codes, nil
	case "go":
		job := harness.ClientJob{Mode: "keepalive", Addr: srv.Addr, CAFile: w.certs.CA}
		for _, r := range s.reqs {
			cr := harness.ClientRequest{Method: r.method, Target: r.target, Body: r.body, BodySize: r.bodySize}
			if r.body != "" || r.bodySize > 0 {
				cr.Headers = jsonHdr
			}
			job.Requests = append(job.Requests, cr)
		}
		res, err := w.clients.Go(ctx, job)
		return res.Statuses, err
	case "py":
		type pyReq struct {
			Method   string `json:"method"`
			Target   string `json:"target"`
			Body     string `json:"body,omitempty"`
			BodySize int    `json:"bodySize,omitempty"`
		}
		var job []pyReq
		for _, r := range s.reqs {
			job = append(job, pyReq{r.method, r.target, r.body, r.bodySize})
		}
		b, _ := json.Marshal(job)
		spec := filepath.Join(w.dir, fmt.Sprintf("pyjob-%d.json", time.Now().UnixNano()))
		if err := os.WriteFile(spec, b, 0o644); err != nil {
			return nil, err
		}
		py, err := harness.Python()
		if err != nil {
			return nil, err
		}
		td, err := harness.Testdata()
		if err != nil {
			return nil, err
		}
		out, err := exec.CommandContext(ctx, "ip", "netns", "exec", w.topo.CliNS, py, filepath.Join(td, "tlsclient.py"),
			w.topo.SrvIP, strconv.Itoa(srv.Port), w.certs.CA, spec).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("python client: %w: %s", err, tailStr(string(out), 1500))
		}
		var res struct {
			Statuses []int `json:"statuses"`
		}
		if err := json.Unmarshal(out, &res); err != nil {
			return nil, fmt.Errorf("python client output %q: %w", out, err)
		}
		return res.Statuses, nil
	}
	return nil, fmt.Errorf("unknown client %q", s.via)
}

func (w *tlsWorld) run(ctx context.Context, t *testing.T, steps []tstep) {
	t.Helper()
	for _, s := range steps {
		got, err := w.send(ctx, s)
		if err != nil {
			t.Errorf("step %q: %v", s.name, err)
			continue
		}
		var want []int
		for _, r := range s.reqs {
			want = append(want, r.status)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("step %q: statuses %v, want %v", s.name, got, want)
		}
	}
}

// serviceNames are the names the agent may give a server's service.
func tlsServiceNames(s *harness.Server) []string {
	names := []string{s.Service, s.Exe()}
	for _, pid := range s.CPUPids {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil {
			names = append(names, strings.TrimSpace(string(b)))
		}
	}
	return names
}

// expectedTLSInventory derives the exact inventory from the steps.
func (w *tlsWorld) expectedTLSInventory(steps []tstep) []wantEndpoint {
	m := map[string]*wantEndpoint{}
	for _, s := range steps {
		srv := w.servers[s.svc]
		for _, r := range s.reqs {
			e := wantEndpoint{services: tlsServiceNames(srv), port: srv.Port, method: r.method,
				tmpl: normTemplate(r.tmpl), exe: srv.Exe(), statuses: map[string]uint64{}}
			if m[e.key()] == nil {
				m[e.key()] = &e
			}
			cur := m[e.key()]
			cur.count++
			cur.statuses[strconv.Itoa(r.status)]++
			cur.query = union(cur.query, queryNames(r.target))
		}
	}
	var out []wantEndpoint
	for _, e := range m {
		out = append(out, *e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key() < out[j].key() })
	return out
}

// tlsLogs is what each logging server must have logged, sorted.
func tlsLogs(steps []tstep) map[string][]string {
	out := map[string][]string{}
	for _, s := range steps {
		for _, r := range s.reqs {
			out[s.svc] = append(out[s.svc], fmt.Sprintf("%s %s %d", r.method, strings.SplitN(r.target, "?", 2)[0], r.status))
		}
	}
	for k := range out {
		sort.Strings(out[k])
	}
	return out
}

func (w *tlsWorld) checkLogs(t *testing.T, steps []tstep) {
	t.Helper()
	time.Sleep(200 * time.Millisecond) // nginx and python log after sending
	for svc, want := range tlsLogs(steps) {
		s := w.servers[svc]
		if s.ReqLog == "" {
			continue
		}
		got, err := s.RequestLog()
		if err != nil {
			t.Errorf("%s log: %v", svc, err)
			continue
		}
		sort.Strings(got)
		if d := diffLines(want, got); d != "" {
			t.Errorf("%s request log differs from the workload:\n%s", svc, d)
		}
	}
}

// TestTLSWorkloadWithoutAgent proves the TLS harness: every server speaks
// TLS to every client, statuses are as scripted, each request reached its
// handler once.
func TestTLSWorkloadWithoutAgent(t *testing.T) {
	t0 := time.Now()
	w := newTLSWorld(t)
	gnutls := haveGnuTLS()
	for _, s := range []string{tlsNginx, tlsPy, tlsNode, tlsGo} {
		w.start(t, s)
	}
	if gnutls {
		w.start(t, tlsGnuTLS)
	}
	t.Logf("world ready in %v", time.Since(t0).Round(time.Millisecond))
	t0 = time.Now()
	steps := append(append(tlsWorkloadBefore(gnutls), tlsFirstRequest), tlsWorkloadAfter()...)
	w.run(context.Background(), t, steps)
	t.Logf("workload ran in %v", time.Since(t0).Round(time.Millisecond))
	w.checkLogs(t, steps)
	want := w.expectedTLSInventory(steps)
	t.Logf("workload: %d endpoints\n%s", len(want), formatWant(want))
}

// tlsCount sums an endpoint's `tls` counts of libraries of family fam
// ("openssl libssl.so.3 3.0.19", "go-tls go1.26.8", "gnutls ...").
func tlsCount(e harness.Endpoint, fam string) uint64 {
	var n uint64
	for lib, c := range e.TLS {
		if strings.HasPrefix(strings.ToLower(lib), fam) {
			n += uint64(c)
		}
	}
	return n
}

// TestTLSInventoryE2E: nginx, python and node (OpenSSL) run before the
// agent starts, the stripped Go TLS server after it is ready. The
// inventory must be exactly the workload, credited to the right library,
// with nothing counted twice (the client ends are on this host too, and TC
// sees the ciphertext), and /v1/processes must say how each is seen.
func TestTLSInventoryE2E(t *testing.T) {
	var goStart struct {
		pid                         int
		exec, firstStart, firstDone time.Time
	}
	bin := needAgent(t)
	w := newTLSWorld(t)
	gnutls := haveGnuTLS()
	for _, s := range []string{tlsNginx, tlsPy, tlsNode} {
		w.start(t, s)
	}
	if gnutls {
		w.start(t, tlsGnuTLS)
	}
	ctx := context.Background()
	a, err := harness.StartAgent(harness.AgentConfig{Bin: bin, Ifaces: w.topo.Ifaces(), DataDir: filepath.Join(w.dir, "data"),
		LogFile: filepath.Join(w.dir, "agent.log")})
	if err != nil {
		t.Fatalf("start agent: %v", err)
	}
	t.Cleanup(func() {
		a.Kill()
		if t.Failed() {
			t.Logf("agent log (tail):\n%s", tailStr(a.Output(), 4000))
		}
	})
	t0 := time.Now()
	if err := a.WaitReady(30 * time.Second); err != nil {
		t.Fatalf("agent: %v", err)
	}
	if err := a.WaitAttached(w.topo.Ifaces(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("agent ready in %v", time.Since(t0).Round(time.Millisecond))

	// Dynamic binding: the Go server execs now, and its very first request
	// goes out the moment it listens.
	goStart.exec = time.Now()
	goStart.pid = w.start(t, tlsGo).Pid()
	before := tlsWorkloadBefore(gnutls)
	first := []tstep{tlsFirstRequest}
	goStart.firstStart = time.Now()
	w.run(ctx, t, first)
	goStart.firstDone = time.Now()
	w.run(ctx, t, before)
	after := tlsWorkloadAfter()
	w.run(ctx, t, after)
	steps := append(append(before, first...), after...)
	w.checkLogs(t, steps)

	want := w.expectedTLSInventory(steps)
	var total uint64
	for _, e := range want {
		total += e.count
	}
	// The agent reads TLS in every process on the host, and other tests
	// may run beside this one: only the ports of this topology's servers
	// are compared. A double count (client-side view of these calls)
	// would carry the server's port and still be caught.
	ports := map[int]bool{}
	for _, s := range w.servers {
		ports[s.Port] = true
	}
	got := waitOurInventory(t, a, total, ports)
	for _, e := range got {
		t.Logf("  %-12s %5d %-6s %-24s n=%-3d %v tls=%v procs=%d", e.Service.Name, e.Service.Port, e.Method, e.PathTemplate,
			e.RequestCount, e.StatusCodes, e.TLS, len(e.Processes))
	}
	// The first request's endpoint is judged by its own subtest below,
	// which can tell a missed first request from the known exec race.
	isFirst := func(port int, tmpl string) bool {
		return port == harness.GoTLSPort && normTemplate(tmpl) == tlsFirstRequest.reqs[0].tmpl
	}
	var gotRest []harness.Endpoint
	for _, e := range got {
		if !isFirst(int(e.Service.Port), e.PathTemplate) {
			gotRest = append(gotRest, e)
		}
	}
	var wantRest []wantEndpoint
	for _, e := range want {
		if !isFirst(e.port, e.tmpl) {
			wantRest = append(wantRest, e)
		}
	}
	assertInventory(t, gotRest, wantRest)

	// Every endpoint's calls came from decrypted TLS of the right library,
	// all of them (the `tls` counts add up to the request count).
	famOf := map[int]string{}
	for svc, s := range w.servers {
		famOf[s.Port] = tlsFamily[svc]
	}
	for _, e := range got {
		fam, ok := famOf[int(e.Service.Port)]
		if !ok {
			continue
		}
		// The first request to the server started after the agent may be
		// read only at the client (its probes were not attached yet):
		// it then carries the client's library, checked by the subtest.
		if isFirst(int(e.Service.Port), e.PathTemplate) {
			continue
		}
		n := tlsCount(e, fam)
		if n != uint64(e.RequestCount) || len(e.TLS) != 1 {
			t.Errorf("%s: tls %v, want all %d requests from a %q library", gotKey(e), e.TLS, e.RequestCount, fam)
		}
	}

	// gnutls-serv answers HTTP/1.0 without Content-Length: the response
	// ends when the connection closes.
	if gs := w.servers[tlsGnuTLS]; gs != nil {
		for _, e := range got {
			if int(e.Service.Port) == gs.Port && e.RequestCount < 2 {
				t.Errorf("gnutls: %d of 2 close-delimited responses seen: the last TLS connection of a process is not ended when its socket closes (only when its fd is reused or the process exits)", e.RequestCount)
			}
		}
	}

	t.Run("first request after exec", func(t *testing.T) {
		var seen bool
		for _, e := range got {
			if int(e.Service.Port) == harness.GoTLSPort && normTemplate(e.PathTemplate) == "/api/v1/ping" {
				seen = e.RequestCount == 1
			}
		}
		if at, ok := attachTime(a.Output(), goStart.pid); ok {
			t.Logf("Go TLS server: probes attached %v after exec, first request done %v after exec, captured %v",
				at.Sub(goStart.exec).Round(time.Millisecond), goStart.firstDone.Sub(goStart.exec).Round(time.Millisecond), seen)
		}
		gap, err := measureStartupGap(t, w, a)
		t.Logf("startup gap of a fresh binary: %s", gap)
		if err != nil {
			t.Errorf("startup gap: %v", err)
		}
		if seen {
			return
		}
		// Missed: find out whether the probes were in place yet.
		attached, ok := attachTime(a.Output(), goStart.pid)
		switch {
		case !ok:
			t.Errorf("first request missed and no probes were ever attached to pid %d", goStart.pid)
		case attached.After(goStart.firstStart):
			// curl's own libssl is read too, so the agent had the client's
			// view of this call; it drops client views whenever the server
			// process is read NOW, not whether its view of this connection
			// was seen, so the race shows here (an agent issue, reported).
			t.Skipf("KNOWN RACE, first request missed: probes attached %v after the Go server's exec, its first request was sent between %v and %v after exec (the process runs while the agent analyses its binary; the client-side view was dropped as a duplicate)",
				attached.Sub(goStart.exec).Round(time.Millisecond), goStart.firstStart.Sub(goStart.exec).Round(time.Millisecond),
				goStart.firstDone.Sub(goStart.exec).Round(time.Millisecond))
		default:
			t.Errorf("first request missed although probes were attached %v before it was sent", goStart.firstStart.Sub(attached))
		}
	})

	// /v1/processes: each server's serving process says how it is seen.
	procs, err := a.Processes()
	if err != nil {
		t.Fatalf("processes: %v", err)
	}
	for svc, s := range w.servers {
		pids := map[int]bool{}
		for _, p := range s.CPUPids {
			pids[p] = true
		}
		var vis []string
		for _, p := range procs {
			if pids[int(p.Pid)] {
				vis = append(vis, p.Visibility+" ("+p.Reason+")")
			}
		}
		want := tlsFamily[svc]
		if want == "go" {
			want = "go-tls"
		}
		ok := false
		for _, v := range vis {
			ok = ok || strings.HasPrefix(strings.ToLower(v), want)
		}
		if !ok {
			t.Errorf("/v1/processes: %s (pids %v) visibility %q, want %q...", svc, s.CPUPids, vis, want)
		} else {
			t.Logf("/v1/processes: %-6s %v", svc, vis)
		}
	}
	if t.Failed() {
		if _, b, err := a.Do("GET", "/metrics", nil); err == nil {
			var lines []string
			for _, l := range strings.Split(string(b), "\n") {
				if strings.Contains(l, "tls") && !strings.HasPrefix(l, "#") {
					lines = append(lines, l)
				}
			}
			t.Logf("agent TLS metrics:\n%s", strings.Join(lines, "\n"))
		}
	}
	code, err := a.Stop(15 * time.Second)
	if code != 0 {
		t.Errorf("agent exit code %d (%v)", code, err)
	}
}

// waitOurInventory polls until the requests on ports add up to want and
// stay put, and returns those endpoints; others are logged.
func waitOurInventory(t *testing.T, a *harness.Agent, want uint64, ports map[int]bool) []harness.Endpoint {
	t.Helper()
	// The TLS test keeps to its time budget: 10 s unless -e2e.wait is shorter.
	deadline := time.Now().Add(min(*flagWait, 10*time.Second))
	var ours, others []harness.Endpoint
	var lastTotal uint64
	stable := 0
	for time.Now().Before(deadline) {
		eps, err := a.Inventory()
		if err != nil {
			t.Logf("inventory: %v", err)
		} else {
			ours, others = nil, nil
			for _, e := range eps {
				if ports[int(e.Service.Port)] {
					ours = append(ours, e)
				} else {
					others = append(others, e)
				}
			}
			total := totalCount(ours)
			if total == lastTotal && total >= want {
				stable++
			} else {
				stable = 0
			}
			lastTotal = total
			if stable >= 2 {
				break
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	if stable < 2 {
		t.Logf("inventory did not settle at %d requests within %v (last total %d)", want, min(*flagWait, 10*time.Second), lastTotal)
	}
	for _, e := range others {
		t.Logf("  (not this test's) %s %d %s %s n=%d", e.Service.Name, e.Service.Port, e.Method, e.PathTemplate, e.RequestCount)
	}
	return ours
}

var attachedRE = regexp.MustCompile(`time=(\S+) level=\w+ msg="tls probes attached" .*path=/proc/(\d+)/exe`)

// attachTime finds when the agent logged the TLS probes of pid as attached.
func attachTime(agentLog string, pid int) (time.Time, bool) {
	for _, m := range attachedRE.FindAllStringSubmatch(agentLog, -1) {
		if m[2] != strconv.Itoa(pid) {
			continue
		}
		if ts, err := time.Parse(time.RFC3339Nano, m[1]); err == nil {
			return ts, true
		}
	}
	return time.Time{}, false
}

// gapPort is where measureStartupGap runs its fresh server.
const gapPort = harness.GoTLSPort + 10

// measureStartupGap copies the stripped Go server to a new file (a new
// inode: nothing is probed or cached for it yet), starts it under the
// running agent and fires a fresh TLS connection every ~gapStep from the
// moment it execs. It reports how many answered requests were missed and
// when the agent attached relative to exec and first answer.
func measureStartupGap(t *testing.T, w *tlsWorld, a *harness.Agent) (string, error) {
	const (
		gapStep  = 0 // one curl in the namespace takes ~100-200 ms anyway
		gapTries = 12
	)
	dir := filepath.Join(w.dir, "gap")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	b, err := os.ReadFile(w.stGoAPI)
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "goapi")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		return "", err
	}
	exec0 := time.Now()
	s, err := w.topo.SpawnGoAPITLS(bin, dir, w.certs, gapPort, false)
	if err != nil {
		return "", err
	}
	defer s.Kill()
	var answered, started []time.Time
	for i := 0; i < gapTries; i++ {
		t0 := time.Now()
		out, err := w.clients.Curl(context.Background(), "--http1.1", "--cacert", w.certs.CA, "--connect-timeout", "1",
			"-o", "/dev/null", "-w", "%{http_code}", "https://"+s.Addr+"/api/v1/reports/2026-01-02")
		if err == nil && strings.TrimSpace(out) == "200" {
			answered = append(answered, time.Now())
			started = append(started, t0)
		}
		time.Sleep(gapStep)
	}
	var seen uint64
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		eps, _ := a.Inventory()
		seen = 0
		for _, e := range eps {
			if int(e.Service.Port) == gapPort {
				seen += uint64(e.RequestCount)
			}
		}
		if seen >= uint64(len(answered)) {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	missed := len(answered) - int(seen)
	res := fmt.Sprintf("%d of %d answered requests missed", missed, len(answered))
	var lastMissed time.Time // when the last missed request was started
	if len(answered) > 0 {
		res += fmt.Sprintf("; first answer %v after exec", answered[0].Sub(exec0).Round(time.Millisecond))
		if missed > 0 && missed <= len(answered) {
			lastMissed = started[missed-1]
			res += fmt.Sprintf(", last missed request started %v after exec", lastMissed.Sub(exec0).Round(time.Millisecond))
		}
	}
	at, ok := attachTime(a.Output(), s.Pid())
	if !ok {
		return res + "; no attach logged for its pid", fmt.Errorf("probes never attached to a fresh Go TLS server")
	}
	res += fmt.Sprintf("; probes attached %v after exec", at.Sub(exec0).Round(time.Millisecond))
	// Requests started before the probes were in place are the known race
	// (the process runs while the agent analyses its binary); one started
	// after them and still missed is a capture bug.
	if missed > 0 && lastMissed.After(at) {
		return res, fmt.Errorf("requests started after the probes were attached were missed")
	}
	return res, nil
}

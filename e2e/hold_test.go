package e2e

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apiwarden/apiwarden/apimodel/call"
	"github.com/apiwarden/apiwarden/apimodel/detect"
	"github.com/apiwarden/apiwarden/apimodel/http1"
	"github.com/apiwarden/apiwarden/apimodel/verdict"
	detectbench "github.com/apiwarden/apiwarden/bench/detect"
	"github.com/apiwarden/apiwarden/datapath/nfqueue"
	"github.com/apiwarden/apiwarden/e2e/harness"
)

// nfqueueRemoveStale deletes the agent's nftables table, as a killed agent
// leaves it (the table name is the agent's, agent.holdTable).
func nfqueueRemoveStale() error { return nfqueue.RemoveRule("apiwarden_hold", 0) }

// The hold-point tests (issue #7) replay every attack the detector would
// cut, each on a fresh connection, against servers in protect mode, and
// check with the servers' own request logs that none reached a handler.
// The client is this test binary re-run in the client namespace (like the
// protect tests' probe), replaying a job file with parallel connections.

const replayEnv = "AWHOLD_REPLAY"

type replayItem struct {
	Addr string `json:"addr"`
	Raw  []byte `json:"raw"`
	CA   string `json:"ca,omitempty"` // TLS with this CA
	// Method of the request (HEAD responses have no body).
	Method string `json:"method"`
}

type replayJob struct {
	Items     []replayItem `json:"items"`
	Parallel  int          `json:"parallel"`
	TimeoutMs int          `json:"timeoutMs"`
}

type replayRes struct {
	Status int     `json:"status,omitempty"`
	Body   []byte  `json:"body,omitempty"`
	Kind   string  `json:"kind,omitempty"` // "" ok, reset, timeout, eof, error
	Err    string  `json:"err,omitempty"`
	Ms     float64 `json:"ms"`
}

// TestAwholdReplayer is not a test: it is the client process of the hold
// tests and skips unless run as one.
func TestAwholdReplayer(t *testing.T) {
	spec := os.Getenv(replayEnv)
	if spec == "" {
		t.Skip("client process of the hold tests")
	}
	b, err := os.ReadFile(spec)
	if err != nil {
		t.Fatal(err)
	}
	var job replayJob
	if err := json.Unmarshal(b, &job); err != nil {
		t.Fatal(err)
	}
	timeout := time.Duration(job.TimeoutMs) * time.Millisecond
	out := make([]replayRes, len(job.Items))
	next := make(chan int)
	var wg sync.WaitGroup
	for range max(job.Parallel, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i] = replayOne(job.Items[i], timeout)
			}
		}()
	}
	for i := range job.Items {
		next <- i
	}
	close(next)
	wg.Wait()
	res, _ := json.Marshal(out)
	if err := os.WriteFile(spec+".out", res, 0o644); err != nil {
		t.Fatal(err)
	}
}

func replayOne(it replayItem, timeout time.Duration) (r replayRes) {
	start := time.Now()
	defer func() { r.Ms = float64(time.Since(start).Microseconds()) / 1000 }()
	var c net.Conn
	var err error
	if it.CA != "" {
		c, err = tlsDial(it.Addr, it.CA, timeout)
	} else {
		c, err = net.DialTimeout("tcp", it.Addr, timeout)
	}
	if err != nil {
		return replayRes{Kind: "dial-" + errKind(err), Err: err.Error()}
	}
	defer c.Close()
	_ = c.SetDeadline(start.Add(timeout))
	if _, err := c.Write(it.Raw); err != nil {
		return replayRes{Kind: errKind(err), Err: err.Error()}
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: it.Method})
	if err != nil {
		return replayRes{Kind: errKind(err), Err: err.Error()}
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	r = replayRes{Status: resp.StatusCode, Body: body}
	if err != nil {
		r.Kind, r.Err = errKind(err), err.Error()
	}
	return r
}

// replay runs job in the client namespace and returns one result per item.
func (w *world) replay(t *testing.T, job replayJob) []replayRes {
	t.Helper()
	return replayIn(t, w.dir, w.topo.CliNS, job)
}

// replayIn runs job in namespace ns (job files under dir).
func replayIn(t *testing.T, dir, ns string, job replayJob) []replayRes {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	spec := filepath.Join(dir, fmt.Sprintf("replay-%d.json", time.Now().UnixNano()))
	b, _ := json.Marshal(job)
	if err := os.WriteFile(spec, b, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns, self, "-test.run=^TestAwholdReplayer$", "-test.count=1")
	cmd.Env = append(os.Environ(), replayEnv+"="+spec)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("replayer: %v\n%s", err, tailStr(string(out), 2000))
	}
	b, err = os.ReadFile(spec + ".out")
	if err != nil {
		t.Fatal(err)
	}
	var res []replayRes
	if err := json.Unmarshal(b, &res); err != nil || len(res) != len(job.Items) {
		t.Fatalf("replayer output: %v (%d results for %d items)", err, len(res), len(job.Items))
	}
	return res
}

// cutAttack is one corpus attack the detector, run offline, would cut.
type cutAttack struct {
	id, class, method string
	raw               []byte
	holdout           bool // from a slice not used to tune the detector
}

// cutGradeAttacks loads bench/detect's corpus (tuning set and hold-out) and
// a slice of the CRS regression corpus, runs the detector on each attack
// offline, and keeps those it would cut (verdict.DefaultPolicy): exactly
// the set protect mode must stop before the handler.
func cutGradeAttacks(t *testing.T) []cutAttack {
	t.Helper()
	root, err := harness.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	det, err := detect.New(detect.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []cutAttack
	for _, f := range []struct {
		path    string
		holdout bool
	}{{"bench/detect/testdata/corpus.jsonl", false}, {"bench/detect/testdata/holdout.jsonl", true}} {
		entries, err := detectbench.LoadCorpus(filepath.Join(root, f.path))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Class == detectbench.Benign {
				continue
			}
			raw := entryRaw(e)
			if !wouldCut(det, raw) {
				continue
			}
			out = append(out, cutAttack{id: e.ID, class: e.Class, method: e.Method, raw: raw, holdout: f.holdout})
		}
	}
	return out
}

// wouldCut runs the bytes through what the agent runs them through (the
// HTTP/1 parser, then the detector and the verdict policy on every request
// it completes or rejects) and reports whether protect mode would cut: the
// corpus entry's structured form can differ from the wire (a header value
// with leading blanks is trimmed on the wire, for one).
func wouldCut(det *detect.Detector, raw []byte) bool {
	var st http1.Stats
	c := http1.NewConn(http1.Config{}, &st, func(*call.Call) {})
	cut := false
	c.OnRequest = func(_ *http1.Conn, r *call.Request) {
		if _, g := verdict.DefaultPolicy.Decide(det.Inspect(r, "goapi"), true); g {
			cut = true
		}
	}
	c.OnInvalidRequest = func(_ *http1.Conn, head []byte) {
		if _, ok := verdict.InvalidRequest(head); ok {
			cut = true
		}
	}
	c.Feed(http1.FromClient, raw, time.Now())
	return cut
}

// entryRaw serialises a corpus entry as sent on the wire. A Content-Length
// is added to a body that has neither it nor chunked framing, and
// "Connection: close" is never added: the server decides.
func entryRaw(e detectbench.Entry) []byte {
	var b strings.Builder
	target := e.Path
	if e.Query != "" {
		target += "?" + e.Query
	}
	proto := e.Proto
	if proto == "" {
		proto = "HTTP/1.1"
	}
	fmt.Fprintf(&b, "%s %s %s\r\n", e.Method, target, proto)
	framed := false
	for _, h := range e.Headers {
		n := strings.ToLower(strings.TrimSpace(h[0]))
		framed = framed || n == "content-length" || n == "transfer-encoding"
		b.WriteString(h[0] + ": " + h[1] + "\r\n")
	}
	if !framed && e.Body != "" {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(e.Body))
	}
	b.WriteString("\r\n" + e.Body)
	return []byte(b.String())
}

// benignUpload is a benign POST whose body spans several segments; goapi
// answers with the SHA-256 of what its handler read, so a 200 with the right
// hash proves the request arrived byte for byte.
func benignUpload(i int) (raw []byte, sum string) {
	body := fmt.Sprintf(`{"customer":"c-%06d","items":[%s],"note":"%s"}`, i,
		strings.TrimSuffix(strings.Repeat(`{"sku":"A-1","qty":2},`, 60), ","), strings.Repeat("ok ", 300))
	h := sha256.Sum256([]byte(body))
	return rawRequest("POST", "/api/v1/upload", []string{"Content-Type: application/json"}, body), hex.EncodeToString(h[:])
}

// holdConfig: protect mode, no auto-blocking (hundreds of attacks from one
// client must not turn into a source block), and a generous hold timeout:
// this machine runs many tests at once, and a late verdict fails open, which
// this test would report as an attack that got through. The default (5 ms)
// is what the benchmark measures.
func holdConfig(t *testing.T, dir string) string {
	t.Helper()
	cfg := "autoBlock: {threshold: 0}\nhold: {enabled: true, timeout: 500ms, failMode: open, maxQueued: 4096, mark: 0x00400000, queue: 7}\n"
	p := filepath.Join(dir, fmt.Sprintf("awhold-%d.yaml", time.Now().UnixNano()))
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func statusCounters(t *testing.T, a *harness.Agent) map[string]uint64 {
	t.Helper()
	var st struct {
		Counters map[string]harness.U64 `json:"counters"`
	}
	if err := a.GetJSON("/v1/status", &st); err != nil {
		t.Fatalf("status: %v", err)
	}
	out := map[string]uint64{}
	for k, v := range st.Counters {
		out[k] = uint64(v)
	}
	return out
}

func TestHoldStopsCutGradeAttacksPlaintext(t *testing.T) {
	bin := needAgent(t)
	attacks := cutGradeAttacks(t)
	if len(attacks) < 100 {
		t.Fatalf("only %d cut-grade attacks in the corpus", len(attacks))
	}
	w := newWorld(t)
	a := w.startAgentMode(t, bin, "protect", holdConfig(t, w.dir))
	for _, s := range []*harness.Server{w.goapi, w.nginx, w.py} {
		if err := s.TruncateLog(); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}

	// Every cut-grade attack against goapi, a spread subset against nginx
	// and python; benign requests interleaved on connections of their own.
	type itemMeta struct {
		srv    *harness.Server
		attack *cutAttack
		sum    string // benign upload: expected hash ("" for other benign)
	}
	var job replayJob
	var meta []itemMeta
	add := func(s *harness.Server, it replayItem, m itemMeta) {
		it.Addr = s.Addr
		job.Items = append(job.Items, it)
		m.srv = s
		meta = append(meta, m)
	}
	for i := range attacks {
		at := &attacks[i]
		add(w.goapi, replayItem{Raw: at.raw, Method: at.method}, itemMeta{attack: at})
		if i%12 == 0 {
			add(w.nginx, replayItem{Raw: at.raw, Method: at.method}, itemMeta{attack: at})
		}
		if i%12 == 6 {
			add(w.py, replayItem{Raw: at.raw, Method: at.method}, itemMeta{attack: at})
		}
		if i%8 == 0 {
			raw, sum := benignUpload(i)
			add(w.goapi, replayItem{Raw: raw, Method: "POST"}, itemMeta{sum: sum})
			add(w.nginx, replayItem{Raw: []byte("GET /ping HTTP/1.1\r\nHost: nginx\r\n\r\n"), Method: "GET"}, itemMeta{})
			add(w.py, replayItem{Raw: []byte("GET /items/1 HTTP/1.1\r\nHost: py\r\n\r\n"), Method: "GET"}, itemMeta{})
		}
	}
	job.Parallel, job.TimeoutMs = 8, 3000
	start := time.Now()
	res := w.replay(t, job)
	t.Logf("replayed %d requests (%d cut-grade attacks in the corpus) in %v", len(res), len(attacks), time.Since(start).Round(time.Millisecond))

	wantBody := map[*harness.Server]string{w.nginx: `{"pong":true}`, w.py: `{"id": 1, "name": "hammer"}`}
	stopped, kinds := map[string]int{}, map[string]int{}
	var holdoutStopped, holdoutTotal, benign int
	for i, r := range res {
		m := meta[i]
		if m.attack == nil {
			benign++
			switch {
			case r.Status != 200:
				t.Errorf("benign request %d to %s: %+v", i, m.srv.Service, r)
			case m.sum != "" && !strings.Contains(string(r.Body), m.sum):
				t.Errorf("benign upload %d: the server read other bytes: %s", i, r.Body)
			case m.sum == "" && strings.TrimSpace(string(r.Body)) != wantBody[m.srv]:
				t.Errorf("benign request %d to %s: body %q", i, m.srv.Service, r.Body)
			}
			continue
		}
		if m.attack.holdout {
			holdoutTotal++
		}
		if r.Status != 0 {
			t.Errorf("attack %s (%s) to %s got a response %d: %q", m.attack.id, m.attack.class, m.srv.Service, r.Status, tailStr(string(r.Body), 200))
			continue
		}
		stopped[m.srv.Service]++
		kinds[r.Kind]++
		if m.attack.holdout {
			holdoutStopped++
		}
	}
	// The servers' own logs: only benign paths were handled.
	benignPath := map[*harness.Server]string{w.goapi: "/api/v1/upload", w.nginx: "/ping", w.py: "/items/1"}
	for _, s := range []*harness.Server{w.goapi, w.nginx, w.py} {
		lines, err := s.RequestLog()
		if err != nil {
			t.Fatal(err)
		}
		var leaked []string
		for _, l := range lines {
			if f := strings.Fields(l); len(f) < 2 || f[1] != benignPath[s] {
				leaked = append(leaked, l)
			}
		}
		if len(leaked) > 0 {
			sort.Strings(leaked)
			t.Errorf("%s handled %d attack requests: %v", s.Service, len(leaked), leaked[:min(len(leaked), 20)])
		}
	}
	c := statusCounters(t, a)
	t.Logf("stopped per server %v, client saw %v; hold-out slice %d/%d stopped; %d benign passed", stopped, kinds, holdoutStopped, holdoutTotal, benign)
	t.Logf("hold: held %d allowed %d blocked %d timed_out %d queue_full %d truncated %d; enforce dropped (kernel rules) %d",
		c["hold_held"], c["hold_allowed"], c["hold_blocked"], c["hold_timed_out"], c["hold_queue_full"], c["hold_truncated"], c["enforce_requests_dropped"])
	var stages []string
	for k, v := range c {
		if strings.HasPrefix(k, "hold_stage_") {
			stages = append(stages, fmt.Sprintf("%s=%d", strings.TrimPrefix(k, "hold_stage_"), v))
		}
	}
	slices.Sort(stages)
	t.Logf("verdict path (ns): %s", strings.Join(stages, " "))
	if c["hold_held"] == 0 || c["hold_blocked"] == 0 {
		t.Errorf("nothing held or blocked by the hold point: %v", c)
	}
	w.stopAgent(t, a)
	if ok, err := nftTableExists(); err != nil || ok {
		t.Errorf("hold table left after a clean stop (exists=%v err=%v)", ok, err)
	}
}

func nftTableExists() (bool, error) {
	out, err := exec.Command("nft", "list", "tables").CombinedOutput()
	if err != nil {
		return false, fmt.Errorf("nft list tables: %v: %s", err, out)
	}
	return strings.Contains(string(out), "apiwarden_hold"), nil
}

func (p *probe) recv(method string, timeout time.Duration) probeRes {
	return p.do(probeCmd{Op: "recv", Method: method, TimeoutMs: int(timeout / time.Millisecond)})
}

// TestHoldAgentKilledWhileHolding: the agent dies (kill -9) with requests
// held in the kernel's verdict queue. The kernel drops what the dead queue
// held, the client's TCP resends it after one retransmission timeout, the
// tcx programs (and so the marks) are gone with the agent's links and the
// rule's bypass passes what is still marked: the same connections carry
// traffic again and nothing stays blocked.
func TestHoldAgentKilledWhileHolding(t *testing.T) {
	bin := needAgent(t)
	w := newWorld(t)
	a := w.startAgentMode(t, bin, "protect", holdConfig(t, w.dir))
	t.Cleanup(func() { _ = nfqueueRemoveStale() })
	probes := []*probe{w.newProbe(t), w.newProbe(t)}
	for i, p := range probes {
		if r := p.dial(2 * time.Second); r.Kind != "" {
			t.Fatalf("probe %d dial: %+v", i, r)
		}
		if r := p.send("GET", ping(), 2*time.Second); r.Status != 200 {
			t.Fatalf("probe %d: benign request before the kill: %+v", i, r)
		}
	}
	before := statusCounters(t, a)["hold_held"]
	if before == 0 {
		t.Fatalf("benign requests were not held (hold point inactive?)")
	}
	// Freeze the agent so that what it is handed now stays held, then
	// send: the requests wait in the kernel.
	if err := syscall.Kill(-a.Pid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// kill(2) returns before every thread has stopped: a thread still
	// running could hand out one more verdict. Wait for all of them.
	if err := waitStopped(a.Pid(), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	for i, p := range probes {
		if r := p.send("GET", ping(), 300*time.Millisecond); r.Kind != "timeout" {
			t.Fatalf("probe %d: request answered while the agent was frozen: %+v (not held?)", i, r)
		}
	}
	if os.Getenv("AWHOLD_DEBUG") != "" {
		ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", a.Pid()))
		var l []string
		for _, e := range ents {
			tgt, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", a.Pid(), e.Name()))
			l = append(l, e.Name()+"="+tgt)
		}
		t.Logf("agent fds (%d): %s", len(l), strings.Join(l, " "))
	}
	killed := time.Now()
	if err := syscall.Kill(-a.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if os.Getenv("AWHOLD_DEBUG") != "" {
		for i := 0; i < 800; i++ {
			b, _ := os.ReadFile("/proc/net/netfilter/nfnetlink_queue")
			_, perr := os.Stat(fmt.Sprintf("/proc/%d/fd", a.Pid()))
			nfd := -1
			if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", a.Pid())); err == nil {
				nfd = len(ents)
			}
			if i%20 == 0 {
				t.Logf("%v queue=%q proc=%v fds=%d", time.Since(killed).Round(time.Millisecond), strings.TrimSpace(string(b)), perr == nil, nfd)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	a.Kill() // waits for the exit
	for i, p := range probes {
		r := p.recv("GET", 5*time.Second)
		if r.Status != 200 {
			t.Fatalf("probe %d: held request never answered after kill -9: %+v", i, r)
		}
		t.Logf("probe %d: held request answered %v after kill -9 (TCP retransmission)", i, time.Since(killed).Round(time.Millisecond))
		if r := p.send("GET", ping(), 2*time.Second); r.Status != 200 {
			t.Errorf("probe %d: same connection after the kill: %+v", i, r)
		}
	}
	if ok, r := w.reachable(t, 2*time.Second); !ok {
		t.Errorf("fresh connection after the kill: %+v", r)
	}
	for _, ifc := range w.topo.Ifaces() {
		if progs, err := harness.AttachedPrograms(ifc); err != nil || len(progs) > 0 {
			t.Errorf("programs on %s after kill -9: %v %v", ifc, progs, err)
		}
	}
	// The agent's nftables table outlives a kill -9 (no owner flag): inert
	// without marks and with the bypass, and the next start replaces it.
	stale, _ := nftTableExists()
	t.Logf("nftables table left by the killed agent: %v (inert: no marks, queue bypass)", stale)
}

// waitStopped waits until every thread of pid is in the stopped state.
func waitStopped(pid int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			return err
		}
		stopped := 0
		for _, tk := range tasks {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, tk.Name()))
			if err != nil {
				continue // the thread exited
			}
			// The state follows the parenthesised command name.
			if i := strings.LastIndexByte(string(b), ')'); i > 0 && i+2 < len(b) && (b[i+2] == 'T' || b[i+2] == 't') {
				stopped++
			}
		}
		if stopped == len(tasks) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("agent %d: %d of %d threads stopped after %v", pid, stopped, len(tasks), timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

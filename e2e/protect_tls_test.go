package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apiwarden/apiwarden/e2e/harness"
)

// The TLS protect tests drive their connections through the protect tests'
// probe (protect_test.go: this test binary re-run in the client namespace,
// one command per stdin line, one connection per process), dialling TLS
// with the test CA. The agent sees the decrypted requests
// through its TLS read probes in the server, so the server application
// always receives the request; what the tests assert is that no response
// leaves (kernel rules) or that the connection is cut (userspace findings).

// tlsDial opens a TCP connection and completes the TLS handshake (HTTP/1.1,
// the server verified against the test CA) within timeout.
func tlsDial(addr, caFile string, timeout time.Duration) (*tls.Conn, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificate in %s", caFile)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	d := &net.Dialer{Timeout: timeout}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	td := &tls.Dialer{NetDialer: d, Config: &tls.Config{RootCAs: pool, ServerName: host, NextProtos: []string{"http/1.1"}}}
	conn, err := td.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return conn.(*tls.Conn), nil
}

type tlsProtectTarget struct {
	name string
	srv  *harness.Server
	// benign is a request the server answers with 200.
	benign []byte
	// attacks are sent on connections of their own, after a benign request.
	attacks []tlsAttack
}

type tlsAttack struct {
	name   string
	class  string
	kernel bool // a kernel rule matches it in the TLS read probe
	method string
	raw    []byte
	marker string // path in goapi's request log ("" for nginx)
}

func tlsProtectTargets(goapi, nginx *harness.Server) []tlsProtectTarget {
	jndi := []string{"X-Api-Version: ${jndi:ldap://x/a}"}
	jsonCT := []string{"Content-Type: application/json"}
	unionJSON := `{"q":"1 UNION SELECT password FROM users"}`
	sqliQuery := "id=1%27%20OR%201%3D1--"
	return []tlsProtectTarget{
		{name: "goapi", srv: goapi, benign: ping(), attacks: []tlsAttack{
			{name: "kernel-jndi", class: "jndi", kernel: true, method: "GET", marker: "/api/v1/profiles/atk-tls-jndi",
				raw: rawRequest("GET", "/api/v1/profiles/atk-tls-jndi", jndi, "")},
			{name: "user-sqli-query", class: "sqli", method: "GET", marker: "/api/v1/profiles/atk-tls-sqli",
				raw: rawRequest("GET", "/api/v1/profiles/atk-tls-sqli?"+sqliQuery, nil, "")},
			{name: "user-sqli-json", class: "sqli", method: "POST", marker: "/api/v1/users",
				raw: rawRequest("POST", "/api/v1/users", jsonCT, unionJSON)},
		}},
		{name: "nginx", srv: nginx, benign: rawRequest("GET", "/ping", nil, ""), attacks: []tlsAttack{
			{name: "kernel-jndi", class: "jndi", kernel: true, method: "GET",
				raw: rawRequest("GET", "/ping", jndi, "")},
			{name: "user-sqli-query", class: "sqli", method: "GET",
				raw: rawRequest("GET", "/ping?"+sqliQuery, nil, "")},
			{name: "user-sqli-json", class: "sqli", method: "POST",
				raw: rawRequest("POST", "/ping", jsonCT, unionJSON)},
		}},
	}
}

func TestProtectTLS(t *testing.T) {
	bin := needAgent(t)
	w := newTLSWorld(t)
	goapi := w.start(t, tlsGo)
	nginx := w.start(t, tlsNginx)
	cfg := protectConfig(t, w.dir, "{threshold: 0}")
	a, err := harness.StartAgent(harness.AgentConfig{Bin: bin, Ifaces: w.topo.Ifaces(),
		DataDir: filepath.Join(w.dir, "data-protect"), Mode: "protect", Config: cfg,
		LogFile: filepath.Join(w.dir, "agent-protect-tls.log")})
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

	cli := w.topo.CliNS
	ca := w.certs.CA
	// benignOK sends one benign request on a fresh connection.
	benignOK := func(t *testing.T, tg tlsProtectTarget) probeRes {
		p := startProbe(t, cli, "")
		if r := p.dialTo(tg.srv.Addr, ca, 2*time.Second); r.Kind != "" {
			return r
		}
		return p.send("GET", tg.benign, 2*time.Second)
	}
	// The TLS probes attach to the servers asynchronously: wait until the
	// agent reads each server's TLS plaintext before judging anything, so a
	// slow attach is not mistaken for a missing block.
	targets := tlsProtectTargets(goapi, nginx)
	for _, tg := range targets {
		deadline := time.Now().Add(10 * time.Second)
		for {
			if r := benignOK(t, tg); r.Status != 200 {
				t.Fatalf("%s: benign request before any attack: %+v", tg.name, r)
			}
			if ok := tlsProbesAttached(a, tg.srv.CPUPids); ok || time.Now().After(deadline) {
				if !ok {
					t.Logf("%s: /v1/processes does not show pids %v as TLS-visible; going on", tg.name, tg.srv.CPUPids)
				}
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	type timing struct{ kernel, user []string }
	var times timing
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			// A keep-alive connection that must survive every attack on the others.
			keep := startProbe(t, cli, "")
			if r := keep.dialTo(tg.srv.Addr, ca, 2*time.Second); r.Kind != "" {
				t.Fatalf("dial keep-alive: %+v", r)
			}
			if r := keep.send("GET", tg.benign, 2*time.Second); r.Status != 200 {
				t.Fatalf("benign keep-alive request before attacks: %+v", r)
			}
			for _, at := range tg.attacks {
				t.Run(at.name, func(t *testing.T) {
					p := startProbe(t, cli, "")
					if r := p.dialTo(tg.srv.Addr, ca, 2*time.Second); r.Kind != "" {
						t.Fatalf("dial: %+v", r)
					}
					if r := p.send("GET", tg.benign, 2*time.Second); r.Status != 200 {
						t.Fatalf("benign request before the attack on the same connection: %+v", r)
					}
					r := p.send(at.method, at.raw, 2*time.Second)
					dead := r.Ms
					if at.kernel {
						// Every response packet is dropped at egress and the
						// sockets are aborted: no response byte reaches the client.
						if r.Status != 0 || r.Kind == "" {
							t.Errorf("kernel-rule attack over TLS got a response: %+v", r)
						} else {
							t.Logf("kernel path: client saw %s %.1f ms after sending (%s)", r.Kind, r.Ms, r.Err)
							times.kernel = append(times.kernel, fmt.Sprintf("%s %s %.1fms(%s)", tg.name, at.name, dead, r.Kind))
						}
					} else {
						// The cut follows the parsed request and may come after
						// the response.
						if r.Status == 0 && r.Kind == "" {
							t.Errorf("userspace attack: neither a response nor an error: %+v", r)
						}
						if r.Status != 0 {
							aw := p.await(3 * time.Second)
							if aw.Kind == "" || aw.Kind == "data" || aw.Kind == "timeout" {
								t.Errorf("connection not cut after the response (status %d): %+v", r.Status, aw)
							}
							dead += aw.Ms
							t.Logf("userspace path: response %d, then %s %.1f ms later (%.1f ms after sending)", r.Status, aw.Kind, aw.Ms, dead)
						} else {
							t.Logf("userspace path: client saw %s %.1f ms after sending, no response (%s)", r.Kind, r.Ms, r.Err)
						}
						times.user = append(times.user, fmt.Sprintf("%s %s %.1fms", tg.name, at.name, dead))
					}
					if r2 := p.send("GET", tg.benign, 1500*time.Millisecond); r2.Status != 0 || r2.Kind == "" {
						t.Errorf("second request on the attacked keep-alive connection succeeded: %+v", r2)
					}
					ev, evs, err := waitEvent(a, url.Values{"class": {at.class}}, 3*time.Second, func(e apiEvent) bool {
						return e.Client == p.Local && e.Class == at.class && (!at.kernel || e.Part == "request (kernel)")
					})
					if err != nil {
						t.Errorf("event class %s (kernel %v) for client %s: %v; events of the class:\n%s", at.class, at.kernel, p.Local, err, fmtEvents(evs))
					} else if ev.Action != "blocked" {
						t.Errorf("event action %q, want blocked: %+v", ev.Action, ev)
					} else {
						t.Logf("event: %s %s part %q service %q client %s", ev.Class, ev.Action, ev.Part, ev.Service, ev.Client)
					}
					// Other connections are unaffected.
					if rk := keep.send("GET", tg.benign, 2*time.Second); rk.Status != 200 {
						t.Errorf("benign keep-alive connection after the attack: %+v", rk)
					}
					if rf := benignOK(t, tg); rf.Status != 200 {
						t.Errorf("benign request on a fresh connection after the attack: %+v", rf)
					}
				})
			}
		})
	}

	// Uprobes cannot stop a read: the Go server's handlers saw the attacks.
	if lines, err := goapi.RequestLog(); err == nil {
		for _, at := range tlsProtectTargets(goapi, nginx)[0].attacks {
			seen := slices.ContainsFunc(lines, func(l string) bool {
				f := strings.Fields(l)
				return len(f) > 1 && f[0] == at.method && f[1] == at.marker
			})
			t.Logf("goapi handler saw %s %s: %v", at.method, at.marker, seen)
		}
	}
	if evs, err := events(a, url.Values{"action": {"monitor"}}); err == nil && len(evs) > 0 {
		t.Errorf("protect mode recorded monitor-only events:\n%s", fmtEvents(evs))
	}
	t.Logf("time from sending the attack to the dead connection: kernel path %v; userspace path %v", times.kernel, times.user)
}

// tlsProbesAttached reports whether the agent reads the TLS plaintext of
// one of pids (nginx decrypts in its worker, a child of the master).
func tlsProbesAttached(a *harness.Agent, pids []int) bool {
	ps, err := a.Processes()
	if err != nil {
		return false
	}
	for _, p := range ps {
		if !slices.Contains(pids, int(p.Pid)) {
			continue
		}
		for _, kind := range []string{"openssl", "gnutls", "go-tls"} {
			if strings.HasPrefix(p.Visibility, kind) {
				return true
			}
		}
	}
	return false
}

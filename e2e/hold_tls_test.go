package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apiwarden/apiwarden/e2e/harness"
)

// TestHoldTLS replays the cut-grade attacks over TLS, each on a fresh
// connection, against a Go crypto/tls server (goapi), nginx (OpenSSL) and
// python's ssl module (the shared libssl, another process) in protect mode. The request is decrypted only inside the server, so the
// server's TLS library has read it (and its handler may have run: that is
// logged, not asserted); what the hold point guarantees is that no byte of
// the response leaves: the client gets a reset or an empty stream, never a
// status line. Benign requests on connections of their own get their full
// response, byte for byte. A clean stop leaves nothing attached or queued.
// Run: flock /tmp/apiwarden-root.lock go test -count=1 ./e2e/ -run '^TestHoldTLS$' -v
func TestHoldTLS(t *testing.T) {
	bin := needAgent(t)
	attacks := cutGradeAttacks(t)
	w := newTLSWorld(t)
	goapi := w.start(t, tlsGo)
	nginx := w.start(t, tlsNginx)
	py := w.start(t, tlsPy)
	cfgPath := filepath.Join(w.dir, "awhold-tls.yaml")
	// failMode closed: a verdict later than the timeout (this machine runs
	// many tests at once) drops the packet and TCP resends it, so what this
	// test asserts does not depend on the load. Fail-open (the default)
	// lets a late one through, counted as hold_tls_timed_out.
	cfg := "autoBlock: {threshold: 0}\nhold: {enabled: true, timeout: 500ms, failMode: closed, maxQueued: 4096, mark: 0x00400000, queue: 7, tlsResponses: true}\n"
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := harness.StartAgent(harness.AgentConfig{Bin: bin, Ifaces: w.topo.Ifaces(),
		DataDir: filepath.Join(w.dir, "data-hold-tls"), Mode: "protect", Config: cfgPath,
		LogFile: filepath.Join(w.dir, "agent-hold-tls.log")})
	if err != nil {
		t.Fatalf("start agent: %v", err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			a.Kill()
		}
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
	ca := w.certs.CA
	cli := w.topo.CliNS
	targets := []struct {
		srv    *harness.Server
		benign []byte
		body   string // expected benign body
		every  int    // replay every n-th attack
	}{
		{goapi, ping(), "", 2},
		{nginx, rawRequest("GET", "/ping", nil, ""), `{"pong":true}`, 5},
		{py, rawRequest("GET", "/health", nil, ""), "", 7},
	}
	// Wait until the agent reads each server's plaintext and holds its port
	// (a benign request per round): a slow attach is not a missed hold.
	for _, tg := range targets {
		deadline := time.Now().Add(15 * time.Second)
		for {
			p := startProbe(t, cli, "")
			r := p.dialTo(tg.srv.Addr, ca, 2*time.Second)
			if r.Kind == "" {
				r = p.send("GET", tg.benign, 2*time.Second)
			}
			if r.Status != 200 {
				t.Fatalf("%s: benign request before any attack: %+v", tg.srv.Service, r)
			}
			c := statusCounters(t, a)
			if (tlsProbesAttached(a, tg.srv.CPUPids) && c["hold_tls_held"] > 0) || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	before := statusCounters(t, a)
	if before["hold_tls_held"] == 0 {
		t.Fatalf("no TLS response was ever held: %v", before)
	}
	if err := goapi.TruncateLog(); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}

	type meta struct {
		srv    *harness.Server
		attack *cutAttack
		sum    string
		body   string
	}
	var job replayJob
	var metas []meta
	add := func(m meta, raw []byte, method string) {
		job.Items = append(job.Items, replayItem{Addr: m.srv.Addr, Raw: raw, CA: ca, Method: method})
		metas = append(metas, m)
	}
	for i := range attacks {
		at := &attacks[i]
		for _, tg := range targets {
			if i%tg.every == 0 {
				add(meta{srv: tg.srv, attack: at}, at.raw, at.method)
			}
		}
		if i%6 == 0 {
			raw, sum := benignUpload(i)
			add(meta{srv: goapi, sum: sum}, raw, "POST")
			add(meta{srv: nginx, body: targets[1].body}, targets[1].benign, "GET")
			add(meta{srv: py}, targets[2].benign, "GET")
		}
	}
	job.Parallel, job.TimeoutMs = 8, 3000
	start := time.Now()
	res := replayIn(t, w.dir, cli, job)
	t.Logf("replayed %d requests over TLS (%d cut-grade attacks in the corpus) in %v", len(res), len(attacks), time.Since(start).Round(time.Millisecond))

	stoppedBy, kinds := map[string]int{}, map[string]int{}
	var attacked, benign int
	for i, r := range res {
		m := metas[i]
		if m.attack == nil {
			benign++
			switch {
			case r.Status != 200:
				t.Errorf("benign TLS request %d to %s: %+v", i, m.srv.Service, r)
			case m.sum != "" && !strings.Contains(string(r.Body), m.sum):
				t.Errorf("benign TLS upload %d: the server read other bytes: %s", i, r.Body)
			case m.body != "" && strings.TrimSpace(string(r.Body)) != m.body:
				t.Errorf("benign TLS request %d to %s: body %q", i, m.srv.Service, r.Body)
			}
			continue
		}
		attacked++
		if r.Status != 0 || len(r.Body) > 0 {
			t.Errorf("attack %s (%s) over TLS to %s got response bytes: status %d %q", m.attack.id, m.attack.class, m.srv.Service, r.Status, tailStr(string(r.Body), 200))
			continue
		}
		if strings.HasPrefix(r.Kind, "dial-") {
			t.Errorf("attack %s: TLS handshake failed (%s), not a test of the hold", m.attack.id, r.Err)
			continue
		}
		stoppedBy[m.srv.Service]++
		kinds[r.Kind]++
	}
	// The server decrypted every attack (that is where the probe reads it);
	// how many of goapi's handlers ran before the cut is reported as is.
	if lines, err := goapi.RequestLog(); err == nil {
		handled := 0
		for _, l := range lines {
			if f := strings.Fields(l); len(f) > 1 && f[1] != "/api/v1/upload" && f[1] != "/api/v1/ping" {
				handled++
			}
		}
		t.Logf("goapi's handlers ran for %d of the %d TLS attacks sent to it (its TLS library read all of them; none got a response byte)", handled, stoppedBy[goapi.Service])
	}
	c := statusCounters(t, a)
	t.Logf("stopped per server %v, client saw %v; %d benign passed", stoppedBy, kinds, benign)
	t.Logf("hold (tls): held %d allowed %d blocked %d timed_out %d unknown %d; all: held %d blocked %d timed_out %d queue_full %d; kernel marked tls %d",
		c["hold_tls_held"], c["hold_tls_allowed"], c["hold_tls_blocked"], c["hold_tls_timed_out"], c["hold_tls_unknown"],
		c["hold_held"], c["hold_blocked"], c["hold_timed_out"], c["hold_queue_full"], c["enforce_hold_tls_marked"])
	var stages []string
	for k, v := range c {
		if strings.HasPrefix(k, "hold_stage_") {
			stages = append(stages, fmt.Sprintf("%s=%d", strings.TrimPrefix(k, "hold_stage_"), v))
		}
	}
	slices.Sort(stages)
	t.Logf("verdict path (ns): %s", strings.Join(stages, " "))
	if c["hold_tls_blocked"] == 0 {
		t.Errorf("no TLS response dropped by the hold point: %v", c)
	}

	// A clean stop: nothing attached, no queue rule, TLS traffic flows.
	code, err := a.Stop(15 * time.Second)
	stopped = true
	if code != 0 {
		t.Errorf("agent exit code %d (%v)", code, err)
	}
	for _, ifc := range w.topo.Ifaces() {
		if progs, err := harness.AttachedPrograms(ifc); err != nil || len(progs) > 0 {
			t.Errorf("%s after stop: programs %v (err %v)", ifc, progs, err)
		}
	}
	if ok, err := nftTableExists(); err != nil || ok {
		t.Errorf("hold table left after a clean stop (exists=%v err=%v)", ok, err)
	}
	for _, tg := range targets {
		p := startProbe(t, cli, "")
		r := p.dialTo(tg.srv.Addr, ca, 2*time.Second)
		if r.Kind == "" {
			r = p.send("GET", tg.benign, 2*time.Second)
		}
		if r.Status != 200 {
			t.Errorf("%s: benign TLS request after the agent stopped: %+v", tg.srv.Service, r)
		}
	}
}

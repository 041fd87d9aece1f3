package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apiwarden/apiwarden/e2e/harness"
)

// tlsProbeRuns sums the runs of the agent's OpenSSL and Go TLS uprobe
// programs.
func tlsProbeRuns(t *testing.T, pid int) (lib, gotls uint64) {
	t.Helper()
	st, err := harness.ProgStats(pid)
	if err != nil {
		t.Fatalf("bpf prog stats: %v", err)
	}
	for _, p := range st {
		switch {
		case strings.HasPrefix(p.Name, "tls_lib_"):
			lib += p.RunCnt
		case strings.HasPrefix(p.Name, "tls_go_"):
			gotls += p.RunCnt
		}
	}
	return lib, gotls
}

// TestTLSProbeScopeSparesUnwatchedProcesses is issue #8's evidence that a
// process the agent does not watch pays no probe: with
// --tls-probe-scope=process, curl (a libssl client the agent does not
// watch) talks TLS to a watched Go server while nginx (watched, libssl)
// keeps the library probed, and the OpenSSL probes never run; the Go
// server's probes do and its calls reach the inventory. In host scope the
// same curl traps on every TLS read and write: the test's control.
func TestTLSProbeScopeSparesUnwatchedProcesses(t *testing.T) {
	bin := needAgent(t)
	w := newTLSWorld(t)
	restore, err := harness.EnableBPFStats()
	if err != nil {
		t.Skipf("bpf stats: %v", err)
	}
	t.Cleanup(restore)
	w.start(t, tlsNginx)
	w.start(t, tlsGo)
	ctx := context.Background()
	const n = 20
	curlN := func(t *testing.T) {
		t.Helper()
		reqs := make([]treq, n)
		for i := range reqs {
			reqs[i] = tr("GET", fmt.Sprintf("/api/v1/ping?n=%d", i), 200, "/api/v1/ping")
		}
		// One curl per request: each is a new process, as cron jobs and
		// package managers are.
		for _, r := range reqs {
			w.run(ctx, t, []tstep{{name: "curl", svc: tlsGo, via: "curl", reqs: []treq{r}}})
		}
	}
	for _, scope := range []string{"process", "host"} {
		t.Run(scope, func(t *testing.T) {
			a := startTestAgent(t, w.topo, w.dir, harness.AgentConfig{Bin: bin,
				DataDir: filepath.Join(w.dir, "data-"+scope), LogFile: filepath.Join(w.dir, "agent-"+scope+".log"),
				Extra: []string{"--tls-probe-scope", scope}})
			curlN(t) // warm-up: the servers' probes attach at the start-up scan
			time.Sleep(time.Second)
			pings0 := pings(t, a)
			lib0, go0 := tlsProbeRuns(t, a.Pid())
			curlN(t)
			lib1, go1 := tlsProbeRuns(t, a.Pid())
			t.Logf("%s scope: %d curl processes: OpenSSL probe runs %d, Go TLS probe runs %d", scope, n, lib1-lib0, go1-go0)
			if go1 == go0 {
				t.Errorf("the watched Go server's TLS probes did not run")
			}
			switch scope {
			case "process":
				if lib1 != lib0 {
					t.Errorf("unwatched curl processes ran the OpenSSL probes %d times", lib1-lib0)
				}
				// Every call after the warm-up reaches the inventory.
				deadline := time.Now().Add(10 * time.Second)
				seen := pings(t, a) - pings0
				for seen < n && time.Now().Before(deadline) {
					time.Sleep(200 * time.Millisecond)
					seen = pings(t, a) - pings0
				}
				if seen != n {
					t.Errorf("inventory counted %d of the %d calls after the warm-up", seen, n)
				}
			case "host":
				if lib1 == lib0 {
					t.Errorf("host scope: curl's TLS calls did not trap (the control failed)")
				}
			}
			w.stopAgentQuiet(t, a)
		})
	}
}

// pings is the inventory's count of /api/v1/ping calls.
func pings(t *testing.T, a *harness.Agent) uint64 {
	t.Helper()
	eps, err := a.Inventory()
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, e := range eps {
		if e.PathTemplate == "/api/v1/ping" {
			n += uint64(e.RequestCount)
		}
	}
	return n
}

func (w *tlsWorld) stopAgentQuiet(t *testing.T, a *harness.Agent) {
	t.Helper()
	if code, err := a.Stop(15 * time.Second); code != 0 {
		t.Errorf("agent exit %d: %v", code, err)
	}
}

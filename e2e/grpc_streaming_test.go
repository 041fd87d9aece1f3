package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apiwarden/apiwarden/e2e/harness"
)

// TestGRPCStreamingE2E: grpc-go clients call the three streaming kinds of
// h2srv's test.v1.Echo service over plaintext and over TLS (the server's
// Go crypto/tls probes), then a python grpcio client (Debian's
// python3-grpcio, hand-encoded messages, no stubs) calls Health/Check and
// the server-streaming Feed. Every call is in the inventory with its
// streaming kind, message counts turned into kinds, grpc-status and the
// owning process.
func TestGRPCStreamingE2E(t *testing.T) {
	bin := needAgent(t)
	w := newH2World(t)
	a := w.startAgent(t, harness.AgentConfig{Bin: bin})

	const wantClient = `{"Chat":{"received":3,"code":"OK"},"Feed":{"received":3,"code":"OK"},"FeedFail":{"received":0,"code":"InvalidArgument"},"Sum":{"received":1,"code":"OK"}}`
	checkEcho := func(t *testing.T, port int, tls bool) {
		t.Helper()
		check := func(method, kind string, calls uint64, statuses map[string]harness.U64) {
			t.Helper()
			e := waitEndpoint(t, a, port, "POST", "/test.v1.Echo/"+method, calls)
			if uint64(e.RequestCount) != calls || e.Protocol != "grpc" || e.GRPCKinds[kind] == 0 || e.PartialCalls != 0 {
				t.Errorf("%d %s: calls %d protocol %s kinds %v partial %d; want %d calls, kind %s",
					port, method, e.RequestCount, e.Protocol, e.GRPCKinds, e.PartialCalls, calls, kind)
			}
			for code, n := range statuses {
				if e.GRPCStatusCodes[code] != n {
					t.Errorf("%d %s: grpc-status %v, want %v", port, method, e.GRPCStatusCodes, statuses)
				}
			}
			if tls && len(e.TLS) == 0 {
				t.Errorf("%d %s: not read from TLS: %v", port, method, e.TLS)
			}
			if len(e.Processes) == 0 || filepath.Base(e.Processes[0].Exe) != "h2srv" {
				t.Errorf("%d %s: owning process %+v", port, method, e.Processes)
			}
		}
		check("Chat", "bidi-streaming", 1, map[string]harness.U64{"0": 1})
		check("Sum", "client-streaming", 1, map[string]harness.U64{"0": 1})
		// Feed: one streamed answer (OK) and one refused (3 INVALID_ARGUMENT,
		// no message back: counted as unary).
		check("Feed", "server-streaming", 2, map[string]harness.U64{"0": 1, "3": 1})
	}
	t.Run("plaintext", func(t *testing.T) {
		if out := strings.TrimSpace(w.cli(t, w.bin, "-stream", w.addr(h2GRPCPort))); out != wantClient {
			t.Fatalf("stream client: %s", out)
		}
		checkEcho(t, h2GRPCPort, false)
	})
	t.Run("tls", func(t *testing.T) {
		if out := strings.TrimSpace(w.cli(t, w.bin, "-stream", w.addr(h2GRPCTLS), "-tls-client")); out != wantClient {
			t.Fatalf("stream client: %s", out)
		}
		checkEcho(t, h2GRPCTLS, true)
	})
	t.Run("python-grpcio", func(t *testing.T) {
		// Debian's python3-grpcio lives in the system interpreter.
		py := "/usr/bin/python3"
		if fi, err := os.Stat(py); err != nil || fi.IsDir() {
			t.Skip("needs /usr/bin/python3")
		}
		if _, err := w.cliRun(py, "-c", "import grpc"); err != nil {
			t.Skip("needs python3-grpcio")
		}
		script, err := filepath.Abs("testdata/grpcclient.py")
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Codes map[string]int `json:"codes"`
			Feed  int            `json:"feed"`
		}
		out := w.cli(t, py, script, w.addr(h2GRPCPort), "4", "1")
		if err := json.Unmarshal([]byte(out), &got); err != nil || got.Codes["OK"] != 4 || got.Codes["NOT_FOUND"] != 1 || got.Feed != 3 {
			t.Fatalf("python client: %v %s", err, out)
		}
		e := waitEndpoint(t, a, h2GRPCPort, "POST", "/grpc.health.v1.Health/Check", 5)
		if e.RequestCount != 5 || e.Protocol != "grpc" || e.GRPCStatusCodes["0"] != 4 || e.GRPCStatusCodes["5"] != 1 || e.GRPCKinds["unary"] != 5 {
			t.Errorf("python Check endpoint: calls %d protocol %s status %v kinds %v", e.RequestCount, e.Protocol, e.GRPCStatusCodes, e.GRPCKinds)
		}
		// Feed now has the two Go calls and python's one.
		e = waitEndpoint(t, a, h2GRPCPort, "POST", "/test.v1.Echo/Feed", 3)
		if e.RequestCount != 3 || e.GRPCKinds["server-streaming"] != 2 {
			t.Errorf("Feed after python: calls %d kinds %v", e.RequestCount, e.GRPCKinds)
		}
	})
}

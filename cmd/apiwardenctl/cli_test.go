package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiwarden/apiwarden/apimodel/inventory"
	"github.com/apiwarden/apiwarden/apiserver"
)

const testDoc = `{"openapi":"3.0.3","paths":{}}`

// fakeBackend serves a fixed inventory and an in-memory blocklist; events
// stay unimplemented to exercise that error path.
type fakeBackend struct {
	apiserver.UnimplementedBackend
	mu     sync.Mutex
	blocks []apiserver.Block
}

func (f *fakeBackend) Inventory() []inventory.Endpoint {
	return []inventory.Endpoint{{
		Service:      inventory.Service{Name: "shop", Port: 8080},
		Method:       "GET",
		PathTemplate: "/items/{id}",
		RequestCount: 12,
		StatusCodes:  map[int]uint64{200: 10, 404: 1, 500: 1},
	}}
}

func (f *fakeBackend) OpenAPI() ([]byte, error) { return []byte(testDoc), nil }

func (f *fakeBackend) Status() (apiserver.Status, error) {
	return apiserver.Status{Version: "v1.2.3", Mode: "protect", Interfaces: []string{"eth0", "lo"},
		Counters: map[string]uint64{"captured": 5, "blocked": 2}}, nil
}

func (f *fakeBackend) Processes() ([]apiserver.ProcessStatus, error) {
	return []apiserver.ProcessStatus{{PID: 7, Comm: "nginx", Ports: []uint16{80, 443}, Visibility: "openssl 3.0"}}, nil
}

func (f *fakeBackend) Blocks() ([]apiserver.Block, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]apiserver.Block(nil), f.blocks...), nil
}

func (f *fakeBackend) AddBlock(p netip.Prefix, ttl time.Duration, reason string) (apiserver.Block, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := apiserver.Block{Prefix: p, Reason: reason, Created: time.Now()}
	if ttl > 0 {
		b.Expires = b.Created.Add(ttl)
	}
	f.blocks = append(f.blocks, b)
	return b, nil
}

func (f *fakeBackend) DeleteBlock(p netip.Prefix) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, b := range f.blocks {
		if b.Prefix == p {
			f.blocks = append(f.blocks[:i], f.blocks[i+1:]...)
			return nil
		}
	}
	return apiserver.ErrNotFound
}

func startAgent(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- apiserver.New(apiserver.Config{}, &fakeBackend{}, nil, nil).ServeListener(ctx, ln)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String()
}

// ctl runs the CLI in-process with APIWARDEN_ADDR=addr.
func ctl(t *testing.T, addr string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := func(k string) string {
		if k == addrEnv {
			return addr
		}
		return ""
	}
	code = run(context.Background(), args, &out, &errb, env)
	return code, out.String(), errb.String()
}

func TestInventoryTableAndJSON(t *testing.T) {
	addr := startAgent(t)
	code, out, errs := ctl(t, addr, "inventory")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "SERVICE") {
		t.Fatalf("table:\n%s", out)
	}
	if f := strings.Fields(lines[1]); strings.Join(f, " ") != "shop:8080 GET /items/{id} 12 200:10 404:1 500:1" {
		t.Errorf("row %q", lines[1])
	}

	code, out, _ = ctl(t, addr, "inventory", "-o", "json")
	var got struct {
		Endpoints []struct {
			PathTemplate string            `json:"pathTemplate"`
			StatusCodes  map[string]string `json:"statusCodes"`
		} `json:"endpoints"`
	}
	if err := json.Unmarshal([]byte(out), &got); code != 0 || err != nil {
		t.Fatalf("json exit %d err %v:\n%s", code, err, out)
	}
	if len(got.Endpoints) != 1 || got.Endpoints[0].StatusCodes["404"] != "1" {
		t.Errorf("json %+v", got)
	}
}

func TestOpenAPIStdoutAndFile(t *testing.T) {
	addr := startAgent(t)
	if code, out, errs := ctl(t, addr, "openapi"); code != 0 || out != testDoc+"\n" {
		t.Errorf("exit %d out %q err %q", code, out, errs)
	}
	file := filepath.Join(t.TempDir(), "api.json")
	if code, _, errs := ctl(t, addr, "openapi", "-o", file); code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != testDoc {
		t.Errorf("file %q %v", b, err)
	}
}

func TestBlockUnblockCycle(t *testing.T) {
	addr := startAgent(t)
	// Flags after the positional argument, --double-dash style.
	code, out, errs := ctl(t, addr, "block", "198.51.100.9", "--ttl", "10m", "--reason", "scanner")
	if code != 0 || !strings.Contains(out, "198.51.100.9/32") || !strings.Contains(out, "scanner") {
		t.Fatalf("block exit %d out %q err %q", code, out, errs)
	}
	if code, out, _ := ctl(t, addr, "blocklist"); code != 0 || !strings.Contains(out, "198.51.100.9/32") {
		t.Errorf("blocklist: %s", out)
	}
	if code, out, errs := ctl(t, addr, "unblock", "198.51.100.9/32"); code != 0 || out != "unblocked 198.51.100.9/32\n" {
		t.Errorf("unblock exit %d out %q err %q", code, out, errs)
	}
	code, _, errs = ctl(t, addr, "unblock", "198.51.100.9/32")
	if code != 1 || !strings.Contains(errs, "not found") {
		t.Errorf("unblock again exit %d err %q", code, errs)
	}
	code, _, errs = ctl(t, addr, "block", "not-an-ip")
	if code != 1 || errs != "apiwardenctl: block: invalid prefix \"not-an-ip\"\n" {
		t.Errorf("bad prefix exit %d err %q", code, errs)
	}
}

func TestStatusAndProcesses(t *testing.T) {
	addr := startAgent(t)
	code, out, errs := ctl(t, addr, "status")
	if code != 0 || !strings.Contains(out, "protect") || !strings.Contains(out, "eth0, lo") {
		t.Errorf("status exit %d out %q err %q", code, out, errs)
	}
	// Counters are sorted by name.
	if strings.Index(out, "blocked") > strings.Index(out, "captured") {
		t.Errorf("counters unsorted:\n%s", out)
	}
	code, out, _ = ctl(t, addr, "processes")
	if code != 0 || !strings.Contains(out, "80,443") || !strings.Contains(out, "openssl 3.0") {
		t.Errorf("processes exit %d:\n%s", code, out)
	}
}

func TestUnimplementedIsClear(t *testing.T) {
	addr := startAgent(t)
	code, _, errs := ctl(t, addr, "events", "--since", "1h")
	if code != 1 || errs != "apiwardenctl: events: not supported by this agent\n" {
		t.Errorf("exit %d err %q", code, errs)
	}
}

func TestAgentNotReachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // Nothing listens there now.
	code, _, errs := ctl(t, "", "--addr", addr, "--timeout", "5s", "status")
	want := "apiwardenctl: agent not reachable at " + addr
	if code != 1 || !strings.HasPrefix(errs, want) || !strings.HasSuffix(errs, ": connect: connection refused\n") ||
		strings.Count(errs, "\n") != 1 {
		t.Errorf("exit %d err %q", code, errs)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"frobnicate"}, {"block"}, {"inventory", "-o", "yaml"}, {"events", "--since", "yesterday"}} {
		if code, _, errs := ctl(t, "127.0.0.1:1", args...); code != 2 || !strings.Contains(errs, "usage:") {
			t.Errorf("%v: exit %d err %q", args, code, errs)
		}
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if got, _ := parseSince("90m", now); !got.Equal(now.Add(-90 * time.Minute)) {
		t.Errorf("duration: %v", got)
	}
	if got, _ := parseSince("2026-01-01T00:00:00Z", now); !got.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("rfc3339: %v", got)
	}
}

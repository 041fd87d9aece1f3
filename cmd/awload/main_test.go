package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func testServer(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func TestClosedLoop(t *testing.T) {
	addr := testServer(t)
	res := run(config{addr: addr, host: addr, path: "/", conns: 2, duration: 200 * time.Millisecond, timeout: time.Second})
	if res.Requests == 0 || res.Errors != 0 || res.P50Us <= 0 || res.P99Us < res.P50Us {
		t.Fatalf("%+v", res)
	}
}

// TestOpenLoopSendsOnSchedule: at a low fixed rate every scheduled request is
// sent, so the count is rate x duration.
func TestOpenLoopSendsOnSchedule(t *testing.T) {
	addr := testServer(t)
	res := run(config{addr: addr, host: addr, path: "/", conns: 4, duration: 500 * time.Millisecond, rate: 200, timeout: time.Second})
	if res.Errors != 0 || res.Requests+res.Missed != 100 {
		t.Fatalf("%+v", res)
	}
}

func TestErrorsAreCounted(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", 500)
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	res := run(config{addr: addr, host: addr, path: "/", conns: 1, duration: 100 * time.Millisecond, timeout: time.Second})
	if res.Errors == 0 || !strings.Contains(res.FirstErr, "500") {
		t.Fatalf("%+v", res)
	}
}

// TestNewConnPerRequest: with -new-conn every request arrives on its own
// connection and the client asks the server to close it.
func TestNewConnPerRequest(t *testing.T) {
	var mu sync.Mutex
	newConns, closes := 0, 0
	// Connections are counted as the server accepts them: distinct remote
	// addresses undercount, the client reuses its ports within the run.
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if r.Close {
			closes++
		}
		mu.Unlock()
		_, _ = w.Write([]byte("ok"))
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			mu.Lock()
			newConns++
			mu.Unlock()
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	res := run(config{addr: addr, host: addr, path: "/", conns: 2, duration: 200 * time.Millisecond, timeout: time.Second, newConn: true})
	mu.Lock()
	conns, closed := newConns, closes
	mu.Unlock()
	if res.Requests == 0 || res.Errors != 0 || int64(conns) < res.Requests || int64(closed) < res.Requests {
		t.Fatalf("%+v: %d connections, %d close requests", res, conns, closed)
	}
	res = run(config{addr: addr, host: addr, path: "/", conns: 2, duration: 200 * time.Millisecond, rate: 100, timeout: time.Second, newConn: true})
	if res.Requests == 0 || res.Errors != 0 {
		t.Fatalf("open loop: %+v", res)
	}
}

func TestMissedBefore(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ms := time.Millisecond
	for _, c := range []struct {
		sched, end time.Duration
		want       int64
	}{
		{0, 100 * ms, 5},      // 0, 20, 40, 60, 80 (100 is not before end)
		{1 * ms, 100 * ms, 5}, // 1, 21, 41, 61, 81
		{99 * ms, 100 * ms, 1},
		{100 * ms, 100 * ms, 0},
	} {
		if got := missedBefore(t0.Add(c.sched), t0.Add(c.end), 20*ms); got != c.want {
			t.Errorf("sched %v end %v: %d, want %d", c.sched, c.end, got, c.want)
		}
	}
}

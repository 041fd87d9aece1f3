package behavior

import (
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/apiwarden/apiwarden/apimodel/call"
)

// BenchmarkObserve: calls per second through the whole model, a mix of
// 1,000 clients over 50 endpoints (id reads, logins, JSON writes).
func BenchmarkObserve(b *testing.B) {
	m := newModel(Config{})
	calls := make([]*call.Call, 4096)
	tmpls := make([]string, len(calls))
	for i := range calls {
		src := fmt.Sprintf("10.%d.%d.%d", i%4, (i/4)%250, i%250+1)
		switch i % 4 {
		case 0, 1:
			calls[i] = mkCall(src, "GET", fmt.Sprintf("/api/v1/r%d/%d", i%50, i), 200, t0)
			tmpls[i] = fmt.Sprintf("/api/v1/r%d/{id}", i%50)
		case 2:
			calls[i] = loginCall(src, fmt.Sprintf("u%d", i%300), 200, t0)
			tmpls[i] = "/api/v1/login"
		default:
			calls[i] = jsonCall(src, "PUT", fmt.Sprintf("/api/v1/users/%d", i), `{"name":"a","age":3}`, t0)
			calls[i].Response.Body = []byte(`{"id":1,"name":"a"}`)
			tmpls[i] = "/api/v1/users/{userId}"
		}
	}
	// On a shared host wall time per call includes waiting for a core;
	// the benchmark goroutine's thread CPU time does not: cpu-ns/op is
	// what one core spends per call (GC on other threads excluded),
	// calls/cpu-s its inverse.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := threadCPU()
	for i := 0; i < b.N; i++ {
		j := i % len(calls)
		calls[j].Request.Start = t0.Add(time.Duration(i) * time.Microsecond)
		m.Observe(calls[j], "shop", tmpls[j])
	}
	if d := threadCPU() - cpu0; d > 0 {
		b.ReportMetric(float64(d.Nanoseconds())/float64(b.N), "cpu-ns/op")
		b.ReportMetric(float64(b.N)/d.Seconds(), "calls/cpu-s")
	}
}

// threadCPU is the calling thread's user+system CPU time.
func threadCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestMemoryPerClientsAndEndpoints reports the heap held by 10,000 tracked
// (client, endpoint) pairs and by 1,000 endpoints (log only: a number to
// read, not a timed assertion).
func TestMemoryPerClientsAndEndpoints(t *testing.T) {
	if testing.Short() {
		t.Skip("memory report")
	}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	m := newModel(Config{MaxClients: 10000, MaxEndpoints: 1000})
	h0 := heap()
	for i := 0; i < 10000; i++ { // 10,000 clients, 10 ids each, one endpoint
		for k := 0; k < 10; k++ {
			m.Observe(mkCall(fmt.Sprintf("10.%d.%d.1", i/256, i%256), "GET", fmt.Sprintf("/o/%d", k), 200, t0), "s", "/o/{id}")
		}
	}
	h1 := heap()
	for i := 0; i < 1000; i++ {
		m.Observe(jsonCall("10.200.0.1", "PUT", fmt.Sprintf("/e%d/1", i), `{"a":1,"b":"x","c":{"d":true}}`, t0), "s", fmt.Sprintf("/e%d/{id}", i))
	}
	h2 := heap()
	t.Logf("10,000 clients: %d KiB (%d B/client); 1,000 endpoints: %d KiB (%d B/endpoint, incl. their one client each)",
		(h1-h0)>>10, (h1-h0)/10000, (h2-h1)>>10, (h2-h1)/1000)
	if s := m.Stats(); s.Clients != 10000 {
		t.Fatalf("clients tracked %d", s.Clients)
	}
	// Past the bound, memory stays: 10,000 more clients evict the first.
	for i := 0; i < 10000; i++ {
		m.Observe(mkCall(fmt.Sprintf("11.%d.%d.1", i/256, i%256), "GET", "/o/1", 200, t0), "s", "/o/{id}")
	}
	if s := m.Stats(); s.Clients != 10000 || s.EvictedClients < 10000 {
		t.Fatalf("at the bound: %+v", s)
	}
}

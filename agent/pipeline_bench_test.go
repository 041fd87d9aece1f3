package agent

import (
	"fmt"
	"log/slog"
	"net/netip"
	"runtime/debug"
	"syscall"
	"testing"
	"time"

	"github.com/apiwarden/apiwarden/apimodel/assemble"
	"github.com/apiwarden/apiwarden/apimodel/attrib"
	"github.com/apiwarden/apiwarden/apimodel/behavior"
	"github.com/apiwarden/apiwarden/apimodel/capture"
	"github.com/apiwarden/apiwarden/apimodel/detect"
	"github.com/apiwarden/apiwarden/apimodel/http1"
	"github.com/apiwarden/apiwarden/apimodel/inventory"
	"github.com/apiwarden/apiwarden/procfs"
)

// pipelineAgent is an agent with the userspace call pipeline of Run
// (assembler, detector, inventory, metrics) and no kernel: what the
// agent spends per call once a chunk is out of the ring buffer.
func pipelineAgent(tb testing.TB) *Agent {
	tb.Helper()
	log := slog.New(slog.DiscardHandler)
	a, err := New(Default(), "bench", log)
	if err != nil {
		tb.Fatal(err)
	}
	a.base, a.log = log, log
	a.inv = inventory.New(inventory.Config{MaxBodyBytes: a.cfg.MaxBodyBytes}, log)
	a.procs = attrib.New(attrib.Config{ProcFS: procfs.New(tb.TempDir())}, log)
	// The server of the conversations is a known process, as on a host
	// whose process events the agent has seen: its calls resolve (once per
	// connection, then from the cache) and are named after it.
	a.procs.OnProc(capture.ProcEvent{Kind: capture.ProcExec, TGID: 4242, PPID: 1, Comm: "goapi", Filename: "/usr/bin/goapi"})
	a.procs.OnSock(capture.SockEvent{Kind: capture.SockListen, Local: netip.MustParseAddrPort("10.0.0.2:8080"),
		TGID: 4242, PID: 4242, Comm: "goapi"})
	a.asm = assemble.New(assemble.Config{
		MaxFlows: a.cfg.MaxFlows, IdleTimeout: a.cfg.FlowIdleTimeout,
		HTTP:      http1.Config{MaxBodyBytes: a.cfg.MaxBodyBytes},
		OnRequest: a.onRequest,
	}, log, a.onCall)
	// As Run: the shape learner is on unless configured off.
	dcfg := detect.Config{}
	if a.shapes = a.cfg.Shapes.profiler(); a.shapes != nil {
		dcfg.Shapes = a.shapes
	}
	if a.detector, err = detect.New(dcfg, log); err != nil {
		tb.Fatal(err)
	}
	a.model = behavior.New(behavior.Config{Key: make([]byte, 32)}, log)
	return a
}

// apiConversation is one keep-alive connection carrying n JSON API calls
// the way the TC sensor reports them: one chunk per segment.
func apiConversation(n int) []capture.Chunk {
	return conversation(n, func(i int) (string, string) {
		req := fmt.Sprintf("GET /api/v1/users/%d?fields=name,email HTTP/1.1\r\nHost: api.local\r\n"+
			"User-Agent: bench/1.0\r\nAccept: application/json\r\nAuthorization: Bearer abc.def.ghi\r\n\r\n", i%500)
		body := fmt.Sprintf(`{"id":%d,"name":"user %d","email":"u%d@example.com","active":true,"tags":["a","b"]}`, i, i, i)
		resp := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"+
			"Date: Mon, 01 Jan 2024 00:00:00 GMT\r\n\r\n%s", len(body), body)
		return req, resp
	})
}

// pingConversation is n plain keep-alive GET /api/v1/ping calls from a
// curl-like client, the smallest API call.
func pingConversation(n int) []capture.Chunk {
	return conversation(n, func(int) (string, string) {
		return "GET /api/v1/ping HTTP/1.1\r\nHost: api.local:8080\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n",
			"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 4\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\n\r\npong"
	})
}

// postConversation is n keep-alive JSON POSTs creating orders, each body
// different (ids, quantities, a free-text note), from a browser.
func postConversation(n int) []capture.Chunk {
	return conversation(n, func(i int) (string, string) {
		body := fmt.Sprintf(`{"customer":{"id":%d,"email":"c%d@example.com"},"items":[{"sku":"SKU-%05d","qty":%d},`+
			`{"sku":"SKU-%05d","qty":1}],"note":"leave it at the door, ring twice #%d","coupon":null,"gift":false}`,
			i%1000, i%1000, i%4000, 1+i%5, (i*7)%4000, i)
		req := fmt.Sprintf("POST /api/v1/orders HTTP/1.1\r\nHost: shop.example.com\r\n"+
			"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36\r\n"+
			"Accept: application/json\r\nAccept-Language: en-US,en;q=0.9\r\nContent-Type: application/json\r\n"+
			"Origin: https://shop.example.com\r\nReferer: https://shop.example.com/cart\r\n"+
			"Cookie: session=3f2a9c81d4e5b6a7; theme=dark\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		rbody := fmt.Sprintf(`{"id":"ord_%08d","status":"created","total":%d.50,"items":2}`, i, 10+i%90)
		resp := fmt.Sprintf("HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"+
			"Date: Mon, 01 Jan 2024 00:00:00 GMT\r\n\r\n%s", len(rbody), rbody)
		return req, resp
	})
}

// conversation is one keep-alive connection carrying the n calls gen
// returns (request, response), one chunk per segment.
func conversation(n int, gen func(i int) (string, string)) []capture.Chunk {
	cli := netip.MustParseAddrPort("10.0.0.1:40000")
	srv := netip.MustParseAddrPort("10.0.0.2:8080")
	up, down := capture.FlowKey{Src: cli, Dst: srv}, capture.FlowKey{Src: srv, Dst: cli}
	t := time.Unix(1_700_000_000, 0)
	var out []capture.Chunk
	var cseq, sseq uint32 = 1000, 5000
	add := func(k capture.FlowKey, seq *uint32, data string, flags uint8) {
		out = append(out, capture.Chunk{Time: t, Key: k, Seq: *seq, Data: []byte(data),
			PayloadLen: uint32(len(data)), Flags: flags | capture.FlagACK, Source: capture.SourceTCIngress})
		*seq += uint32(len(data))
		t = t.Add(50 * time.Microsecond)
	}
	out = append(out, capture.Chunk{Time: t, Key: up, Seq: cseq - 1, Flags: capture.FlagSYN, Source: capture.SourceTCIngress},
		capture.Chunk{Time: t, Key: down, Seq: sseq - 1, Flags: capture.FlagSYN | capture.FlagACK, Source: capture.SourceTCEgress})
	for i := range n {
		req, resp := gen(i)
		add(up, &cseq, req, capture.FlagPSH)
		add(down, &sseq, resp, capture.FlagPSH)
	}
	return out
}

// BenchmarkPipeline is the userspace cost per API call (request + response
// chunks -> call -> detector, inventory, metrics). Profile it with
// -cpuprofile to find what to cut (issue #8 item 3).
func BenchmarkPipeline(b *testing.B) { benchConversation(b, apiConversation(256), 256) }

// BenchmarkPipelinePing is the same for the smallest call, a keep-alive
// GET /api/v1/ping.
func BenchmarkPipelinePing(b *testing.B) { benchConversation(b, pingConversation(256), 256) }

// BenchmarkPipelinePost is the same for a JSON POST whose body differs
// in every call (no value repeats but the headers).
func BenchmarkPipelinePost(b *testing.B) { benchConversation(b, postConversation(1024), 1024) }

func benchConversation(b *testing.B, conv []capture.Chunk, calls int) {
	// As Run: a lazier collector (the pipeline's records are short-lived).
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	a := pipelineAgent(b)
	round := func() {
		for _, c := range conv {
			a.addChunk(c)
		}
		// The same connection again: new flow state each round.
		a.withAssembler(func(asm *assemble.Assembler) { asm.Flush() })
	}
	// Steady state: past the shape learner's first detect.saturateAt
	// (1000) requests per endpoint, which it learns every one of.
	for n := 0; n < 2048; n += calls {
		round()
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	for b.Loop() {
		round()
	}
	// CPU time (all threads: GC workers included) is what the agent
	// costs the host, and on a busy machine steadier than wall time.
	cpu := processCPU() - cpu0
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*calls), "ns/call")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*calls), "cpu-ns/call")
	b.ReportMetric(0, "ns/op")
}

// processCPU is the user and system CPU time of the process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

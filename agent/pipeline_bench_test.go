package agent

import (
	"fmt"
	"log/slog"
	"net/netip"
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
	a.asm = assemble.New(assemble.Config{
		MaxFlows: a.cfg.MaxFlows, IdleTimeout: a.cfg.FlowIdleTimeout,
		HTTP:      http1.Config{MaxBodyBytes: a.cfg.MaxBodyBytes},
		OnRequest: a.onRequest,
	}, log, a.onCall)
	if a.detector, err = detect.New(detect.Config{}, log); err != nil {
		tb.Fatal(err)
	}
	a.model = behavior.New(behavior.Config{Key: make([]byte, 32)}, log)
	return a
}

// apiConversation is one keep-alive connection carrying n JSON API calls
// the way the TC sensor reports them: one chunk per segment.
func apiConversation(n int) []capture.Chunk {
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
		req := fmt.Sprintf("GET /api/v1/users/%d?fields=name,email HTTP/1.1\r\nHost: api.local\r\n"+
			"User-Agent: bench/1.0\r\nAccept: application/json\r\nAuthorization: Bearer abc.def.ghi\r\n\r\n", i%500)
		body := fmt.Sprintf(`{"id":%d,"name":"user %d","email":"u%d@example.com","active":true,"tags":["a","b"]}`, i, i, i)
		resp := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"+
			"Date: Mon, 01 Jan 2024 00:00:00 GMT\r\n\r\n%s", len(body), body)
		add(up, &cseq, req, capture.FlagPSH)
		add(down, &sseq, resp, capture.FlagPSH)
	}
	return out
}

// BenchmarkPipeline is the userspace cost per API call (request + response
// chunks -> call -> detector, inventory, metrics). Profile it with
// -cpuprofile to find what to cut (issue #8 item 3).
func BenchmarkPipeline(b *testing.B) {
	const calls = 256
	a := pipelineAgent(b)
	conv := apiConversation(calls)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		for _, c := range conv {
			a.addChunk(c)
		}
		// The same connection again: new flow state each round.
		a.withAssembler(func(asm *assemble.Assembler) { asm.Flush() })
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*calls), "ns/call")
	b.ReportMetric(0, "ns/op")
}

package capture

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	apicap "github.com/apiwarden/apiwarden/apimodel/capture"
)

// pathRingBytes is the agent's default ring buffer size: the per-path
// benchmarks cycle through it like the agent does (run a batch, drain it),
// so the ring's memory is as warm or cold as in production instead of a
// 512 MiB ring touched once per record.
const pathRingBytes = 16 << 20

// benchPath runs the ingress program b.N times on pkt in batches that fit
// the ring buffer, draining the ring between batches, and reports the mean
// time of one program run (ns/run) and the records it wrote (records/run).
func benchPath(b *testing.B, cfg Config, pkt []byte, setup func(*Sensor)) {
	cfg.RingBufferBytes = pathRingBytes
	s := newTestSensor(b, cfg)
	if setup != nil {
		setup(s)
	}
	batch := pathRingBytes / 2 / (len(pkt) + 64)
	var total time.Duration
	var records int
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(batch, b.N-done)
		ret, perRun, err := s.objs.CaptureIngress.Benchmark(pkt, n, nil)
		if err != nil {
			b.Fatal(err)
		}
		if ret != tcxNext {
			b.Fatalf("return code %#x", ret)
		}
		total += perRun * time.Duration(n)
		done += n
		b.StopTimer()
		records += drainCount(b, s)
		b.StartTimer()
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/run")
	b.ReportMetric(float64(records)/float64(b.N), "records/run")
	c, _ := s.Counters()
	b.ReportMetric(float64(c["chunks_lost"])/float64(b.N), "lost/run")
}

// drainCount discards every record waiting in the ring buffer.
func drainCount(b *testing.B, s *Sensor) int {
	s.reader.SetDeadline(time.Now())
	defer s.reader.SetDeadline(time.Time{})
	n := 0
	for {
		_, err := s.reader.Read()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return n
		}
		if err != nil {
			b.Fatalf("read: %v", err)
		}
		n++
	}
}

// BenchmarkCapturePaths measures one run of capture_ingress on each kind of
// segment the agent sees, with the agent's default settings (16 KiB
// chunks, 16 MiB ring, 64 KiB batched wakeups, budgets on). It is a
// benchmark, not a timed test: compare ns/run before and after a change.
//
//	flock /tmp/apiwarden-root.lock go test -run XXX -bench CapturePaths -benchtime 200000x ./datapath/capture/
func BenchmarkCapturePaths(b *testing.B) {
	get := "GET /api/v1/users/12345/orders?limit=20 HTTP/1.1\r\nHost: shop.example\r\n" +
		"User-Agent: bench\r\nAccept: application/json\r\n\r\n"
	post := "POST /api/v1/orders HTTP/1.1\r\nHost: shop.example\r\nContent-Type: application/json\r\n" +
		"Content-Length: 1024\r\n\r\n" + strings.Repeat("x", 1024)
	resp := "HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: application/json\r\nContent-Length: 512\r\n\r\n" +
		strings.Repeat("y", 512)
	pshAck := apicap.FlagPSH | apicap.FlagACK
	defaults := Config{ChunkMax: 16384, WakeupBytes: 64 << 10, PollInterval: 2 * time.Millisecond,
		Budgets: true, RequestBudget: 80 << 10, ResponseBudget: 32 << 10}
	seg := func(s tcpSeg) []byte { return s.bytes() }
	cases := []struct {
		name  string
		cfg   Config
		pkt   []byte
		setup func(*Sensor)
	}{
		{"get", defaults, seg(tcpSeg{src: cli4, dst: srv4, seq: 1, flags: pshAck, payload: []byte(get)}), nil},
		{"post1k", defaults, seg(tcpSeg{src: cli4, dst: srv4, seq: 1, flags: pshAck, payload: []byte(post)}), nil},
		{"pure_ack", defaults, seg(tcpSeg{src: cli4, dst: srv4, seq: 1, flags: apicap.FlagACK}), nil},
		{"response", defaults, seg(tcpSeg{src: srv4, dst: cli4, seq: 1, flags: pshAck, payload: []byte(resp)}), nil},
		{"other_port", func() Config { c := defaults; c.Ports = []uint16{srv4.Port() + 1}; return c }(),
			seg(tcpSeg{src: cli4, dst: srv4, seq: 1, flags: pshAck, payload: []byte(get)}), nil},
		// Held port below the wakeup threshold (the agent drains the ring
		// between requests): every held request segment forces a wakeup.
		{"held_port", func() Config { c := defaults; c.WakeupBytes = pathRingBytes / 2; return c }(), seg(tcpSeg{src: cli4, dst: srv4, seq: 1, flags: pshAck, payload: []byte(get)}),
			func(s *Sensor) {
				if err := s.SetWakePorts([]uint16{srv4.Port()}); err != nil {
					b.Fatal(err)
				}
			}},
		// A body segment past a tiny request budget: the message starts
		// in another segment (run once in setup), this one is only counted.
		{"skipped", func() Config { c := defaults; c.RequestBudget = 100; return c }(),
			seg(tcpSeg{src: cli4, dst: srv4, seq: 2001, flags: apicap.FlagACK, payload: []byte(strings.Repeat("z", 1024))}),
			func(s *Sensor) {
				start := seg(tcpSeg{src: cli4, dst: srv4, seq: 1, flags: pshAck, payload: []byte(post)})
				if _, _, err := s.objs.CaptureIngress.Test(start); err != nil {
					b.Fatal(err)
				}
			}},
		// The agent's wakeup threshold already crossed (the reader has not
		// caught up): every record pays the wakeup decision.
		{"get_above_wakeup", func() Config { c := defaults; c.WakeupBytes = 1; return c }(),
			seg(tcpSeg{src: cli4, dst: srv4, seq: 1, flags: pshAck, payload: []byte(get)}), nil},
		{"get_no_batching", func() Config { c := defaults; c.WakeupBytes = 0; return c }(),
			seg(tcpSeg{src: cli4, dst: srv4, seq: 1, flags: pshAck, payload: []byte(get)}), nil},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) { benchPath(b, c.cfg, c.pkt, c.setup) })
	}
}

package capture

import (
	"context"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"

	apicap "github.com/apiwarden/apiwarden/apimodel/capture"
)

// drainInBackground reads and decodes chunks while a benchmark runs, as the
// agent would, so the ring buffer does not fill and benchmark the lost path.
func drainInBackground(b *testing.B, s *Sensor) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx, func(apicap.Chunk) {})
	}()
	b.Cleanup(func() { cancel(); <-done })
}

// benchRingBytes holds every record of a -benchtime 100000x run of the
// largest benchmark below, so the numbers are the capture path, not the
// cheaper ring-full path; lost/run shows when that no longer holds.
const benchRingBytes = 512 << 20

// benchProg measures the program alone: no reader competes for the CPU,
// the ring buffer is big enough to keep everything.
func benchProg(b *testing.B, cfg Config, pkt []byte) {
	cfg.RingBufferBytes = benchRingBytes
	s := newTestSensor(b, cfg)
	ret, perRun, err := s.objs.CaptureIngress.Benchmark(pkt, b.N, b.ResetTimer)
	if err != nil {
		b.Fatal(err)
	}
	if ret != tcxNext {
		b.Fatalf("return code %#x", ret)
	}
	b.ReportMetric(float64(perRun.Nanoseconds()), "ns/run")
	c, _ := s.Counters()
	b.ReportMetric(float64(c["chunks_lost"])/float64(b.N), "lost/run")
}

// BenchmarkHTTPRequest200 runs the ingress program on a typical 200-byte
// HTTP request segment.
func BenchmarkHTTPRequest200(b *testing.B) {
	req := "GET /api/v1/users/12345/orders?limit=20 HTTP/1.1\r\nHost: shop.example\r\n" +
		"User-Agent: bench\r\nAccept: application/json\r\nAuthorization: Bearer abc\r\n\r\n"
	req += strings.Repeat("x", 200-len(req))
	pkt := tcpSeg{src: cli4, dst: srv4, seq: 1, flags: apicap.FlagPSH | apicap.FlagACK, payload: []byte(req)}.bytes()
	benchProg(b, Config{}, pkt)
}

// BenchmarkNonTCP is the cost every UDP/ARP packet pays.
func BenchmarkNonTCP(b *testing.B) { benchProg(b, Config{}, udpPacket()) }

// BenchmarkPortFiltered is the cost of a TCP segment the filter skips.
func BenchmarkPortFiltered(b *testing.B) {
	pkt := tcpSeg{src: cli4, dst: srv4, flags: apicap.FlagACK, payload: make([]byte, 200)}.bytes()
	benchProg(b, Config{Ports: []uint16{8080}}, pkt)
}

// BenchmarkLargestTestRunPacket copies the largest payload BPF_PROG_TEST_RUN
// accepts for tc (one page minus skb overhead): one 3 KiB chunk, and the same
// bytes split into MaxChunksPerSKB chunks to show the per-event cost.
// BPF_PROG_TEST_RUN cannot build a 64 KiB GSO skb; see BenchmarkLoopback64K.
func BenchmarkLargestTestRunPacket(b *testing.B) {
	pkt := tcpSeg{src: cli4, dst: srv4, flags: apicap.FlagACK, payload: make([]byte, 3072)}.bytes()
	b.Run("1chunk", func(b *testing.B) { benchProg(b, Config{}, pkt) })
	b.Run("8chunks", func(b *testing.B) { benchProg(b, Config{ChunkMax: 3072 / MaxChunksPerSKB}, pkt) })
}

// BenchmarkLoopback64K measures the real cost of capturing 64 KiB GSO
// super-packets: one 64 KiB write per op over a loopback TCP connection,
// with the sensor attached to lo (ingress+egress, both directions seen)
// and a reader draining chunks, against the same flow without the sensor.
func BenchmarkLoopback64K(b *testing.B) {
	requireRoot(b)
	run := func(b *testing.B, attach bool) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer ln.Close()
		if attach {
			port := netip.MustParseAddrPort(ln.Addr().String()).Port()
			s := newTestSensor(b, Config{Ports: []uint16{port}, RingBufferBytes: 64 << 20})
			if err := s.Attach(1); err != nil {
				b.Fatal(err)
			}
			drainInBackground(b, s)
			defer func() {
				c, _ := s.Counters()
				b.ReportMetric(float64(c["chunks_lost"])/float64(b.N), "lost/op")
				b.ReportMetric(float64(c["chunks_truncated"])/float64(b.N), "truncated/op")
			}()
		}
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.Copy(io.Discard, c)
			c.Close()
		}()
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		buf := make([]byte, 64<<10)
		b.SetBytes(int64(len(buf)))
		b.ResetTimer()
		for range b.N {
			if _, err := conn.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("detached", func(b *testing.B) { run(b, false) })
	b.Run("attached", func(b *testing.B) { run(b, true) })
}

// BenchmarkHTTPRequest200Budgets is BenchmarkHTTPRequest200 with copy
// budgets on: the price of the per-message state (one LRU map update per
// message start).
func BenchmarkHTTPRequest200Budgets(b *testing.B) {
	req := "GET /api/v1/users/12345/orders?limit=20 HTTP/1.1\r\nHost: shop.example\r\n" +
		"User-Agent: bench\r\nAccept: application/json\r\nAuthorization: Bearer abc\r\n\r\n"
	req += strings.Repeat("x", 200-len(req))
	pkt := tcpSeg{src: cli4, dst: srv4, seq: 1, flags: apicap.FlagPSH | apicap.FlagACK, payload: []byte(req)}.bytes()
	benchProg(b, Config{Budgets: true, RequestBudget: 80 << 10, ResponseBudget: 32 << 10}, pkt)
}

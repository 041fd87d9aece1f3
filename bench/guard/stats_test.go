package main

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

const procStat = `cpu  2255 34 2290 22625563 6290 127 456 0 0 0
cpu0 1132 34 1441 11311718 3675 127 438 0 0 0
cpu1 1123 0 849 11313845 2615 0 18 7 0 0
intr 114930548 113199788 3 0 5 263 0 4 [... lots more numbers ...]
ctxt 1990473
btime 1062191376
processes 2915
procs_running 1
procs_blocked 0
softirq 183433 0 21755 12 39 1137 231 21459 2263
`

func TestParseProcStatReadsEveryCPULine(t *testing.T) {
	got, err := parseProcStat(procStat)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d cpus, want 2 (aggregate line skipped)", len(got))
	}
	want := cpuTimes{User: 1123, Nice: 0, System: 849, Idle: 11313845, IOWait: 2615, IRQ: 0, SoftIRQ: 18, Steal: 7}
	if got[1] != want {
		t.Errorf("cpu1 = %+v, want %+v", got[1], want)
	}
	if b := got[1].busy(); b != 1123+849+18+7 {
		t.Errorf("busy = %d", b)
	}
	d := got[0].sub(got[1])
	if d.SoftIRQ != 438-18 {
		t.Errorf("sub softirq = %d", d.SoftIRQ)
	}
}

func TestParseProcStatRejectsGarbage(t *testing.T) {
	for _, in := range []string{"", "cpu0 1 2 3\n", "cpuX 1 2 3 4 5 6 7 8\n", "cpu0 1 2 3 4 5 6 7 x\n"} {
		if _, err := parseProcStat(in); err == nil {
			t.Errorf("parseProcStat(%q) accepted", in)
		}
	}
}

func TestParseSoftnetDropsSumsHexColumn(t *testing.T) {
	in := "0004d8a1 00000010 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000\n" +
		"00000f00 0000000a 00000001 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000001\n"
	got, err := parseSoftnetDrops(in)
	if err != nil || got != 0x10+0x0a {
		t.Fatalf("got %d, %v; want 26", got, err)
	}
	if _, err := parseSoftnetDrops("zz 1q\n"); err == nil {
		t.Error("bad hex accepted")
	}
}

const wrkOut = `Running 4s test @ http://10.235.1.2:8080/
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   240.53us  211.02us   9.05ms   97.81%
    Req/Sec    33.21k     1.60k   35.48k    80.00%
  132242 requests in 4.00s, 17.53MB read
  Socket errors: connect 1, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 4
Requests/sec:  33054.23
Transfer/sec:      4.38MB
`

func TestParseWrkSummary(t *testing.T) {
	got, err := parseWrk(wrkOut)
	if err != nil {
		t.Fatal(err)
	}
	want := wrkResult{Requests: 132242, RPS: 33054.23, Errors: 1 + 2 + 3 + 4}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if _, err := parseWrk("unable to connect to 10.0.0.1:80 Connection refused\n"); err == nil {
		t.Error("output without Requests/sec accepted")
	}
}

func TestStatCPUCountsFieldsAfterComm(t *testing.T) {
	// comm with spaces and a ')' must not shift the fields.
	stat := "1234 (tr af) gen) S 1 1234 1234 0 -1 4194560 1 0 0 0 5 6 0 0 20 0 1 0 100 1000 100 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0"
	got, err := statCPU(stat)
	if err != nil || got != 1 {
		t.Fatalf("got %d, %v; want cpu 1", got, err)
	}
	if _, err := statCPU("1234 (x) S 1"); err == nil {
		t.Error("short stat accepted")
	}
}

func TestTrafgenConfIsMinimumFrame(t *testing.T) {
	c := trafgenConf("02:00:00:00:00:01", "02:00:00:00:00:02", netip.MustParseAddr("10.233.1.2"), netip.MustParseAddr("10.235.1.2"))
	for _, want := range []string{"da=02:00:00:00:00:01", "saddr=10.233.1.2", "daddr=10.235.1.2", "proto=17", "fill(0x00, 18)"} {
		if !strings.Contains(c, want) {
			t.Errorf("config lacks %q:\n%s", want, c)
		}
	}
}

func TestMedian(t *testing.T) {
	in := []float64{3, 1, 2}
	if m := median(in); m != 2 {
		t.Errorf("median odd = %v", m)
	}
	if in[0] != 3 {
		t.Error("median sorted its input")
	}
	if m := median([]float64{4, 1, 3, 2}); m != 2.5 {
		t.Errorf("median even = %v", m)
	}
	if m := median(nil); m != 0 {
		t.Errorf("median empty = %v", m)
	}
}

func TestDiffSpreadsCPUTicksOverPackets(t *testing.T) {
	t0 := time.Unix(100, 0)
	a := snapshot{at: t0, rx: 1000, srvTx: 10, cpu: map[int]cpuTimes{0: {SoftIRQ: 10, System: 5}, 1: {SoftIRQ: 1}}}
	b := snapshot{at: t0.Add(2 * time.Second), rx: 1000 + 400_000, srvTx: 10 + 4_000,
		cpu: map[int]cpuTimes{0: {SoftIRQ: 30, System: 15}, 1: {SoftIRQ: 1, User: 2}}}
	p := diff(a, b, 0)
	if p.pps() != 200_000 {
		t.Errorf("pps = %v", p.pps())
	}
	// 20 softirq ticks of 10 ms over 400k packets = 500 ns each.
	if got := p.nsPer(p.softirq); got != 500 {
		t.Errorf("softirq ns/pkt = %v", got)
	}
	if p.floodCPUBsy != 30 || p.busy != 32 {
		t.Errorf("busy = %d (flood cpu %d)", p.busy, p.floodCPUBsy)
	}
	if p.leakFrac() != 0.01 {
		t.Errorf("leak = %v", p.leakFrac())
	}
	if (phase{}).nsPer(5) != 0 || (phase{}).leakFrac() != 0 {
		t.Error("no packets must give 0, not NaN")
	}
}

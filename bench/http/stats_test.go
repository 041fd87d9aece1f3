package main

import (
	"math"
	"strings"
	"testing"
)

const metricsPage = `# HELP apiwarden_hold_held_total apiwarden hold stage counter held.
# TYPE apiwarden_hold_held_total counter
apiwarden_hold_held_total 120
apiwarden_hold_timed_out_total 3
apiwarden_hold_stage_seconds_bucket{stage="wait",le="1e-06"} 0
apiwarden_hold_stage_seconds_bucket{stage="wait",le="2e-06"} 10
apiwarden_hold_stage_seconds_bucket{stage="wait",le="4e-06"} 30
apiwarden_hold_stage_seconds_bucket{stage="wait",le="+Inf"} 40
apiwarden_hold_stage_seconds_sum{stage="wait"} 0.0002
apiwarden_hold_stage_seconds_count{stage="wait"} 40
apiwarden_hold_stage_seconds_bucket{stage="detect",le="1e-06"} 5
apiwarden_hold_stage_seconds_bucket{stage="detect",le="+Inf"} 5
odd{path="a\"b,c",x="y"} 7 1700000000000
garbage line
`

func TestParseProm(t *testing.T) {
	p := parseProm(metricsPage)
	if v := p.value("apiwarden_hold_held_total", nil); v != 120 {
		t.Errorf("held %v", v)
	}
	if v := p.value("apiwarden_hold_blocked_total", nil); v != 0 {
		t.Errorf("absent counter %v", v)
	}
	if v := p.value("odd", map[string]string{"path": `a"b,c`, "x": "y"}); v != 7 {
		t.Errorf("escaped label: %v", v)
	}
	h := p.histogram("apiwarden_hold_stage_seconds", map[string]string{"stage": "wait"})
	want := []bucket{{1e-6, 0}, {2e-6, 10}, {4e-6, 30}, {math.Inf(1), 40}}
	if len(h) != len(want) {
		t.Fatalf("buckets %v", h)
	}
	for i := range want {
		if h[i] != want[i] {
			t.Errorf("bucket %d: %v, want %v", i, h[i], want[i])
		}
	}
}

func TestDiffBuckets(t *testing.T) {
	before := []bucket{{1, 2}, {2, 5}, {math.Inf(1), 5}}
	after := []bucket{{1, 3}, {2, 9}, {4, 1}, {math.Inf(1), 12}}
	got := diffBuckets(before, after)
	want := []bucket{{1, 1}, {2, 4}, {4, 1}, {math.Inf(1), 7}}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("bucket %d: %v, want %v", i, got[i], want[i])
		}
	}
}

func TestBucketQuantile(t *testing.T) {
	bs := []bucket{{1, 0}, {2, 10}, {4, 30}, {math.Inf(1), 40}}
	for _, c := range []struct {
		q, want float64
	}{
		{0.25, 2},    // rank 10: top of (1,2]
		{0.125, 1.5}, // rank 5: half way through (1,2]
		{0.5, 3},     // rank 20: half way through (2,4]
		{0.9, 4},     // rank 36: in +Inf, the last finite bound
		{0, 1},       // rank 0: lower bound of the first non-empty bucket
	} {
		if got := bucketQuantile(c.q, bs); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("q %v: %v, want %v", c.q, got, c.want)
		}
	}
	if !math.IsNaN(bucketQuantile(0.5, []bucket{{1, 0}, {math.Inf(1), 0}})) {
		t.Error("empty histogram should give NaN")
	}
	if !math.IsNaN(bucketQuantile(0.5, nil)) || !math.IsNaN(bucketQuantile(1.5, bs)) {
		t.Error("no buckets / bad q should give NaN")
	}
}

func TestFormatting(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{fmtUs(3.25), "3.2"}, {fmtUs(12.6), "13"}, {fmtUs(math.NaN()), "-"},
		{fmtSigned(12.4), "+12"}, {fmtSigned(-3.5), "-3.5"}, {fmtSigned(0), "+0.0"}, {fmtSigned(math.NaN()), "-"},
		{fmtRatio(ratio(3, 2)), "1.50"}, {fmtRatio(ratio(3, 0)), "-"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	if added(130, 100) != 30 {
		t.Error("added")
	}
}

func TestMarkdownTable(t *testing.T) {
	got := markdownTable([]string{"mode", "p50 µs"}, [][]string{{"(a) none", "95"}, {"protect", "1234"}, {"short"}})
	want := "" +
		"| mode     | p50 µs |\n" +
		"| -------- | -----: |\n" +
		"| (a) none |     95 |\n" +
		"| protect  |   1234 |\n" +
		"| short    |        |\n"
	if got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
	for _, l := range strings.Split(strings.TrimSpace(got), "\n") {
		if len([]rune(l)) != len([]rune("| mode     | p50 µs |")) {
			t.Errorf("ragged line %q", l)
		}
	}
}

func TestBaselineIsMeanOfNoneRuns(t *testing.T) {
	r1, r2, p := &modeRun{name: "none"}, &modeRun{name: "none"}, &modeRun{name: "protect"}
	r1.phase[phLatKA] = load{RPS: 100, P50Us: 100, P90Us: 150, P99Us: 300, SvcP50Us: 80, SvcP99Us: 200}
	r2.phase[phLatKA] = load{RPS: 120, P50Us: 110, P90Us: 170, P99Us: 340, SvcP50Us: 90, SvcP99Us: 220}
	p.phase[phLatKA] = load{RPS: 1, P50Us: 1000, P99Us: 9000, SvcP50Us: 120, SvcP99Us: 200}
	bl := baselineOf([]*modeRun{r1, p, r2})
	if bl.runs != 2 || bl.p50[phLatKA] != 105 || bl.p99[phLatKA] != 320 || bl.rps[phLatKA] != 110 {
		t.Fatalf("%+v", bl)
	}
	if bl.p50Spread[phLatKA] != 10 || bl.p99Spread[phLatKA] != 40 || math.Abs(bl.rpsSpread[phLatKA]-20.0/110) > 1e-9 {
		t.Fatalf("spread %+v", bl)
	}
	row := latRow("x", p.phase[phLatKA], bl, phLatKA)
	if row[4] != "+895" || row[7] != "28.12" || row[9] != "+35 / -10" {
		t.Fatalf("row %v", row)
	}
	if got := runLabel([]*modeRun{r1, p, r2}, 2); !strings.Contains(got, "again") {
		t.Errorf("label %q", got)
	}
}

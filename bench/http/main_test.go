package main

import "testing"

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestScheduleIsABBA(t *testing.T) {
	b := &bench{cfg: config{rounds: 2}}
	if got := order(windows(b.schedule())); got != "ABBAABBA" {
		t.Fatalf("schedule %s", got)
	}
	b.cfg.noAgent = true
	if got := order(windows(b.schedule())); got != "AAAA" {
		t.Fatalf("schedule without agent %s", got)
	}
}

func windows(s []bool) []window {
	var ws []window
	for _, a := range s {
		ws = append(ws, window{attached: a})
	}
	return ws
}

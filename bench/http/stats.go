package main

import (
	"bufio"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// promSample is one line of the Prometheus text exposition format.
type promSample struct {
	name   string
	labels map[string]string
	value  float64
}

// promScrape is a parsed /metrics page.
type promScrape []promSample

// parseProm reads the text exposition format (comments skipped, no
// timestamps expected; a trailing timestamp is ignored). Lines it cannot
// read are skipped: the bench only looks up a few known series.
func parseProm(text string) promScrape {
	var out promScrape
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		s := promSample{labels: map[string]string{}}
		rest := line
		if i := strings.IndexAny(line, "{ "); i > 0 && line[i] == '{' {
			s.name = line[:i]
			j := strings.LastIndexByte(line, '}')
			if j < i {
				continue
			}
			if !parseLabels(line[i+1:j], s.labels) {
				continue
			}
			rest = strings.TrimSpace(line[j+1:])
		} else if i > 0 {
			s.name, rest = line[:i], strings.TrimSpace(line[i+1:])
		} else {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		s.value = v
		out = append(out, s)
	}
	return out
}

// parseLabels reads `a="x",b="y"` (with \" and \\ escapes) into m.
func parseLabels(s string, m map[string]string) bool {
	for len(s) > 0 {
		s = strings.TrimLeft(s, " ,")
		if s == "" {
			break
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 || len(s) < eq+2 || s[eq+1] != '"' {
			return false
		}
		key := strings.TrimSpace(s[:eq])
		var val strings.Builder
		i := eq + 2
		closed := false
		for ; i < len(s); i++ {
			c := s[i]
			if c == '\\' && i+1 < len(s) {
				i++
				switch s[i] {
				case 'n':
					val.WriteByte('\n')
				default:
					val.WriteByte(s[i])
				}
				continue
			}
			if c == '"' {
				closed = true
				break
			}
			val.WriteByte(c)
		}
		if !closed {
			return false
		}
		m[key] = val.String()
		s = s[i+1:]
	}
	return true
}

// value returns the sample name{match...}, summed over series that match
// (0 when absent).
func (p promScrape) value(name string, match map[string]string) float64 {
	var sum float64
	for _, s := range p {
		if s.name == name && labelsMatch(s.labels, match) {
			sum += s.value
		}
	}
	return sum
}

func labelsMatch(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// bucket is one cumulative histogram bucket: count of observations <= le.
type bucket struct {
	le    float64
	count float64
}

// histogram returns the cumulative buckets of histogram name (the
// _bucket series) matching labels, sorted by le.
func (p promScrape) histogram(name string, match map[string]string) []bucket {
	byLE := map[float64]float64{}
	for _, s := range p {
		if s.name != name+"_bucket" || !labelsMatch(s.labels, match) {
			continue
		}
		le, err := strconv.ParseFloat(s.labels["le"], 64)
		if err != nil {
			continue
		}
		byLE[le] += s.value
	}
	out := make([]bucket, 0, len(byLE))
	for le, c := range byLE {
		out = append(out, bucket{le, c})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].le < out[j].le })
	return out
}

// diffBuckets returns after - before bucket by bucket (the observations
// made between two scrapes); buckets missing before count from zero.
func diffBuckets(before, after []bucket) []bucket {
	prev := map[float64]float64{}
	for _, b := range before {
		prev[b.le] = b.count
	}
	out := make([]bucket, len(after))
	for i, b := range after {
		out[i] = bucket{b.le, math.Max(0, b.count-prev[b.le])}
	}
	return out
}

// bucketQuantile estimates quantile q (0..1) from cumulative buckets the
// way PromQL's histogram_quantile does: linear interpolation inside the
// bucket that holds the rank, the lower bound of the first bucket taken as
// 0, and the upper bound of the last finite bucket returned when the rank
// falls into +Inf. NaN without observations.
func bucketQuantile(q float64, bs []bucket) float64 {
	if len(bs) == 0 || q < 0 || q > 1 {
		return math.NaN()
	}
	total := bs[len(bs)-1].count
	if total == 0 {
		return math.NaN()
	}
	rank := q * total
	lowerLE, lowerCount := 0.0, 0.0
	for i, b := range bs {
		if b.count >= rank && b.count > lowerCount {
			if math.IsInf(b.le, 1) {
				if i == 0 {
					return math.NaN()
				}
				return bs[i-1].le
			}
			return lowerLE + (b.le-lowerLE)*(rank-lowerCount)/(b.count-lowerCount)
		}
		lowerLE, lowerCount = b.le, b.count
	}
	return bs[len(bs)-1].le
}

// added is the latency a mode adds over the baseline (may be negative:
// inside the noise).
func added(mode, base float64) float64 { return mode - base }

// ratio is mode / base, NaN without a baseline.
func ratio(mode, base float64) float64 {
	if base == 0 {
		return math.NaN()
	}
	return mode / base
}

// fmtRatio prints a ratio with two decimals, "-" when undefined.
func fmtRatio(r float64) string {
	if math.IsNaN(r) || math.IsInf(r, 0) {
		return "-"
	}
	return fmt.Sprintf("%.2f", r)
}

// fmtUs prints a duration in microseconds: whole µs from 10 µs on, one
// decimal below, "-" when undefined.
func fmtUs(us float64) string {
	switch {
	case math.IsNaN(us) || math.IsInf(us, 0):
		return "-"
	case math.Abs(us) >= 10:
		return fmt.Sprintf("%.0f", us)
	default:
		return fmt.Sprintf("%.1f", us)
	}
}

// fmtSigned is fmtUs with an explicit sign ("+12", "-3.5").
func fmtSigned(us float64) string {
	s := fmtUs(us)
	if s != "-" && us >= 0 {
		return "+" + s
	}
	return s
}

// markdownTable renders a GitHub-flavoured markdown table, columns padded
// to equal width; the first column is left-aligned, the others right.
func markdownTable(header []string, rows [][]string) string {
	w := make([]int, len(header))
	for i, h := range header {
		w[i] = len([]rune(h))
	}
	for _, r := range rows {
		for i := 0; i < len(r) && i < len(w); i++ {
			w[i] = max(w[i], len([]rune(r[i])))
		}
	}
	var b strings.Builder
	line := func(cells []string) {
		b.WriteString("|")
		for i := range w {
			c := ""
			if i < len(cells) {
				c = cells[i]
			}
			pad := strings.Repeat(" ", w[i]-len([]rune(c)))
			if i == 0 {
				b.WriteString(" " + c + pad + " |")
			} else {
				b.WriteString(" " + pad + c + " |")
			}
		}
		b.WriteString("\n")
	}
	line(header)
	b.WriteString("|")
	for i := range w {
		if i == 0 {
			b.WriteString(" " + strings.Repeat("-", w[i]) + " |")
		} else {
			b.WriteString(" " + strings.Repeat("-", w[i]-1) + ": |")
		}
	}
	b.WriteString("\n")
	for _, r := range rows {
		line(r)
	}
	return b.String()
}

package stream

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

type rec struct{ b strings.Builder }

func (r *rec) Data(b []byte) { r.b.Write(b) }
func (r *rec) Gap(n uint32)  { fmt.Fprintf(&r.b, "[gap %d]", n) }
func (r *rec) End()          { r.b.WriteString("[end]") }

type seg struct {
	seq   uint32
	data  string
	plen  uint32 // 0: len(data)
	flags uint8
}

func run(cfg Config, segs []seg) (string, *Stats) {
	var st Stats
	d := NewDir(cfg, &st)
	var r rec
	for _, s := range segs {
		pl := s.plen
		if pl == 0 {
			pl = uint32(len(s.data))
		}
		d.Add(s.seq, []byte(s.data), pl, s.flags, &r)
	}
	return r.b.String(), &st
}

func TestReassembly(t *testing.T) {
	const isn = 1000
	cases := []struct {
		name string
		segs []seg
		want string
	}{
		{"in order with syn and fin", []seg{{isn, "", 0, flagSYN}, {isn + 1, "hello ", 0, 0}, {isn + 7, "world", 0, flagFIN}}, "hello world[end]"},
		{"out of order", []seg{{isn, "", 0, flagSYN}, {isn + 7, "world", 0, 0}, {isn + 1, "hello ", 0, 0}}, "hello world"},
		{"duplicates", []seg{{isn, "", 0, flagSYN}, {isn + 1, "abc", 0, 0}, {isn + 1, "abc", 0, 0}, {isn + 4, "def", 0, 0}, {isn + 4, "def", 0, 0}}, "abcdef"},
		{"overlapping retransmit", []seg{{isn, "", 0, flagSYN}, {isn + 1, "abcd", 0, 0}, {isn + 3, "cdefg", 0, 0}, {isn + 1, "abcdefghij", 0, 0}}, "abcdefghij"},
		{"held duplicate", []seg{{isn + 5, "fgh", 0, 0}}, "fgh"},
		{"mid-stream start", []seg{{77, "xyz", 0, 0}, {80, "!", 0, 0}}, "xyz!"},
		{"wrap-around", []seg{{0xfffffffd, "", 0, flagSYN}, {0xfffffffe, "ab", 0, 0}, {2, "ef", 0, 0}, {0, "cd", 0, 0}, {4, "", 0, flagFIN}}, "abcdef[end]"},
		{"truncated chunk", []seg{{isn, "", 0, flagSYN}, {isn + 1, "abc", 10, 0}, {isn + 11, "next", 0, 0}}, "abc[gap 7]next"},
		{"fin out of order", []seg{{isn, "", 0, flagSYN}, {isn + 4, "def", 0, flagFIN}, {isn + 1, "abc", 0, 0}}, "abcdef[end]"},
		{"rst flushes with gap", []seg{{isn, "", 0, flagSYN}, {isn + 1, "ab", 0, 0}, {isn + 5, "ef", 0, 0}, {isn + 7, "", 0, flagRST}}, "ab[gap 2]ef[end]"},
		{"after end ignored", []seg{{isn, "", 0, flagSYN}, {isn + 1, "a", 0, flagFIN}, {isn + 2, "zzz", 0, 0}}, "a[end]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "held duplicate" {
				tc.segs = []seg{{isn, "", 0, flagSYN}, {isn + 1, "abcde", 0, 0}, {isn + 9, "ij", 0, 0}, {isn + 9, "ij", 0, 0}, {isn + 6, "fgh", 0, 0}}
				tc.want = "abcdefghij"
			}
			got, _ := run(Config{}, tc.segs)
			if got != tc.want {
				t.Fatalf("got %q want %q", got, tc.want)
			}
		})
	}
}

// TestDoubleCapture: every segment is seen twice (two watched interfaces);
// the second copy must be a no-op, whatever the interleaving.
func TestDoubleCapture(t *testing.T) {
	msg := strings.Repeat("0123456789abcdef", 200)
	var segs []seg
	segs = append(segs, seg{5, "", 0, flagSYN})
	for i := 0; i < len(msg); i += 100 {
		segs = append(segs, seg{6 + uint32(i), msg[i:min(i+100, len(msg))], 0, 0})
	}
	segs = append(segs, seg{6 + uint32(len(msg)), "", 0, flagFIN})
	r := rand.New(rand.NewPCG(3, 4))
	for round := range 20 {
		var doubled []seg
		for _, s := range segs {
			doubled = append(doubled, s, s)
		}
		if round > 0 {
			// Reorder within a window to mix retransmits and reordering.
			for i := range doubled {
				j := min(len(doubled)-1, i+r.IntN(6))
				if doubled[i].flags == 0 && doubled[j].flags == 0 {
					doubled[i], doubled[j] = doubled[j], doubled[i]
				}
			}
		}
		got, st := run(Config{}, doubled)
		if got != msg+"[end]" {
			t.Fatalf("round %d: got %d bytes, gaps %d", round, len(got), st.Gaps)
		}
		if st.Duplicates == 0 || st.Gaps != 0 {
			t.Fatalf("round %d: stats %+v", round, st)
		}
	}
}

func TestBufferLimit(t *testing.T) {
	// Segment 1 lost; later segments exceed the buffer, so the hole is
	// skipped and reported.
	segs := []seg{{0, "", 0, flagSYN}, {1, "aaaa", 0, 0}, {9, "cccc", 0, 0}, {13, "dddd", 0, 0}, {17, "eeee", 0, 0}}
	got, st := run(Config{MaxBufferedBytes: 8}, segs)
	if got != "aaaa[gap 4]ccccddddeeee" || st.BufferLimit != 1 || st.Gaps != 1 || st.GapBytes != 4 {
		t.Fatalf("got %q stats %+v", got, st)
	}
	// At the bound exactly: held, no gap.
	got, st = run(Config{MaxBufferedBytes: 8}, segs[:4])
	if got != "aaaa" || st.BufferLimit != 0 {
		t.Fatalf("got %q stats %+v", got, st)
	}
	// Segment count bound.
	got, st = run(Config{MaxSegments: 2}, segs)
	if got != "aaaa[gap 4]ccccddddeeee" || st.BufferLimit != 1 {
		t.Fatalf("got %q stats %+v", got, st)
	}
}

func TestFlushReportsHoles(t *testing.T) {
	var st Stats
	d := NewDir(Config{}, &st)
	var r rec
	d.Add(0, nil, 0, flagSYN, &r)
	d.Add(1, []byte("ab"), 2, 0, &r)
	d.Add(6, []byte("fg"), 2, 0, &r)
	d.Add(10, []byte("kl"), 2, flagFIN, &r)
	d.Flush(&r, false)
	if got := r.b.String(); got != "ab[gap 3]fg[gap 2]kl[end]" {
		t.Fatalf("got %q", got)
	}
}

func BenchmarkReassembly(b *testing.B) {
	payload := make([]byte, 1460)
	b.Run("in-order", func(b *testing.B) {
		var st Stats
		d := NewDir(Config{}, &st)
		var r discard
		seq := uint32(0)
		b.SetBytes(1460)
		b.ReportAllocs()
		for b.Loop() {
			d.Add(seq, payload, 1460, 0, &r)
			seq += 1460
		}
	})
	b.Run("swapped-pairs-and-duplicates", func(b *testing.B) {
		var st Stats
		d := NewDir(Config{}, &st)
		var r discard
		seq := uint32(0)
		b.SetBytes(2 * 1460)
		b.ReportAllocs()
		for b.Loop() {
			d.Add(seq+1460, payload, 1460, 0, &r)
			d.Add(seq, payload, 1460, 0, &r)
			d.Add(seq, payload, 1460, 0, &r)
			seq += 2 * 1460
		}
	})
}

type discard struct{}

func (discard) Data([]byte) {}
func (discard) Gap(uint32)  {}
func (discard) End()        {}

func TestSharedBudget(t *testing.T) {
	var st Stats
	b := &Budget{Max: 6}
	d1, d2 := NewDir(Config{Budget: b}, &st), NewDir(Config{Budget: b}, &st)
	var r1, r2 rec
	d1.Add(0, []byte("a"), 1, 0, &r1)
	d2.Add(0, []byte("a"), 1, 0, &r2)
	d1.Add(5, []byte("xxxx"), 4, 0, &r1) // held: 4 of 6
	d2.Add(5, []byte("yyyy"), 4, 0, &r2) // does not fit: hole skipped
	if r2.b.String() != "a[gap 4]yyyy" || st.BudgetLimit != 1 || b.Used() != 4 {
		t.Fatalf("r2 %q stats %+v used %d", r2.b.String(), st, b.Used())
	}
	d1.Add(1, []byte("bcde"), 4, 0, &r1)
	if r1.b.String() != "abcdexxxx" || b.Used() != 0 {
		t.Fatalf("r1 %q used %d", r1.b.String(), b.Used())
	}
	d1.Add(20, []byte("zz"), 2, 0, &r1)
	d1.Release()
	if b.Used() != 0 {
		t.Fatalf("used %d after release", b.Used())
	}
}

// checker verifies that every delivered byte is the original byte at its
// stream position: gaps may skip bytes, nothing may be invented.
type checker struct {
	t     *testing.T
	msg   string
	pos   int
	ended bool
}

func (c *checker) Data(b []byte) {
	if c.pos+len(b) > len(c.msg) || string(b) != c.msg[c.pos:c.pos+len(b)] {
		c.t.Fatalf("bytes at %d are not the original", c.pos)
	}
	c.pos += len(b)
}
func (c *checker) Gap(n uint32) { c.pos += int(n) }
func (c *checker) End()         { c.ended = true }

func TestNeverInventsBytes(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	msg := strings.Repeat("the quick brown fox jumps over the lazy dog ", 100)
	for round := range 300 {
		isn := r.Uint32() // wrap-around happens in some rounds
		var segs []seg
		segs = append(segs, seg{isn, "", 0, flagSYN})
		for i := 0; i < len(msg); {
			n := min(len(msg)-i, 1+r.IntN(200))
			plen := uint32(n)
			data := msg[i : i+n]
			if r.IntN(20) == 0 {
				data = data[:r.IntN(n)] // kernel truncation
			}
			s := seg{isn + 1 + uint32(i), data, plen, 0}
			if r.IntN(15) != 0 { // some segments are lost
				segs = append(segs, s)
			}
			if r.IntN(4) == 0 { // duplicates and overlapping retransmits
				k := r.IntN(n)
				segs = append(segs, seg{isn + 1 + uint32(i+k), msg[i+k : i+n], uint32(n - k), 0})
			}
			i += n
		}
		segs = append(segs, seg{isn + 1 + uint32(len(msg)), "", 0, flagFIN})
		for i := 1; i < len(segs)-1; i++ { // local reordering
			if j := i + r.IntN(4); j < len(segs)-1 {
				segs[i], segs[j] = segs[j], segs[i]
			}
		}
		var st Stats
		d := NewDir(Config{MaxBufferedBytes: 1 + r.IntN(2000)}, &st)
		c := &checker{t: t, msg: msg}
		for _, s := range segs {
			d.Add(s.seq, []byte(s.data), s.plen, s.flags, c)
		}
		d.Flush(c, true)
		if !c.ended || c.pos != len(msg) {
			t.Fatalf("round %d: ended %v at %d of %d", round, c.ended, c.pos, len(msg))
		}
	}
}

package verdict

import (
	"net/netip"
	"testing"
	"time"

	"github.com/apiwarden/apiwarden/apimodel/detect"
)

func TestDecideCutsOnlyCutGrade(t *testing.T) {
	p := DefaultPolicy
	high := detect.Finding{Severity: detect.SeverityHigh, Confidence: 85}
	lowConf := detect.Finding{Severity: detect.SeverityHigh, Confidence: 84}
	medium := detect.Finding{Severity: detect.SeverityMedium, Confidence: 99}
	cases := []struct {
		name    string
		fs      []detect.Finding
		protect bool
		want    Action
		grade   bool
	}{
		{"none", nil, true, Pass, false},
		{"cut grade at the bound, protect", []detect.Finding{high}, true, Cut, true},
		{"cut grade, monitor", []detect.Finding{high}, false, Monitor, true},
		{"confidence one below the bound", []detect.Finding{lowConf}, true, Pass, false},
		{"severe enough only later in the list", []detect.Finding{medium, high}, true, Cut, true},
		{"confident but medium severity", []detect.Finding{medium}, true, Pass, false},
	}
	for _, c := range cases {
		a, g := p.Decide(c.fs, c.protect)
		if a != c.want || g != c.grade {
			t.Errorf("%s: got %v,%v want %v,%v", c.name, a, g, c.want, c.grade)
		}
	}
}

// The fault of issue #7: a benign client with occasional low-confidence
// matches was auto-blocked. The agent notes only cut-grade findings, so such
// a client never reaches Note; this checks the counting itself is per
// identity and windowed.
func TestAutoBlockPerIdentityWithinWindow(t *testing.T) {
	b := NewAutoBlocker(AutoBlockConfig{Threshold: 3, Window: time.Minute, TTL: time.Minute})
	a := netip.MustParseAddr("10.0.0.1")
	other := netip.MustParseAddr("10.0.0.2")
	t0 := time.Unix(1000, 0)
	if b.Note(a, t0) || b.Note(other, t0) || b.Note(a, t0.Add(30*time.Second)) {
		t.Fatal("tripped below the threshold")
	}
	// The first finding ages out of the window: still two in it.
	if b.Note(a, t0.Add(65*time.Second)) {
		t.Fatal("tripped on a finding outside the window")
	}
	if !b.Note(a, t0.Add(66*time.Second)) {
		t.Fatal("threshold within the window did not trip")
	}
	// IPv4-mapped spelling is the same identity.
	m := netip.MustParseAddr("::ffff:10.0.0.2")
	b.Note(m, t0)
	if !b.Note(other, t0) {
		t.Fatal("mapped and plain IPv4 counted apart")
	}
	if NewAutoBlocker(AutoBlockConfig{}).Note(a, t0) {
		t.Fatal("threshold 0 must disable")
	}
}

func TestAutoBlockBoundedIdentities(t *testing.T) {
	b := NewAutoBlocker(AutoBlockConfig{Threshold: 1000, Window: time.Hour, TTL: time.Minute})
	t0 := time.Unix(1000, 0)
	for i := 0; i < MaxTracked+10; i++ {
		ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		b.Note(ip, t0.Add(time.Duration(i)*time.Millisecond))
	}
	n, ev := b.Tracked()
	if n > MaxTracked || ev == 0 {
		t.Fatalf("tracked %d evicted %d", n, ev)
	}
}

func TestInvalidRequestOnlyForHTTPRequestHeads(t *testing.T) {
	cases := []struct {
		head string
		ok   bool
	}{
		{"POST /cart HTTP/1.1\r\nContent-Length: 6\r\nContent-Length: 7\r\n\r\n", true},
		{"GET / HTTP/1.0\r\nTransfer-Encoding : chunked\r\n\r\n", true},
		{"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 junk\r\n\r\n", false},
		{"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", false},
		{"get / HTTP/1.1\r\n\r\n", false},
		{"GET\r\n\r\n", false},
	}
	for _, c := range cases {
		f, ok := InvalidRequest([]byte(c.head))
		if ok != c.ok {
			t.Errorf("%q: ok=%v", c.head, ok)
		}
		if ok {
			if _, cut := DefaultPolicy.CutGrade([]detect.Finding{f}); !cut {
				t.Errorf("%q: finding not cut-grade", c.head)
			}
		}
	}
}

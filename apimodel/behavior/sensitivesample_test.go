package behavior

import (
	"fmt"
	"slices"
	"testing"

	"github.com/apiwarden/apiwarden/apimodel/call"
)

// sampleCfg is a small sampling schedule: every call of the first 8,
// then one in 4, doubling after 2 quiet scans up to one in 16.
var sampleCfg = Config{LearningCalls: 8, SensitiveSampleAll: 8, SensitiveSampleEvery: 4, SensitiveStableSamples: 2,
	SensitiveSampleMaxEvery: 16}

func userCall(i int, body string) *call.Call {
	c := mkCall("10.9.0.1", "GET", fmt.Sprintf("/api/v1/users/%d", i%10), 200, t0) // few ids: no enumeration
	c.Response.Body = []byte(body)
	c.Response.BodySize = int64(len(body))
	return c
}

const emailBody = `{"id":1,"email":"a@example.com"}`

// scansOf runs calls through m and returns the call counts (calls before
// each) of the scanned ones, with the anomalies raised.
func scansOf(m *Model, from, to int, body func(i int) string) (scans []uint64, as []Anomaly) {
	m.onScan = func(n uint64) { scans = append(scans, n) }
	for i := from; i < to; i++ {
		as = append(as, m.Observe(userCall(i, body(i)), "shop", "/api/v1/users/{userId}")...)
	}
	m.onScan = nil
	return scans, as
}

// TestSensitiveScanBacksOff: every call while young, then the base
// interval, doubling after SensitiveStableSamples quiet scans and not
// past SensitiveSampleMaxEvery; every call still counts.
func TestSensitiveScanBacksOff(t *testing.T) {
	m := newModel(sampleCfg)
	scans, as := scansOf(m, 0, 120, func(int) string { return emailBody })
	want := []uint64{0, 1, 2, 3, 4, 5, 6, 7, // young
		8, 12, // one in 4, two quiet scans
		16, 24, // one in 8
		32, 48, 64, 80, 96, 112} // one in 16, the bound
	if !slices.Equal(scans, want) {
		t.Fatalf("scanned at calls %v, want %v", scans, want)
	}
	if len(as) != 0 {
		t.Fatalf("findings on a stable endpoint: %v", rules(as))
	}
	bl := m.Baselines()
	if len(bl) != 1 || bl[0].Calls != 120 || bl[0].Status[2] != 120 || !slices.Equal(bl[0].Sensitive, []string{"email"}) {
		t.Fatalf("baseline %+v", bl)
	}
}

// TestSensitiveScanStableBoundary: one quiet scan short of
// SensitiveStableSamples the interval has not doubled yet.
func TestSensitiveScanStableBoundary(t *testing.T) {
	cfg := sampleCfg
	cfg.SensitiveStableSamples = 3
	m := newModel(cfg)
	scans, _ := scansOf(m, 0, 25, func(int) string { return emailBody })
	want := []uint64{0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 24} // 8, 12, 16 quiet: one in 8 from 16 on
	if !slices.Equal(scans, want) {
		t.Fatalf("scanned at calls %v, want %v", scans, want)
	}
}

// TestSensitiveScanResetsOnNewKind: a scan that finds a kind the endpoint
// never returned raises the finding and brings back scanning every call
// for SensitiveSampleAll calls, then the base interval; a kind it already
// returned changes nothing.
func TestSensitiveScanResetsOnNewKind(t *testing.T) {
	m := newModel(sampleCfg)
	scansOf(m, 0, 64, func(int) string { return emailBody }) // backed off to one in 16
	// A card in call 70 (not scanned) is missed; in call 80 (scanned) it
	// is found.
	card := `{"id":1,"card":"4111 1111 1111 1111"}`
	scans, as := scansOf(m, 64, 81, func(i int) string {
		if i == 70 || i == 80 {
			return card
		}
		return emailBody
	})
	if !slices.Equal(scans, []uint64{64, 80}) {
		t.Fatalf("scanned at calls %v, want [64 80]", scans)
	}
	if r := rules(as); r[RuleSensitiveExposure] != 1 || len(as) != 1 {
		t.Fatalf("findings %v, want one sensitive exposure (call 80)", r)
	}
	scans, as = scansOf(m, 81, 110, func(i int) string {
		if i%3 == 0 {
			return card // known now: not new
		}
		return emailBody
	})
	want := []uint64{81, 82, 83, 84, 85, 86, 87, 88, // full again: 8 calls after 80
		92, 96, // one in 4
		104} // one in 8
	if !slices.Equal(scans, want) {
		t.Fatalf("after the new kind scanned at calls %v, want %v", scans, want)
	}
	if len(as) != 0 {
		t.Fatalf("a known kind raised %v", rules(as))
	}
	bl := m.Baselines()[0]
	slices.Sort(bl.Sensitive)
	if bl.Calls != 110 || !slices.Equal(bl.Sensitive, []string{"credit-card", "email"}) {
		t.Fatalf("baseline %+v", bl)
	}
}

// TestSensitiveScanBackoffOff: SensitiveSampleMaxEvery at or below
// SensitiveSampleEvery keeps the fixed interval.
func TestSensitiveScanBackoffOff(t *testing.T) {
	cfg := sampleCfg
	cfg.SensitiveSampleMaxEvery = 4
	m := newModel(cfg)
	scans, _ := scansOf(m, 0, 40, func(int) string { return emailBody })
	want := []uint64{0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 24, 28, 32, 36}
	if !slices.Equal(scans, want) {
		t.Fatalf("scanned at calls %v, want %v", scans, want)
	}
}

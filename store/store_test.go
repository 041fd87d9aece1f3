package store

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/apiwarden/apiwarden/apimodel/call"
	"github.com/apiwarden/apiwarden/apimodel/inventory"
)

func openTemp(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestLoadInventoryEmpty(t *testing.T) {
	s := openTemp(t, t.TempDir())
	defer s.Close()
	b, err := s.LoadInventory()
	if b != nil || err != nil {
		t.Errorf("LoadInventory = %q, %v; want nil, nil", b, err)
	}
}

func sampleInventory(t *testing.T) *inventory.Inventory {
	t.Helper()
	body, err := os.ReadFile("testdata/order.json")
	if err != nil {
		t.Fatal(err)
	}
	inv := inventory.New(inventory.Config{}, nil)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range 15 {
		inv.Observe(&call.Call{
			Server: netip.MustParseAddrPort("127.0.0.1:8080"),
			Request: &call.Request{Method: "POST", Path: fmt.Sprintf("/customers/name%d/orders", i), RawQuery: "dry=true",
				Headers: call.Headers{{Name: "Content-Type", Value: "application/json"}}, Body: body,
				Start: t0.Add(time.Duration(i) * time.Second)},
			Response:      &call.Response{StatusCode: 201},
			ServerProcess: &call.Process{PID: 9, Exe: "/srv/shop"},
		})
	}
	return inv
}

func TestInventorySurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	inv := sampleInventory(t)
	state, err := inv.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	s := openTemp(t, dir)
	if err := s.SaveInventory(state); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTemp(t, dir)
	defer s.Close()
	got, err := s.LoadInventory()
	if err != nil {
		t.Fatal(err)
	}
	restored := inventory.New(inventory.Config{}, nil)
	if err := restored.RestoreState(got); err != nil {
		t.Fatal(err)
	}
	a, b := inv.Snapshot(), restored.Snapshot()
	if len(a) != 1 || a[0].PathTemplate != "/customers/{customerId}/orders" {
		t.Fatalf("unexpected source snapshot %+v", a)
	}
	if !reflect.DeepEqual(a, b) {
		t.Errorf("restored snapshot differs:\n%+v\n%+v", a, b)
	}
}

func TestSecondOpenIsLocked(t *testing.T) {
	dir := t.TempDir()
	s := openTemp(t, dir)
	defer s.Close()
	start := time.Now()
	_, err := Open(dir, nil)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open err = %v, want ErrLocked", err)
	}
	if d := time.Since(start); d < LockTimeout/2 || d > 3*LockTimeout {
		t.Errorf("lock wait = %v", d)
	}
}

func TestOpenNotWritable(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// A data dir below a regular file cannot be created, root or not.
	if _, err := Open(filepath.Join(f, "data"), nil); !errors.Is(err, ErrNotWritable) {
		t.Errorf("err = %v, want ErrNotWritable", err)
	}
	if os.Geteuid() == 0 {
		return // root ignores directory permissions
	}
	ro := filepath.Join(t.TempDir(), "ro")
	if err := os.Mkdir(ro, 0o500); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ro, nil); !errors.Is(err, ErrNotWritable) {
		t.Errorf("read-only dir err = %v, want ErrNotWritable", err)
	}
}

func TestEventsOrderSinceLimitPrune(t *testing.T) {
	s := openTemp(t, t.TempDir())
	defer s.Close()
	t0 := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	for i := range 10 {
		if err := s.AppendEvent("finding", t0.Add(time.Duration(i)*time.Minute), []byte{byte('0' + i)}); err != nil {
			t.Fatal(err)
		}
	}
	// Same timestamp twice: both kept, in append order.
	if err := s.AppendEvent("finding", t0.Add(9*time.Minute), []byte("9b")); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendEvent("block", t0, []byte("other kind")); err != nil {
		t.Fatal(err)
	}
	evs, err := s.Events("finding", t0.Add(7*time.Minute), 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"7", "8", "9", "9b"}; !reflect.DeepEqual(strs(evs), want) {
		t.Errorf("events since = %q, want %q", strs(evs), want)
	}
	evs, _ = s.Events("finding", time.Time{}, 3)
	if want := []string{"0", "1", "2"}; !reflect.DeepEqual(strs(evs), want) {
		t.Errorf("limited events = %q, want %q", strs(evs), want)
	}
	if evs, _ := s.Events("nothing", time.Time{}, 0); evs != nil {
		t.Errorf("unknown kind = %q", evs)
	}
	n, err := s.Prune("finding", t0.Add(5*time.Minute))
	if err != nil || n != 5 {
		t.Fatalf("Prune = %d, %v; want 5", n, err)
	}
	evs, _ = s.Events("finding", time.Time{}, 0)
	if want := []string{"5", "6", "7", "8", "9", "9b"}; !reflect.DeepEqual(strs(evs), want) {
		t.Errorf("after prune = %q, want %q", strs(evs), want)
	}
	n, err = s.Trim("finding", 2)
	if err != nil || n != 4 {
		t.Fatalf("Trim = %d, %v; want 4", n, err)
	}
	evs, _ = s.Events("finding", time.Time{}, 0)
	if want := []string{"9", "9b"}; !reflect.DeepEqual(strs(evs), want) {
		t.Errorf("after trim = %q, want %q", strs(evs), want)
	}
	if evs, _ := s.Events("block", time.Time{}, 0); len(evs) != 1 {
		t.Errorf("other kind touched: %q", evs)
	}
	kinds, _ := s.EventKinds()
	if !reflect.DeepEqual(kinds, []string{"block", "finding"}) {
		t.Errorf("kinds = %q", kinds)
	}
	if err := s.AppendEvent("", t0, nil); !errors.Is(err, ErrBadKind) {
		t.Errorf("empty kind err = %v", err)
	}
}

func TestEventsQueryBound(t *testing.T) {
	s := openTemp(t, t.TempDir())
	defer s.Close()
	t0 := time.Unix(1, 0)
	// One transaction: an fsync per event would make the test slow.
	err := s.db.Update(func(tx *bolt.Tx) error {
		for i := range MaxEventsPerQuery + 5 {
			if err := appendEvent(tx, "k", t0.Add(time.Duration(i)), []byte("x")); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, limit := range []int{0, -1, MaxEventsPerQuery + 1} {
		evs, err := s.Events("k", time.Time{}, limit)
		if err != nil || len(evs) != MaxEventsPerQuery {
			t.Errorf("limit %d: %d events, %v; want %d", limit, len(evs), err, MaxEventsPerQuery)
		}
	}
}

func strs(b [][]byte) []string {
	var out []string
	for _, v := range b {
		out = append(out, string(v))
	}
	return out
}

func TestStateSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := s.LoadState("blocklist"); err != nil || v != nil {
		t.Fatalf("empty state: %q %v", v, err)
	}
	if err := s.SaveState("blocklist", []byte(`[1]`)); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveState("", []byte("x")); err == nil {
		t.Fatal("empty name accepted")
	}
	s.Close()
	s, err = Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, _ := s.LoadState("blocklist"); string(v) != `[1]` {
		t.Fatalf("state after reopen: %q", v)
	}
}

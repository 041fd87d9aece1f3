package inventory

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apiwarden/apiwarden/apimodel/call"
)

// cacheWorkload is a mix that learns positions while paths repeat: ids
// under a few collections (learned past MaxSegmentValues), literal
// sub-resources, gRPC methods and HTTP calls to the same path, two
// services, ports and methods, deep paths, and a few unique paths.
func cacheWorkload(n int, seed uint64) []*call.Call {
	r := rand.New(rand.NewPCG(seed, 1))
	out := make([]*call.Call, 0, n)
	for i := range n {
		ts := at(t0.Add(time.Duration(r.IntN(1e6)) * time.Millisecond))
		var c *call.Call
		switch k := r.IntN(10); k {
		case 0, 1, 2:
			c = newCall("GET", fmt.Sprintf("/api/v1/users/%d", r.IntN(30)), ts)
		case 3:
			c = newCall("GET", fmt.Sprintf("/api/v1/users/%d/orders/o%d", r.IntN(20), r.IntN(15)), ts, withQuery("page=2"))
		case 4:
			c = newCall([]string{"GET", "PUT", "DELETE"}[r.IntN(3)], fmt.Sprintf("/shop/%s/items", []string{"a", "b", "c", "d"}[r.IntN(4)]),
				ts, withPort(uint16(8080+r.IntN(2))))
		case 5:
			c = newCall("POST", fmt.Sprintf("/pkg.Svc/M%d", r.IntN(4)), ts, withProcess(7, "/usr/bin/grpcd"))
			if r.IntN(2) == 0 {
				c.Protocol = call.ProtoGRPC
				c.GRPC = &call.GRPC{Status: 0}
			}
		case 6:
			c = newCall("GET", fmt.Sprintf("/c%d/x/y", r.IntN(60)), ts, noResponse())
		case 7:
			c = newCall("GET", "/"+strings.Repeat("d/", 5+r.IntN(40))+fmt.Sprint(r.IntN(3)), ts)
		case 8:
			c = newCall("GET", fmt.Sprintf("/unique/%d/v", i), ts, withProcess(9, "/usr/bin/other"))
		default:
			c = newCall("GET", fmt.Sprintf("/api/v1/r%d/%d", r.IntN(70), r.IntN(5)), ts)
		}
		out = append(out, c)
	}
	return out
}

// TestPathCacheSameInventory: with the path cache at various bounds (0:
// off) the inventory, the templates returned and the counters are the
// same, across learning (which invalidates it) and past its bound.
func TestPathCacheSameInventory(t *testing.T) {
	for _, cfg := range []Config{{}, {MaxSegmentValues: 3, MaxCollectionValues: 5}, {MaxPathSegments: 80},
		{MaxTrieNodes: 40}, {MaxEndpoints: 30}} {
		calls := cacheWorkload(6000, 42)
		ref := New(cfg, nil)
		ref.pathCacheMax = 0
		var want []string
		for _, c := range calls {
			want = append(want, ref.Observe(c))
		}
		for _, bound := range []int{1, 7, 64, defaultPathCacheMax} {
			inv := New(cfg, nil)
			inv.pathCacheMax = bound
			for i, c := range calls {
				if got := inv.Observe(c); got != want[i] {
					t.Fatalf("cfg %+v bound %d: call %d (%s %s) -> %q, uncached %q", cfg, bound, i,
						c.Request.Method, c.Request.Path, got, want[i])
				}
				if len(inv.paths) > bound {
					t.Fatalf("bound %d: %d entries", bound, len(inv.paths))
				}
			}
			if got, exp := inv.Snapshot(), ref.Snapshot(); !reflect.DeepEqual(got, exp) {
				t.Errorf("cfg %+v bound %d: snapshots differ", cfg, bound)
			}
			if got, exp := inv.Stats(), ref.Stats(); got != exp {
				t.Errorf("cfg %+v bound %d: stats %+v, uncached %+v", cfg, bound, got, exp)
			}
		}
	}
}

// TestPathCacheInvalidation: a path cached under its literal endpoint
// counts under the template once its position is learned, and a restored
// state replaces what the cache pointed at.
func TestPathCacheInvalidation(t *testing.T) {
	inv := New(Config{MaxSegmentValues: 3}, nil)
	for range 2 {
		if got := inv.Observe(newCall("GET", "/items/a")); got != "/items/a" {
			t.Fatalf("template %q", got)
		}
	}
	if len(inv.paths) != 1 {
		t.Fatalf("cache %d entries, want 1", len(inv.paths))
	}
	for _, v := range []string{"b", "c", "d"} { // the fourth value learns the position
		inv.Observe(newCall("GET", "/items/"+v))
	}
	if len(inv.paths) != 1 {
		t.Fatalf("after learning: cache %d entries, want 1 (only the call that learned)", len(inv.paths))
	}
	if got := inv.Observe(newCall("GET", "/items/a")); got != "/items/{itemId}" {
		t.Fatalf("cached path after learning: template %q", got)
	}
	eps := inv.Snapshot()
	if len(eps) != 1 || eps[0].RequestCount != 6 || eps[0].PathParams[0].Count != 6 {
		t.Fatalf("endpoints %+v", eps)
	}
	st, err := inv.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	if err := inv.RestoreState(st); err != nil {
		t.Fatal(err)
	}
	if len(inv.paths) != 0 {
		t.Fatalf("cache kept %d entries across RestoreState", len(inv.paths))
	}
	inv.Observe(newCall("GET", "/items/a"))
	if eps := inv.Snapshot(); eps[0].RequestCount != 7 {
		t.Fatalf("after restore: count %d, want 7", eps[0].RequestCount)
	}
}

// TestPathCacheKeys: calls that differ in service, port, protocol or
// method do not share an entry, and a path past maxCachedPathLen is not
// cached.
func TestPathCacheKeys(t *testing.T) {
	inv := New(Config{}, nil)
	g := newCall("POST", "/pkg.Svc/M")
	g.Protocol, g.GRPC = call.ProtoGRPC, &call.GRPC{}
	for _, c := range []*call.Call{newCall("GET", "/a"), newCall("POST", "/a"), newCall("GET", "/a", withPort(81)),
		newCall("GET", "/a", withProcess(1, "/bin/x")), newCall("POST", "/pkg.Svc/M"), g} {
		inv.Observe(c)
		inv.Observe(c)
	}
	if len(inv.paths) != 6 {
		t.Fatalf("cache %d entries, want 6", len(inv.paths))
	}
	inv.Observe(newCall("GET", "/"+strings.Repeat("x", maxCachedPathLen)))
	inv.Observe(newCall("GET", "/"+strings.Repeat("y", maxCachedPathLen-1)))
	if len(inv.paths) != 7 {
		t.Fatalf("cache %d entries, want 7 (the longer path not cached)", len(inv.paths))
	}
}

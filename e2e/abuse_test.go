package e2e

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestEnumerationRaisesAbuseEvent is issue #12's scenario on real servers:
// one client (curl in the client namespace, one keep-alive connection)
// reading 120 ids of the Go server's /api/v1/users/{id} raises one
// abuse:enumeration event naming the client and the templated endpoint;
// a client reading 5 ids raises nothing.
func TestEnumerationRaisesAbuseEvent(t *testing.T) {
	bin := needAgent(t)
	w := newWorld(t)
	a := w.startAgent(t, bin, filepath.Join(w.dir, "data"))
	ctx := context.Background()
	walk := func(n int) {
		t.Helper()
		args := []string{"-o", "/dev/null"}
		for i := 1; i <= n; i++ {
			args = append(args, fmt.Sprintf("http://%s/api/v1/users/%d", w.goapi.Addr, i))
		}
		if _, err := w.clients.Curl(ctx, args...); err != nil {
			t.Fatal(err)
		}
	}
	walk(5)
	time.Sleep(time.Second)
	if evs, err := events(a, url.Values{}); err != nil {
		t.Fatal(err)
	} else {
		for _, e := range evs {
			if strings.HasPrefix(e.Class, "abuse:") {
				t.Fatalf("5 reads raised %+v", e)
			}
		}
	}
	walk(120)
	e, all, err := waitEvent(a, url.Values{}, 15*time.Second, func(e apiEvent) bool { return e.Class == "abuse:enumeration" })
	if err != nil {
		t.Fatalf("no enumeration event: %v (events %+v)", err, all)
	}
	if !strings.Contains(e.Endpoint, "/api/v1/users/{") || !strings.HasPrefix(e.Client, w.topo.CliIP) || e.Action != "monitor" {
		t.Errorf("event %+v", e)
	}
	n := 0
	for _, x := range all {
		if x.Class == "abuse:enumeration" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d enumeration events, want 1", n)
	}
}

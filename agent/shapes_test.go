package agent

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/apiwarden/apiwarden/apimodel/call"
	"github.com/apiwarden/apiwarden/apimodel/detect"
)

func TestShapesConfigKeys(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "c.yaml")
	os.WriteFile(f, []byte("shapes:\n  minSamples: 40\n  usualMinClients: 5\n  maxParams: 1000\n"), 0o600)
	c := Default()
	if err := c.LoadFile(f); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	p := c.Shapes.profiler()
	if p == nil || p.MinSamples != 40 || p.UsualMinClients != 5 || p.MaxTotalParams != 1000 {
		t.Fatalf("profiler %+v", p)
	}
	if Default().Shapes.profiler() == nil {
		t.Fatal("shapes must be on by default")
	}
	os.WriteFile(f, []byte("shapes:\n  disabled: true\n"), 0o600)
	c = Default()
	if err := c.LoadFile(f); err != nil || c.Shapes.profiler() != nil {
		t.Fatalf("disabled: %v %+v", err, c.Shapes)
	}
}

// TestInspectLearnsShapes: requests without a cut-grade finding teach the
// profiler (per service), cut-grade ones do not, and the counters reach
// the metrics.
func TestInspectLearnsShapes(t *testing.T) {
	a := testAgent(t, Default())
	a.shapes = a.cfg.Shapes.profiler()
	a.events = newEventLog(a.store, slog.New(slog.DiscardHandler))
	var err error
	if a.detector, err = detect.New(detect.Config{Shapes: a.shapes}, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	server := netip.MustParseAddrPort("10.0.0.9:8080")
	req := func(q string) *call.Request {
		return &call.Request{Method: "GET", Path: "/orders/17", RawQuery: q, Proto: "HTTP/1.1"}
	}
	for i := 0; i < detect.DefaultShapeMinSamples; i++ {
		client := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), 40000)
		a.inspect(client, server, req(fmt.Sprintf("page=%d", i)), "shop")
	}
	sh, ok := a.shapes.Shape("shop", "GET", "/orders/5", "query:page")
	if !ok || sh.Type != "integer" {
		t.Fatalf("shape %+v %v", sh, ok)
	}
	if _, ok := a.shapes.Shape("billing", "GET", "/orders/5", "query:page"); ok {
		t.Error("shape leaked to another service")
	}
	learned := a.shapes.Stats().Learned
	a.inspect(netip.MustParseAddrPort("198.51.100.1:5000"), server, req("page=1%20union%20select%20password%20from%20users"), "shop")
	if a.shapes.Stats().Learned != learned {
		t.Error("a cut-grade request was learned")
	}
	out := a.counters()
	if out["shapes_learned"] != learned || out["shapes_params"] == 0 {
		t.Errorf("shape counters: learned %d params %d", out["shapes_learned"], out["shapes_params"])
	}
	if _, ok := out["detect_shape_raised"]; !ok {
		t.Error("detect_shape_raised not exported")
	}
}

package inventory

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/apiwarden/apiwarden/apimodel/call"
)

func withGRPC(status int, reqMsgs int) callOpt {
	return func(c *call.Call) {
		c.Protocol = call.ProtoGRPC
		c.Request.Method = "POST"
		c.Request.Proto = "HTTP/2.0"
		c.GRPC = &call.GRPC{Status: status, ReqMessages: reqMsgs, RespMessages: 1}
	}
}

func TestProtocolAndGRPCStatus(t *testing.T) {
	inv := New(Config{}, nil)
	inv.Observe(newCall("GET", "/v1/items"))
	h2 := newCall("GET", "/v1/items")
	h2.Protocol, h2.Partial = call.ProtoH2, true
	inv.Observe(h2)
	inv.Observe(newCall("GET", "/v1/items"))
	for _, st := range []int{0, 0, 5} {
		inv.Observe(newCall("", "/grpc.health.v1.Health/Check", withGRPC(st, 1)))
	}
	inv.Observe(newCall("", "/shop.v1.Orders/Upload", withGRPC(0, 3)))
	// More methods than the segment bound: still one endpoint each.
	for i := 0; i < 40; i++ {
		inv.Observe(newCall("", fmt.Sprintf("/shop.v1.Many/Method%d", i), withGRPC(0, 1)))
	}
	eps := map[string]Endpoint{}
	for _, e := range inv.Snapshot() {
		eps[e.Method+" "+e.PathTemplate] = e
	}
	if len(eps) != 43 {
		t.Fatalf("%d endpoints: %v", len(eps), templates(inv.Snapshot()))
	}
	items := eps["GET /v1/items"]
	if items.Protocol != "http/1.1" || items.Protocols["h2"] != 1 || items.PartialCalls != 1 {
		t.Fatalf("items: %s %v partial=%d", items.Protocol, items.Protocols, items.PartialCalls)
	}
	hc := eps["POST /grpc.health.v1.Health/Check"]
	if hc.Protocol != "grpc" || hc.GRPCStatusCodes[0] != 2 || hc.GRPCStatusCodes[5] != 1 || hc.GRPCKinds["unary"] != 3 {
		t.Fatalf("health: %+v", hc)
	}
	if up := eps["POST /shop.v1.Orders/Upload"]; up.GRPCKinds["client-streaming"] != 1 {
		t.Fatalf("upload kinds %v", up.GRPCKinds)
	}
	// The state round trip keeps the protocol counts.
	b, err := inv.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	inv2 := New(Config{}, nil)
	if err := inv2.RestoreState(b); err != nil {
		t.Fatal(err)
	}
	for _, e := range inv2.Snapshot() {
		if e.PathTemplate == "/grpc.health.v1.Health/Check" {
			j, _ := json.Marshal(e.GRPCStatusCodes)
			if e.Protocol != "grpc" || string(j) != `{"0":2,"5":1}` {
				t.Fatalf("restored %s %s", e.Protocol, j)
			}
		}
	}
}

func TestGRPCWireSchema(t *testing.T) {
	// message { string name = 1; int64 qty = 2; Inner inner = 3; repeated string tags = 4; bytes blob = 5 }
	inner := []byte{0x08, 0x07}                                         // Inner{ 1: 7 }
	msg := []byte{0x0a, 0x03, 'a', 'b', 'c', 0x10, 0x96, 0x01, 0x1a, 2} // name, qty=150, inner len 2
	msg = append(msg, inner...)
	msg = append(msg, 0x22, 1, 'x', 0x22, 1, 'y', 0x2a, 2, 0xff, 0x00)
	body := append([]byte{0, 0, 0, 0, byte(len(msg))}, msg...)
	c := newCall("", "/shop.v1.Orders/Create", withGRPC(0, 1))
	c.Request.Body = body
	c.Response.Body = []byte{0, 0, 0, 0, 2, 0x08, 0x01}
	inv := New(Config{}, nil)
	inv.Observe(c)
	e := inv.Snapshot()[0]
	b, _ := json.Marshal(e.RequestSchema)
	want := `{"type":"object","properties":{"1":{"type":"string"},"2":{"type":"integer","format":"varint"},` +
		`"3":{"type":"object","properties":{"1":{"type":"integer","format":"varint"}},"required":["1"]},` +
		`"4":{"type":"array","items":{"type":"string"}},"5":{"type":"string","format":"byte"}},"required":["1","2","3","4","5"]}`
	if string(b) != want {
		t.Fatalf("request schema\n%s\nwant\n%s", b, want)
	}
	if s := e.ResponseSchemas[200]; s == nil || s.Properties["1"].Format != "varint" {
		t.Fatalf("response schema %+v", e.ResponseSchemas)
	}
	// Garbage and compressed messages give no schema.
	for _, b := range [][]byte{{1, 0, 0, 0, 1, 8}, {0, 0, 0, 0, 3, 0x0b, 1, 2}, {0, 0, 0, 9, 9}} {
		if _, ok := inferGRPC(b, inferLimits{maxDepth: 8, maxProps: 100, maxNodes: 100}); ok {
			t.Errorf("schema from %x", b)
		}
	}
}

func FuzzInferGRPC(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 5, 0x0a, 0x03, 'a', 'b', 'c'})
	f.Add([]byte{0, 0, 0, 0, 4, 0x1a, 2, 0x08, 0x07})
	f.Fuzz(func(t *testing.T, b []byte) {
		lim := inferLimits{maxDepth: 4, maxProps: 8, maxNodes: 32}
		r, ok := inferGRPC(b, lim)
		if ok && schemaSize(r.schema) > 2*lim.maxNodes {
			t.Fatalf("schema of %d nodes", schemaSize(r.schema))
		}
	})
}

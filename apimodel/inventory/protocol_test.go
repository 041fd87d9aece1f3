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

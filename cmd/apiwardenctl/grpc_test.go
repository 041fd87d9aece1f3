package main

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"

	"github.com/apiwarden/apiwarden/apimodel/inventory"
	"github.com/apiwarden/apiwarden/apiserver"
)

type grpcBackend struct{ fakeBackend }

func (*grpcBackend) Inventory() []inventory.Endpoint {
	return []inventory.Endpoint{
		{Service: inventory.Service{Name: "h2srv", Port: 50051}, Method: "POST", PathTemplate: "/grpc.health.v1.Health/Check",
			RequestCount: 7, Protocol: "grpc", GRPCStatusCodes: map[int]uint64{0: 5, 5: 2}, GRPCKinds: map[string]uint64{"unary": 7}},
		{Service: inventory.Service{Name: "shop", Port: 9000}, Method: "POST", PathTemplate: "/shop.v1.Orders/Upload",
			RequestCount: 2, Protocol: "grpc", GRPCStatusCodes: map[int]uint64{-1: 1, 14: 1}, GRPCKinds: map[string]uint64{"client-streaming": 2}},
		{Service: inventory.Service{Name: "shop", Port: 8080}, Method: "GET", PathTemplate: "/items", RequestCount: 3, Protocol: "h2"},
	}
}

func TestGRPCList(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- apiserver.New(apiserver.Config{}, &grpcBackend{}, nil, nil).ServeListener(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	addr := ln.Addr().String()

	code, out, errs := ctl(t, addr, "grpc", "list")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("table:\n%s", out)
	}
	for i, want := range []string{
		"grpc.health.v1.Health Check 7 NOT_FOUND:2 OK:5 unary:7 h2srv:50051",
		"shop.v1.Orders Upload 2 NONE:1 UNAVAILABLE:1 client-streaming:2 shop:9000",
	} {
		if got := strings.Join(strings.Fields(lines[i+1]), " "); got != want {
			t.Errorf("row %d: %q, want %q", i, got, want)
		}
	}
	code, out, errs = ctl(t, addr, "grpc", "list", "--service", "shop.v1.Orders", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var l grpcListing
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatal(err)
	}
	if len(l.Services) != 1 || l.Services[0].Name != "shop.v1.Orders" || l.Services[0].Methods[0].StatusCodes["UNAVAILABLE"] != 1 {
		t.Fatalf("json: %s", out)
	}
	if code, _, _ := ctl(t, addr, "grpc", "nope"); code != 2 {
		t.Fatalf("bad subcommand exit %d", code)
	}
}

package agent

import (
	"slices"
	"testing"

	"github.com/apiwarden/apiwarden/apimodel/inventory"
)

// TestServedByPID: /v1/processes names the protocols the inventory decoded
// for each process, so an HTTP/2 or gRPC server is not reported as blind.
func TestServedByPID(t *testing.T) {
	eps := []inventory.Endpoint{
		{RequestCount: 7, Protocol: "grpc", Protocols: map[string]uint64{"grpc": 7}, Processes: []inventory.Process{{PID: 10}}},
		{RequestCount: 3, Protocol: "h2", Protocols: map[string]uint64{"h2": 2, "http/1.1": 1, "grpc": 0}, Processes: []inventory.Process{{PID: 10}, {PID: 11}}},
		{RequestCount: 1, Protocol: "http/1.1", Processes: []inventory.Process{{PID: 12}}}, // restored state without counts
	}
	got := servedByPID(eps)
	for pid, want := range map[uint32]struct {
		calls uint64
		proto []string
	}{10: {10, []string{"grpc", "h2", "http/1.1"}}, 11: {3, []string{"h2", "http/1.1"}}, 12: {1, []string{"http/1.1"}}} {
		if s := got[pid]; s.calls != want.calls || !slices.Equal(s.protocols(), want.proto) {
			t.Errorf("pid %d: calls %d protocols %v, want %d %v", pid, s.calls, s.protocols(), want.calls, want.proto)
		}
	}
	if p := got[99].protocols(); p != nil {
		t.Errorf("unknown pid: %v", p)
	}
}

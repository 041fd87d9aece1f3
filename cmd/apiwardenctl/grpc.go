package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	apiwardenv1 "github.com/apiwarden/apiwarden/api/apiwarden/v1"
)

// grpcListing is the observed gRPC surface, shaped like a
// FileDescriptorSet's services and methods (names only: message types are
// not known without the .proto files).
type grpcListing struct {
	Services []grpcService `json:"services"`
}

type grpcService struct {
	Name    string       `json:"name"` // package.Service
	Methods []grpcMethod `json:"methods"`
}

type grpcMethod struct {
	Name  string `json:"name"`
	Calls uint64 `json:"calls"`
	// StatusCodes counts grpc-status by code name (OK, NOT_FOUND, ...;
	// "NONE" for calls that ended without one).
	StatusCodes map[string]uint64 `json:"statusCodes"`
	// Kinds counts the streaming kinds guessed from message counts.
	Kinds map[string]uint64 `json:"kinds,omitempty"`
	// Servers are the serving programs, "name:port".
	Servers []string `json:"servers"`
	// PartialCalls were decoded without some header fields (agent joined
	// the connection late).
	PartialCalls uint64 `json:"partialCalls,omitempty"`
}

// grpcCommand runs "grpc list".
func grpcCommand(ctx context.Context, g *globals, args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "list" {
		return fmt.Errorf("%w: grpc list [--service NAME] [-o table|json]", errUsage)
	}
	fs := flag.NewFlagSet("grpc list", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	g.register(fs, "output format: table or json")
	var service string
	fs.StringVar(&service, "service", "", "only this gRPC service (package.Service)")
	pos, err := parseInterleaved(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return fmt.Errorf("%w: grpc list takes no arguments", errUsage)
	}
	if g.output != "table" && g.output != "json" {
		return fmt.Errorf("%w: -o must be table or json", errUsage)
	}
	conn, err := grpc.NewClient(g.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxRecvBytes)))
	if err != nil {
		return fmt.Errorf("agent address %q: %w", g.addr, err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	resp, err := apiwardenv1.NewApiwardenClient(conn).ListInventory(ctx, &apiwardenv1.ListInventoryRequest{})
	if err != nil {
		return err
	}
	l := buildGRPCListing(resp.GetEndpoints(), service)
	if g.output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(l)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tMETHOD\tCALLS\tSTATUS\tKIND\tSERVER")
	for _, s := range l.Services {
		for _, m := range s.Methods {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", s.Name, m.Name, m.Calls, namedCounts(m.StatusCodes),
				namedCounts(m.Kinds), strings.Join(m.Servers, ","))
		}
	}
	return tw.Flush()
}

// buildGRPCListing groups the inventory's gRPC endpoints by service.
func buildGRPCListing(eps []*apiwardenv1.Endpoint, only string) grpcListing {
	byName := map[string]map[string]*grpcMethod{}
	for _, e := range eps {
		if e.GetProtocol() != "grpc" {
			continue
		}
		p := strings.TrimPrefix(e.GetPathTemplate(), "/")
		i := strings.LastIndexByte(p, '/')
		if i <= 0 {
			continue
		}
		svc, name := p[:i], p[i+1:]
		if only != "" && svc != only {
			continue
		}
		if byName[svc] == nil {
			byName[svc] = map[string]*grpcMethod{}
		}
		m := byName[svc][name]
		if m == nil {
			m = &grpcMethod{Name: name, StatusCodes: map[string]uint64{}}
			byName[svc][name] = m
		}
		m.Calls += e.GetRequestCount()
		m.PartialCalls += e.GetPartialCalls()
		for k, n := range e.GetGrpcStatusCodes() {
			m.StatusCodes[grpcCodeName(k)] += n
		}
		for k, n := range e.GetGrpcKinds() {
			if m.Kinds == nil {
				m.Kinds = map[string]uint64{}
			}
			m.Kinds[k] += n
		}
		m.Servers = append(m.Servers, fmt.Sprintf("%s:%d", e.GetService().GetName(), e.GetService().GetPort()))
	}
	l := grpcListing{Services: []grpcService{}}
	for svc, ms := range byName {
		s := grpcService{Name: svc}
		for _, m := range ms {
			sort.Strings(m.Servers)
			s.Methods = append(s.Methods, *m)
		}
		sort.Slice(s.Methods, func(i, j int) bool { return s.Methods[i].Name < s.Methods[j].Name })
		l.Services = append(l.Services, s)
	}
	sort.Slice(l.Services, func(i, j int) bool { return l.Services[i].Name < l.Services[j].Name })
	return l
}

// grpcCodeNames are the canonical status code names (grpc/codes).
var grpcCodeNames = [...]string{"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
	"UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"}

// grpcCodeName turns "5" into NOT_FOUND; "-1" (no grpc-status) into NONE.
func grpcCodeName(k string) string {
	n, err := strconv.Atoi(k)
	switch {
	case err != nil || n >= len(grpcCodeNames):
		return k
	case n < 0:
		return "NONE"
	}
	return grpcCodeNames[n]
}

func namedCounts(m map[string]uint64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s:%d", k, m[k]))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

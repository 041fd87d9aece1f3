package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	apiwardenv1 "github.com/apiwarden/apiwarden/api/apiwarden/v1"
)

// Event listing bounds: a client that asks for nothing gets a screenful,
// a client that asks for everything gets MaxEventLimit (counted in
// apiwarden_api_event_limit_clamped_total) so one request cannot make the
// agent build an unbounded response.
const (
	DefaultEventLimit = 100
	MaxEventLimit     = 10000
)

// service implements apiwardenv1.ApiwardenServer on top of a Backend. The
// same value serves gRPC and, in-process, the REST gateway.
type service struct {
	apiwardenv1.UnimplementedApiwardenServer
	backend Backend
	version string
	metrics *metrics
}

func (s *service) ListInventory(_ context.Context, req *apiwardenv1.ListInventoryRequest) (*apiwardenv1.ListInventoryResponse, error) {
	eps := slices.Clone(s.backend.Inventory())
	sortEndpoints(eps)
	resp := &apiwardenv1.ListInventoryResponse{Endpoints: make([]*apiwardenv1.Endpoint, 0, len(eps))}
	for i := range eps {
		if req.GetService() != "" && eps[i].Service.Name != req.GetService() {
			continue
		}
		resp.Endpoints = append(resp.Endpoints, endpointToProto(&eps[i], s.metrics.schemaTruncated.Inc))
	}
	return resp, nil
}

func (s *service) GetOpenAPI(context.Context, *apiwardenv1.GetOpenAPIRequest) (*httpbody.HttpBody, error) {
	doc, err := s.backend.OpenAPI()
	if err != nil {
		return nil, toStatus("openapi", err)
	}
	return &httpbody.HttpBody{ContentType: "application/json", Data: doc}, nil
}

func (s *service) ListProcesses(context.Context, *apiwardenv1.ListProcessesRequest) (*apiwardenv1.ListProcessesResponse, error) {
	ps, err := s.backend.Processes()
	if err != nil {
		return nil, toStatus("processes", err)
	}
	resp := &apiwardenv1.ListProcessesResponse{Processes: make([]*apiwardenv1.ProcessStatus, 0, len(ps))}
	for i := range ps {
		resp.Processes = append(resp.Processes, processToProto(&ps[i]))
	}
	return resp, nil
}

func (s *service) ListEvents(ctx context.Context, req *apiwardenv1.ListEventsRequest) (*apiwardenv1.ListEventsResponse, error) {
	f := EventFilter{
		Service: req.GetService(),
		Class:   req.GetClass(),
		Action:  req.GetAction(),
		Limit:   int(req.GetLimit()),
	}
	if req.GetSince() != nil {
		if err := req.GetSince().CheckValid(); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "invalid since: %v", err)
		}
		f.Since = req.GetSince().AsTime()
	}
	switch {
	case f.Limit <= 0:
		f.Limit = DefaultEventLimit
	case f.Limit > MaxEventLimit:
		f.Limit = MaxEventLimit
		s.metrics.eventLimitClamped.Inc()
	}
	evs, err := s.backend.Events(ctx, f)
	if err != nil {
		return nil, toStatus("events", err)
	}
	// A backend that ignores the limit must still not break the bound.
	if len(evs) > f.Limit {
		evs = evs[:f.Limit]
	}
	resp := &apiwardenv1.ListEventsResponse{Events: make([]*apiwardenv1.Event, 0, len(evs))}
	for i := range evs {
		resp.Events = append(resp.Events, eventToProto(&evs[i]))
	}
	return resp, nil
}

func (s *service) ListBlocks(context.Context, *apiwardenv1.ListBlocksRequest) (*apiwardenv1.ListBlocksResponse, error) {
	bs, err := s.backend.Blocks()
	if err != nil {
		return nil, toStatus("blocklist", err)
	}
	resp := &apiwardenv1.ListBlocksResponse{Blocks: make([]*apiwardenv1.Block, 0, len(bs))}
	for i := range bs {
		resp.Blocks = append(resp.Blocks, blockToProto(&bs[i]))
	}
	return resp, nil
}

func (s *service) AddBlock(_ context.Context, req *apiwardenv1.AddBlockRequest) (*apiwardenv1.Block, error) {
	p, err := ParsePrefix(req.GetPrefix())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	var ttl time.Duration
	if req.GetTtl() != nil {
		if err := req.GetTtl().CheckValid(); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "invalid ttl: %v", err)
		}
		ttl = req.GetTtl().AsDuration()
		if ttl < 0 {
			return nil, status.Errorf(codes.InvalidArgument, "invalid ttl %s: negative", ttl)
		}
	}
	b, err := s.backend.AddBlock(p, ttl, req.GetReason())
	if err != nil {
		return nil, toStatus("add block", err)
	}
	return blockToProto(&b), nil
}

func (s *service) DeleteBlock(_ context.Context, req *apiwardenv1.DeleteBlockRequest) (*apiwardenv1.DeleteBlockResponse, error) {
	p, err := ParsePrefix(req.GetPrefix())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if err := s.backend.DeleteBlock(p); err != nil {
		return nil, toStatus("delete block "+p.String(), err)
	}
	return &apiwardenv1.DeleteBlockResponse{}, nil
}

func (s *service) GetStatus(context.Context, *apiwardenv1.GetStatusRequest) (*apiwardenv1.Status, error) {
	st, err := s.backend.Status()
	if err != nil {
		return nil, toStatus("status", err)
	}
	if st.Version == "" {
		st.Version = s.version
	}
	return statusToProto(&st), nil
}

// ParsePrefix accepts a CIDR prefix or a bare address (a single host) and
// returns it masked, so "10.1.2.3/8" and "10.0.0.0/8" name the same entry.
func ParsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return netip.Prefix{}, errors.New("invalid prefix: empty")
	}
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("invalid prefix %q", s)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid prefix %q", s)
	}
	if p.Addr().Is4In6() {
		// ::ffff:a.b.c.d/n with n >= 96 is an IPv4 prefix in disguise.
		if p.Bits() < 96 {
			return netip.Prefix{}, fmt.Errorf("invalid prefix %q: mapped IPv4 with fewer than 96 bits", s)
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// toStatus maps a backend error to a gRPC status; what names the operation
// for the message.
func toStatus(what string, err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	code := codes.Internal
	switch {
	case errors.Is(err, ErrNotImplemented):
		return status.Errorf(codes.Unimplemented, "%s: not supported by this agent", what)
	case errors.Is(err, ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, ErrInvalidArgument):
		code = codes.InvalidArgument
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	}
	return status.Errorf(code, "%s: %v", what, err)
}

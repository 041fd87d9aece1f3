package apiserver

import (
	"context"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	apiwardenv1 "github.com/apiwarden/apiwarden/api/apiwarden/v1"
)

func (s *service) ListModes(context.Context, *apiwardenv1.ListModesRequest) (*apiwardenv1.ListModesResponse, error) {
	m, err := s.backend.Modes()
	if err != nil {
		return nil, toStatus("modes", err)
	}
	return modesToProto(&m), nil
}

func (s *service) SetMode(_ context.Context, req *apiwardenv1.SetModeRequest) (*apiwardenv1.ServiceMode, error) {
	svc := strings.TrimSpace(req.GetService())
	if svc == "" {
		return nil, status.Error(codes.InvalidArgument, "invalid service: empty")
	}
	mode := strings.ToLower(strings.TrimSpace(req.GetMode()))
	switch mode {
	case ModeMonitor, ModeProtect, ModeDefault:
	default:
		return nil, status.Errorf(codes.InvalidArgument, "invalid mode %q: must be monitor, protect or default", req.GetMode())
	}
	m, err := s.backend.SetMode(svc, mode)
	if err != nil {
		return nil, toStatus("set mode of "+svc, err)
	}
	return serviceModeToProto(&m), nil
}

func (s *service) ListRules(_ context.Context, req *apiwardenv1.ListRulesRequest) (*apiwardenv1.ListRulesResponse, error) {
	r, err := s.backend.Rules()
	if err != nil {
		return nil, toStatus("rules", err)
	}
	return rulesToProto(&r, req.GetDetail()), nil
}

func (s *service) GetXDSStatus(context.Context, *apiwardenv1.GetXDSStatusRequest) (*apiwardenv1.XDSStatus, error) {
	x, err := s.backend.XDSStatus()
	if err != nil {
		return nil, toStatus("xds status", err)
	}
	return xdsStatusToProto(&x), nil
}

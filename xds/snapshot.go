package xds

import (
	"errors"
	"fmt"
	"sort"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Inputs is everything one node's snapshot is built from.
type Inputs struct {
	Policy Policy
	// GRPCListeners are the proxyless server listener names the node asked
	// for (see ServerListenerTemplate).
	GRPCListeners []string
	// Envoy are the listeners every Envoy node gets.
	Envoy []EnvoyListener
}

// Resources builds every resource of a snapshot, by type. It is pure: the
// same inputs give the same resources, which the golden tests rely on.
func Resources(in Inputs) (map[resource.Type][]types.Resource, error) {
	ec, err := ExtensionConfig(in.Policy)
	if err != nil {
		return nil, err
	}
	out := map[resource.Type][]types.Resource{
		resource.ExtensionConfigType: {ec},
		resource.ListenerType:        {},
		resource.RouteType:           {},
		resource.ClusterType:         {},
	}
	names := append([]string(nil), in.GRPCListeners...)
	sort.Strings(names)
	for _, name := range names {
		l, err := GRPCServerListener(name, in.Policy)
		if err != nil {
			return nil, err
		}
		out[resource.ListenerType] = append(out[resource.ListenerType], l)
	}
	seen := map[string]bool{}
	for _, el := range in.Envoy {
		if seen[el.Name] {
			return nil, fmt.Errorf("envoy listener %q listed twice", el.Name)
		}
		seen[el.Name] = true
		l, rc, cl, err := EnvoyResources(el, in.Policy)
		if err != nil {
			return nil, err
		}
		out[resource.ListenerType] = append(out[resource.ListenerType], l)
		out[resource.RouteType] = append(out[resource.RouteType], rc)
		out[resource.ClusterType] = append(out[resource.ClusterType], cl)
	}
	return out, nil
}

// BuildSnapshot builds a snapshot and refuses one that a proxy would NACK
// for a reason we can see offline: inconsistent references or a resource
// (or a config nested in an Any) that fails its proto validation rules.
func BuildSnapshot(version string, in Inputs) (*cachev3.Snapshot, error) {
	res, err := Resources(in)
	if err != nil {
		return nil, err
	}
	snap, err := cachev3.NewSnapshot(version, res)
	if err != nil {
		return nil, fmt.Errorf("new snapshot: %w", err)
	}
	if err := snap.Consistent(); err != nil {
		return nil, fmt.Errorf("inconsistent snapshot: %w", err)
	}
	for _, items := range res {
		for _, r := range items {
			if err := Validate(r); err != nil {
				return nil, err
			}
		}
	}
	return snap, nil
}

// validator is what protoc-gen-validate generates on every Envoy message.
type validator interface{ ValidateAll() error }

// Validate runs the proto validation rules on a resource and on the
// configs packed in it (Any fields are not validated by ValidateAll), and
// checks the HTTP filter order Envoy and grpc-go require.
func Validate(r types.Resource) error {
	name := cachev3.GetResourceName(r)
	if v, ok := r.(validator); ok {
		if err := v.ValidateAll(); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	l, ok := r.(*listenerv3.Listener)
	if !ok {
		return nil
	}
	chains := l.GetFilterChains()
	if dfc := l.GetDefaultFilterChain(); dfc != nil {
		chains = append(append([]*listenerv3.FilterChain(nil), chains...), dfc)
	}
	if len(chains) == 0 {
		return fmt.Errorf("listener %s: no filter chain", name)
	}
	for _, fc := range chains {
		for _, f := range fc.GetFilters() {
			var hcm hcmv3.HttpConnectionManager
			if err := f.GetTypedConfig().UnmarshalTo(&hcm); err != nil {
				return fmt.Errorf("listener %s filter %s: %w", name, f.GetName(), err)
			}
			if err := hcm.ValidateAll(); err != nil {
				return fmt.Errorf("listener %s: %w", name, err)
			}
			if err := validateHTTPFilters(hcm.GetHttpFilters()); err != nil {
				return fmt.Errorf("listener %s: %w", name, err)
			}
			if _, _, proxyless := ServerListenerAddress(name); proxyless {
				if err := validateServerRoutes(hcm.GetRouteConfig()); err != nil {
					return fmt.Errorf("listener %s: %w", name, err)
				}
			}
		}
	}
	return nil
}

func validateHTTPFilters(filters []*hcmv3.HttpFilter) error {
	if len(filters) == 0 || filters[len(filters)-1].GetName() != wellknown.Router {
		return errors.New("the router must be the last http filter")
	}
	seen := map[string]bool{}
	for _, f := range filters {
		if seen[f.GetName()] {
			return fmt.Errorf("http filter %s twice", f.GetName())
		}
		seen[f.GetName()] = true
		m, err := anypb.UnmarshalNew(f.GetTypedConfig(), proto.UnmarshalOptions{})
		if err != nil {
			return fmt.Errorf("http filter %s: %w", f.GetName(), err)
		}
		if v, ok := m.(validator); ok {
			if err := v.ValidateAll(); err != nil {
				return fmt.Errorf("http filter %s: %w", f.GetName(), err)
			}
		}
	}
	return nil
}

// validateServerRoutes checks what grpc-go's xDS server requires of an
// inline route config: every route must be NonForwardingAction, or the
// matching RPCs fail with UNAVAILABLE.
func validateServerRoutes(rc *routev3.RouteConfiguration) error {
	if rc == nil {
		return errors.New("proxyless listener needs an inline route config")
	}
	for _, vh := range rc.GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			if r.GetNonForwardingAction() == nil {
				return fmt.Errorf("virtual host %s: a server route must be NonForwardingAction", vh.GetName())
			}
		}
	}
	return nil
}

package xds

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	localrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// ServerListenerTemplate is the server_listener_resource_name_template a
// proxyless grpc-go server's bootstrap names: the server asks for the
// Listener called this with its listening address (host:port) in place of
// %s, and becomes SERVING only once it gets one.
const ServerListenerTemplate = "grpc/server?xds.resource.listening_address=%s"

// listeningAddressKey is the query key of the template. Any name carrying
// it is taken as a proxyless server's listener, so users may pick their own
// template prefix as long as they keep the key.
const listeningAddressKey = "xds.resource.listening_address="

// grpcRouteName names the inline route config of proxyless listeners.
const grpcRouteName = "apiwarden-grpc-server"

// ServerListenerAddress returns the listening address in a proxyless
// server's listener name, or false when the name is not one.
func ServerListenerAddress(name string) (host string, port uint32, ok bool) {
	i := strings.Index(name, listeningAddressKey)
	if i < 0 {
		return "", 0, false
	}
	hp := name[i+len(listeningAddressKey):]
	if j := strings.IndexByte(hp, '&'); j >= 0 {
		hp = hp[:j]
	}
	h, p, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, false
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil || h == "" {
		return "", 0, false
	}
	return h, uint32(n), true
}

// GRPCServerListener builds the Listener a proxyless grpc-go server asks
// for under name. grpc-go requires the listener address to equal its own
// listening address (taken from the name), an HttpConnectionManager as the
// only network filter, the router as the last HTTP filter, and a route whose
// action is NonForwardingAction; RBAC runs before the router.
func GRPCServerListener(name string, p Policy) (*listenerv3.Listener, error) {
	host, port, ok := ServerListenerAddress(name)
	if !ok {
		return nil, fmt.Errorf("listener %q: no %s host:port", name, listeningAddressKey)
	}
	rbac, err := rbacFilter(p)
	if err != nil {
		return nil, err
	}
	router, err := routerFilter()
	if err != nil {
		return nil, err
	}
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: "apiwarden_grpc",
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
			Name: grpcRouteName,
			VirtualHosts: []*routev3.VirtualHost{{
				Name:    "all",
				Domains: []string{"*"},
				Routes: []*routev3.Route{{
					Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
					Action: &routev3.Route_NonForwardingAction{NonForwardingAction: &routev3.NonForwardingAction{}},
				}},
			}},
		}},
		HttpFilters: []*hcmv3.HttpFilter{rbac, router},
	}
	fc, err := hcmChain("default", hcm)
	if err != nil {
		return nil, err
	}
	return &listenerv3.Listener{
		Name:               name,
		Address:            socketAddress(host, port),
		DefaultFilterChain: fc,
	}, nil
}

// EnvoyListener is a listener apiwarden hands to a stock Envoy: requests to
// Address pass RBAC (and the optional rate limit) and go to Upstream.
type EnvoyListener struct {
	Name     string         `yaml:"name"`
	Address  netip.AddrPort `yaml:"address"`
	Upstream netip.AddrPort `yaml:"upstream"`
}

// Validate checks what Envoy would otherwise reject at run time.
func (l EnvoyListener) Validate() error {
	if l.Name == "" {
		return fmt.Errorf("envoy listener: empty name")
	}
	if _, _, ok := ServerListenerAddress(l.Name); ok {
		return fmt.Errorf("envoy listener %q: name collides with the proxyless server template", l.Name)
	}
	if !l.Address.IsValid() || l.Address.Port() == 0 {
		return fmt.Errorf("envoy listener %q: address %v needs an IP and a port", l.Name, l.Address)
	}
	if !l.Upstream.IsValid() || l.Upstream.Port() == 0 {
		return fmt.Errorf("envoy listener %q: upstream %v needs an IP and a port", l.Name, l.Upstream)
	}
	return nil
}

// RouteName and ClusterName name the RDS and CDS resources of a listener.
func (l EnvoyListener) RouteName() string   { return l.Name + "-routes" }
func (l EnvoyListener) ClusterName() string { return l.Name + "-upstream" }

// EnvoyResources builds the listener (routes over RDS through ADS), its
// route configuration and its static upstream cluster.
func EnvoyResources(l EnvoyListener, p Policy) (*listenerv3.Listener, *routev3.RouteConfiguration, *clusterv3.Cluster, error) {
	if err := l.Validate(); err != nil {
		return nil, nil, nil, err
	}
	rbac, err := rbacFilter(p)
	if err != nil {
		return nil, nil, nil, err
	}
	filters := []*hcmv3.HttpFilter{rbac}
	if p.RateLimit != nil {
		rl, err := rateLimitFilter(*p.RateLimit)
		if err != nil {
			return nil, nil, nil, err
		}
		filters = append(filters, rl)
	}
	router, err := routerFilter()
	if err != nil {
		return nil, nil, nil, err
	}
	filters = append(filters, router)
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: l.Name,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			RouteConfigName: l.RouteName(),
			ConfigSource: &corev3.ConfigSource{
				ResourceApiVersion:    corev3.ApiVersion_V3,
				ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
			},
		}},
		HttpFilters: filters,
	}
	fc, err := hcmChain("http", hcm)
	if err != nil {
		return nil, nil, nil, err
	}
	lis := &listenerv3.Listener{
		Name:         l.Name,
		Address:      socketAddress(l.Address.Addr().String(), uint32(l.Address.Port())),
		FilterChains: []*listenerv3.FilterChain{fc},
	}
	rc := &routev3.RouteConfiguration{
		Name: l.RouteName(),
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    l.Name,
			Domains: []string{"*"},
			Routes: []*routev3.Route{{
				Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{
					ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: l.ClusterName()},
				}},
			}},
		}},
	}
	cl := &clusterv3.Cluster{
		Name:                 l.ClusterName(),
		ConnectTimeout:       durationpb.New(5 * time.Second),
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: l.ClusterName(),
			Endpoints: []*endpointv3.LocalityLbEndpoints{{
				LbEndpoints: []*endpointv3.LbEndpoint{{
					HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
						Address: socketAddress(l.Upstream.Addr().String(), uint32(l.Upstream.Port())),
					}},
				}},
			}},
		},
	}
	return lis, rc, cl, nil
}

func socketAddress(host string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Protocol:      corev3.SocketAddress_TCP,
		Address:       host,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

func hcmChain(name string, hcm *hcmv3.HttpConnectionManager) (*listenerv3.FilterChain, error) {
	cfg, err := anypb.New(hcm)
	if err != nil {
		return nil, fmt.Errorf("pack http connection manager: %w", err)
	}
	return &listenerv3.FilterChain{
		Name: name,
		Filters: []*listenerv3.Filter{{
			Name:       wellknown.HTTPConnectionManager,
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: cfg},
		}},
	}, nil
}

func httpFilter(name string, m proto.Message) (*hcmv3.HttpFilter, error) {
	cfg, err := anypb.New(m)
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w", name, err)
	}
	return &hcmv3.HttpFilter{Name: name, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: cfg}}, nil
}

func rbacFilter(p Policy) (*hcmv3.HttpFilter, error) {
	rbac, err := BuildRBAC(p)
	if err != nil {
		return nil, err
	}
	return httpFilter(wellknown.HTTPRoleBasedAccessControl, rbac)
}

func routerFilter() (*hcmv3.HttpFilter, error) {
	return httpFilter(wellknown.Router, &routerv3.Router{})
}

// localRateLimitName is the filter's well-known name.
const localRateLimitName = "envoy.filters.http.local_ratelimit"

func rateLimitFilter(r RateLimit) (*hcmv3.HttpFilter, error) {
	if r.RequestsPerSecond == 0 {
		return nil, fmt.Errorf("rate limit: requests per second must be > 0")
	}
	burst := r.Burst
	if burst == 0 {
		burst = r.RequestsPerSecond
	}
	all := func(key string) *corev3.RuntimeFractionalPercent {
		return &corev3.RuntimeFractionalPercent{
			DefaultValue: &typev3.FractionalPercent{Numerator: 100, Denominator: typev3.FractionalPercent_HUNDRED},
			RuntimeKey:   key,
		}
	}
	return httpFilter(localRateLimitName, &localrlv3.LocalRateLimit{
		StatPrefix: "apiwarden_rate_limit",
		TokenBucket: &typev3.TokenBucket{
			MaxTokens:     burst,
			TokensPerFill: wrapperspb.UInt32(r.RequestsPerSecond),
			FillInterval:  durationpb.New(time.Second),
		},
		FilterEnabled:  all("apiwarden_rate_limit_enabled"),
		FilterEnforced: all("apiwarden_rate_limit_enforced"),
	})
}

package xds

import (
	"encoding/json"
	"fmt"
	"sort"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// StaticBootstrap is an Envoy bootstrap (envoy -c) holding the listeners
// with their routes inline and their clusters, for meshes and hosts that
// run Envoy without a control plane.
func StaticBootstrap(ls []EnvoyListener, p Policy) (*bootstrapv3.Bootstrap, error) {
	b := &bootstrapv3.Bootstrap{StaticResources: &bootstrapv3.Bootstrap_StaticResources{}}
	for _, l := range ls {
		lis, rc, cl, err := EnvoyResources(l, p)
		if err != nil {
			return nil, err
		}
		// Swap RDS for the route config itself: there is no ADS here.
		for _, fc := range lis.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				var hcm hcmv3.HttpConnectionManager
				if err := f.GetTypedConfig().UnmarshalTo(&hcm); err != nil {
					return nil, err
				}
				hcm.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: rc}
				cfg, err := anypb.New(&hcm)
				if err != nil {
					return nil, err
				}
				f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: cfg}
			}
		}
		if err := Validate(lis); err != nil {
			return nil, err
		}
		b.StaticResources.Listeners = append(b.StaticResources.Listeners, lis)
		b.StaticResources.Clusters = append(b.StaticResources.Clusters, cl)
	}
	if err := b.ValidateAll(); err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	return b, nil
}

// Plain turns a proto message into plain JSON values (maps, slices,
// strings) with proto field names, for stable JSON or YAML output:
// protojson's own output is deliberately unstable in whitespace.
func Plain(m proto.Message) (any, error) {
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		return nil, err
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	return v, nil
}

// PlainResources is a snapshot's resources as plain values keyed by short
// type name (listeners, routes, clusters, extension_configs), each list in
// name order.
func PlainResources(res map[resource.Type][]types.Resource) (map[string]any, error) {
	short := map[resource.Type]string{
		resource.ListenerType:        "listeners",
		resource.RouteType:           "routes",
		resource.ClusterType:         "clusters",
		resource.ExtensionConfigType: "extension_configs",
	}
	out := map[string]any{}
	for typ, items := range res {
		key, ok := short[typ]
		if !ok {
			key = typ
		}
		sorted := append([]types.Resource(nil), items...)
		sort.Slice(sorted, func(i, j int) bool {
			return resourceName(sorted[i]) < resourceName(sorted[j])
		})
		list := []any{}
		for _, r := range sorted {
			v, err := Plain(r)
			if err != nil {
				return nil, err
			}
			// Keep the type in the document so it can be fed back as Any.
			if m, ok := v.(map[string]any); ok {
				m["@type"] = typ
			}
			list = append(list, v)
		}
		out[key] = list
	}
	return out, nil
}

func resourceName(r types.Resource) string {
	if v, ok := r.(interface{ GetName() string }); ok {
		return v.GetName()
	}
	return ""
}

// MarshalIndent is json.MarshalIndent with a trailing newline.
func MarshalIndent(v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

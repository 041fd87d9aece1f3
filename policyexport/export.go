// Package policyexport writes apiwarden's policy in the formats of the
// meshes and proxies that own their own configuration: Envoy resources
// (the RBAC HTTP filter, or a whole static bootstrap), Istio
// AuthorizationPolicy DENY rules, and a CiliumNetworkPolicy L7 allow-list
// of the learned inventory. Every function is pure: the CLI fetches the
// inputs from the agent, tests pass them directly.
package policyexport

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"gopkg.in/yaml.v3"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/apiwarden/apiwarden/xds"
)

// Endpoint is one learned endpoint of a service.
type Endpoint struct {
	Method       string
	PathTemplate string // inventory template, {param} per segment
}

// Service is what the inventory knows about one server on one port.
type Service struct {
	Name      string
	Port      uint32
	Endpoints []Endpoint
}

// Input is everything an export is built from.
type Input struct {
	// Policy carries blocked sources, deny rules and the mode (Monitor).
	Policy xds.Policy
	// Services is the inventory, for allow-lists.
	Services []Service
	// Namespace of the Kubernetes objects; empty leaves it to kubectl.
	Namespace string
	// Selector (Istio) picks the workloads the policy applies to; empty
	// applies it to the whole namespace.
	Selector map[string]string
	// LabelKey is the pod label whose value is the service name, for the
	// Cilium endpoint selectors (default "app").
	LabelKey string
	// Envoy listeners turn the xds export into a full static bootstrap.
	Envoy []xds.EnvoyListener
	// AllowInventory adds the inventory allow-list to the Envoy RBAC.
	AllowInventory bool
}

// Formats are the values of --format.
var Formats = []string{"xds", "istio", "cilium"}

// Write renders in as format, encoded as "yaml" or "json". YAML output
// with several objects is a multi-document stream (kubectl apply -f);
// JSON is one object or, for several, a Kubernetes List.
func Write(w io.Writer, format, encoding string, in Input) error {
	var docs []any
	var err error
	switch format {
	case "xds":
		var d any
		d, err = Envoy(in)
		docs = []any{d}
	case "istio":
		docs, err = Istio(in)
	case "cilium":
		docs, err = Cilium(in)
	default:
		return fmt.Errorf("unknown format %q (want one of %s)", format, strings.Join(Formats, ", "))
	}
	if err != nil {
		return err
	}
	switch encoding {
	case "yaml":
		var buf bytes.Buffer
		enc := yaml.NewEncoder(&buf)
		enc.SetIndent(2)
		for _, d := range docs {
			if err := enc.Encode(d); err != nil {
				return err
			}
		}
		if err := enc.Close(); err != nil {
			return err
		}
		_, err := w.Write(buf.Bytes())
		return err
	case "json":
		var v any = docs[0]
		if len(docs) != 1 {
			v = map[string]any{"apiVersion": "v1", "kind": "List", "items": docs}
		}
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		_, err = w.Write(append(b, '\n'))
		return err
	}
	return fmt.Errorf("unknown encoding %q (want yaml or json)", encoding)
}

// Envoy is the policy as Envoy configuration: with listeners, a static
// bootstrap (envoy -c); without, the RBAC HTTP filter entry to place
// before the router in an existing listener's http_filters.
func Envoy(in Input) (any, error) {
	p := in.Policy
	if in.AllowInventory {
		for _, s := range in.Services {
			for _, e := range s.Endpoints {
				p.AllowOnly = append(p.AllowOnly, xds.Endpoint{Method: e.Method, PathTemplate: e.PathTemplate})
			}
		}
	}
	if len(in.Envoy) > 0 {
		b, err := xds.StaticBootstrap(in.Envoy, p)
		if err != nil {
			return nil, err
		}
		return xds.Plain(b)
	}
	rbac, err := xds.BuildRBAC(p)
	if err != nil {
		return nil, err
	}
	if err := rbac.ValidateAll(); err != nil {
		return nil, err
	}
	cfg, err := anypb.New(rbac)
	if err != nil {
		return nil, err
	}
	return xds.Plain(&hcmv3.HttpFilter{Name: wellknown.HTTPRoleBasedAccessControl, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: cfg}})
}

// Kubernetes object shapes, in the field order kubectl shows them.
type meta struct {
	Name        string            `yaml:"name" json:"name"`
	Namespace   string            `yaml:"namespace,omitempty" json:"namespace,omitempty"`
	Labels      map[string]string `yaml:"labels,omitempty" json:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty" json:"annotations,omitempty"`
}

type object struct {
	APIVersion string `yaml:"apiVersion" json:"apiVersion"`
	Kind       string `yaml:"kind" json:"kind"`
	Metadata   meta   `yaml:"metadata" json:"metadata"`
	Spec       any    `yaml:"spec" json:"spec"`
}

var managedBy = map[string]string{"app.kubernetes.io/managed-by": "apiwarden"}

type istioSpec struct {
	Selector *matchLabels `yaml:"selector,omitempty" json:"selector,omitempty"`
	Action   string       `yaml:"action" json:"action"`
	Rules    []istioRule  `yaml:"rules" json:"rules"`
}

type matchLabels struct {
	MatchLabels map[string]string `yaml:"matchLabels" json:"matchLabels"`
}

type istioRule struct {
	From []istioFrom `yaml:"from,omitempty" json:"from,omitempty"`
	To   []istioTo   `yaml:"to,omitempty" json:"to,omitempty"`
}

type istioFrom struct {
	Source struct {
		IPBlocks []string `yaml:"ipBlocks" json:"ipBlocks"`
	} `yaml:"source" json:"source"`
}

type istioTo struct {
	Operation istioOperation `yaml:"operation" json:"operation"`
}

type istioOperation struct {
	Methods []string `yaml:"methods,omitempty" json:"methods,omitempty"`
	Paths   []string `yaml:"paths" json:"paths"`
}

// Istio is one AuthorizationPolicy with action DENY: a rule for the
// blocked sources (ipBlocks: the peer address, as apiwarden's kernel
// guard sees it) and one per deny rule (Istio's trailing * is a prefix
// match). In monitor mode the policy carries istio.io/dry-run, so Istio
// evaluates and logs it without enforcing, as the agent does.
func Istio(in Input) ([]any, error) {
	spec := istioSpec{Action: "DENY", Rules: []istioRule{}}
	if len(in.Selector) > 0 {
		spec.Selector = &matchLabels{MatchLabels: in.Selector}
	}
	if len(in.Policy.BlockedSources) > 0 {
		var f istioFrom
		for _, p := range in.Policy.BlockedSources {
			f.Source.IPBlocks = append(f.Source.IPBlocks, p.Masked().String())
		}
		sort.Strings(f.Source.IPBlocks)
		spec.Rules = append(spec.Rules, istioRule{From: []istioFrom{f}})
	}
	for i, d := range in.Policy.Denies {
		if !strings.HasPrefix(d.PathPrefix, "/") {
			return nil, fmt.Errorf("deny %d: path prefix %q must start with /", i, d.PathPrefix)
		}
		op := istioOperation{Paths: []string{d.PathPrefix + "*"}}
		if d.Method != "" {
			op.Methods = []string{strings.ToUpper(d.Method)}
		}
		spec.Rules = append(spec.Rules, istioRule{To: []istioTo{{Operation: op}}})
	}
	m := meta{Name: "apiwarden-deny", Namespace: in.Namespace, Labels: managedBy}
	if in.Policy.Monitor {
		m.Annotations = map[string]string{"istio.io/dry-run": "true"}
	}
	return []any{object{APIVersion: "security.istio.io/v1", Kind: "AuthorizationPolicy", Metadata: m, Spec: spec}}, nil
}

type ciliumSpec struct {
	Description      string       `yaml:"description" json:"description"`
	EndpointSelector matchLabels  `yaml:"endpointSelector" json:"endpointSelector"`
	Ingress          []ciliumRule `yaml:"ingress" json:"ingress"`
	IngressDeny      []ciliumDeny `yaml:"ingressDeny,omitempty" json:"ingressDeny,omitempty"`
}

type ciliumRule struct {
	FromEntities []string      `yaml:"fromEntities" json:"fromEntities"`
	ToPorts      []ciliumPorts `yaml:"toPorts" json:"toPorts"`
}

type ciliumDeny struct {
	FromCIDR []string `yaml:"fromCIDR" json:"fromCIDR"`
}

type ciliumPorts struct {
	Ports []ciliumPort `yaml:"ports" json:"ports"`
	Rules ciliumL7     `yaml:"rules" json:"rules"`
}

type ciliumPort struct {
	Port     string `yaml:"port" json:"port"`
	Protocol string `yaml:"protocol" json:"protocol"`
}

type ciliumL7 struct {
	HTTP []ciliumHTTP `yaml:"http" json:"http"`
}

type ciliumHTTP struct {
	Method string `yaml:"method" json:"method"`
	Path   string `yaml:"path" json:"path"`
}

// Cilium is one CiliumNetworkPolicy per service: an L7 allow-list of the
// endpoints the inventory learned on each port (Cilium's L7 rules only
// allow, so an endpoint a deny rule covers is left out, and any call
// outside the list gets 403), plus an ingressDeny of the blocked sources.
// Pods are selected by LabelKey=service name.
func Cilium(in Input) ([]any, error) {
	key := in.LabelKey
	if key == "" {
		key = "app"
	}
	byName := map[string]map[uint32][]Endpoint{}
	for _, s := range in.Services {
		if byName[s.Name] == nil {
			byName[s.Name] = map[uint32][]Endpoint{}
		}
		byName[s.Name][s.Port] = append(byName[s.Name][s.Port], s.Endpoints...)
	}
	var deny []ciliumDeny
	if len(in.Policy.BlockedSources) > 0 {
		var cidrs []string
		for _, p := range in.Policy.BlockedSources {
			cidrs = append(cidrs, p.Masked().String())
		}
		sort.Strings(cidrs)
		deny = []ciliumDeny{{FromCIDR: cidrs}}
	}
	var out []any
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		rule := ciliumRule{FromEntities: []string{"all"}}
		ports := byName[name]
		for _, port := range slices.Sorted(maps.Keys(ports)) {
			pr := ciliumPorts{Ports: []ciliumPort{{Port: strconv.FormatUint(uint64(port), 10), Protocol: "TCP"}}}
			seen := map[ciliumHTTP]bool{}
			for _, e := range ports[port] {
				if denied(e, in.Policy.Denies) {
					continue
				}
				re, err := xds.TemplateRegex(e.PathTemplate)
				if err != nil {
					return nil, fmt.Errorf("service %s: %w", name, err)
				}
				h := ciliumHTTP{Method: strings.ToUpper(e.Method), Path: re}
				if !seen[h] {
					seen[h] = true
					pr.Rules.HTTP = append(pr.Rules.HTTP, h)
				}
			}
			sort.Slice(pr.Rules.HTTP, func(i, j int) bool {
				a, b := pr.Rules.HTTP[i], pr.Rules.HTTP[j]
				return a.Path < b.Path || a.Path == b.Path && a.Method < b.Method
			})
			if pr.Rules.HTTP == nil {
				pr.Rules.HTTP = []ciliumHTTP{} // nothing allowed on this port
			}
			rule.ToPorts = append(rule.ToPorts, pr)
		}
		spec := ciliumSpec{
			Description:      fmt.Sprintf("apiwarden: endpoints learned for %s; other calls get 403", name),
			EndpointSelector: matchLabels{MatchLabels: map[string]string{key: name}},
			Ingress:          []ciliumRule{rule},
			IngressDeny:      deny,
		}
		out = append(out, object{
			APIVersion: "cilium.io/v2", Kind: "CiliumNetworkPolicy",
			Metadata: meta{Name: "apiwarden-" + dnsLabel(name), Namespace: in.Namespace, Labels: managedBy},
			Spec:     spec,
		})
	}
	return out, nil
}

// denied reports whether a deny rule covers every call to e: same method
// (or any) and a template under the rule's prefix.
func denied(e Endpoint, denies []xds.Deny) bool {
	for _, d := range denies {
		if (d.Method == "" || strings.EqualFold(d.Method, e.Method)) && strings.HasPrefix(e.PathTemplate, d.PathPrefix) {
			return true
		}
	}
	return false
}

var notDNS = regexp.MustCompile(`[^a-z0-9-]+`)

// dnsLabel makes a service name usable in an object name (RFC 1123).
func dnsLabel(s string) string {
	s = strings.Trim(notDNS.ReplaceAllString(strings.ToLower(s), "-"), "-")
	if len(s) > 50 {
		s = strings.TrimRight(s[:50], "-")
	}
	if s == "" {
		s = "service"
	}
	return s
}

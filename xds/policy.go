// Package xds exports apiwarden's protection policy to Envoy and other xDS
// clients: blocked source prefixes and deny rules become an Envoy RBAC HTTP
// filter, served as an ECDS resource (envoy.config.core.v3.TypedExtensionConfig)
// that a mesh plugs into its own listeners with `config_discovery`, so the
// proxy enforces what the kernel enforces. Optionally an allow-list of the
// endpoints in the inventory turns unknown (shadow) endpoints away.
package xds

import (
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacconfigv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// FilterName is the name of the served extension config; Envoy listeners
// reference it in an HTTP filter's config_discovery.
const FilterName = "apiwarden.rbac"

// Deny refuses requests by method (optional) and path prefix.
type Deny struct {
	Method     string
	PathPrefix string
}

// Endpoint is a known endpoint for the allow-list; PathTemplate uses
// {param} placeholders as the inventory does.
type Endpoint struct {
	Method       string
	PathTemplate string
}

// Policy is what the agent enforces, in proxy terms.
type Policy struct {
	BlockedSources []netip.Prefix
	Denies         []Deny
	// AllowOnly, when non-empty, denies every request that matches none of
	// these endpoints.
	AllowOnly []Endpoint
	// Monitor puts the policies in shadow_rules instead of rules: Envoy
	// evaluates and counts them (rbac shadow stats) but lets every request
	// through, as the agent does in monitor mode. grpc-go ignores shadow
	// rules, so a monitor-mode proxyless server enforces nothing.
	Monitor bool
	// RateLimit, when set, adds an Envoy local rate-limit filter to the
	// Envoy listeners (grpc-go has no such filter, so proxyless servers do
	// not get it).
	RateLimit *RateLimit
}

// RateLimit is a token bucket shared by every connection of a listener.
type RateLimit struct {
	RequestsPerSecond uint32 `yaml:"requestsPerSecond"`
	Burst             uint32 `yaml:"burst"` // 0: same as RequestsPerSecond
}

// BuildRBAC turns a policy into an Envoy RBAC HTTP filter config: one DENY
// policy set, with a named policy per reason so Envoy's stats say which
// one fired.
func BuildRBAC(p Policy) (*rbacv3.RBAC, error) {
	policies := map[string]*rbacconfigv3.Policy{}
	if len(p.BlockedSources) > 0 {
		var ids []*rbacconfigv3.Principal
		for _, pf := range sortedPrefixes(p.BlockedSources) {
			ids = append(ids, &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_RemoteIp{RemoteIp: cidr(pf)}})
		}
		policies["blocked-sources"] = &rbacconfigv3.Policy{
			Permissions: []*rbacconfigv3.Permission{anyPermission()},
			Principals:  []*rbacconfigv3.Principal{orIDs(ids)},
		}
	}
	for i, d := range p.Denies {
		if !strings.HasPrefix(d.PathPrefix, "/") {
			return nil, fmt.Errorf("deny %d: path prefix %q must start with /", i, d.PathPrefix)
		}
		perm := pathPrefixPermission(d.PathPrefix)
		if d.Method != "" {
			perm = andPerms(methodPermission(d.Method), perm)
		}
		policies[fmt.Sprintf("deny-%d", i)] = &rbacconfigv3.Policy{
			Permissions: []*rbacconfigv3.Permission{perm},
			Principals:  []*rbacconfigv3.Principal{anyPrincipal()},
		}
	}
	if len(p.AllowOnly) > 0 {
		var known []*rbacconfigv3.Permission
		for _, e := range p.AllowOnly {
			re, err := TemplateRegex(e.PathTemplate)
			if err != nil {
				return nil, err
			}
			known = append(known, andPerms(methodPermission(e.Method), &rbacconfigv3.Permission{
				Rule: &rbacconfigv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{
					Rule: &matcherv3.PathMatcher_Path{Path: &matcherv3.StringMatcher{
						MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: re}},
					}},
				}},
			}))
		}
		policies["unknown-endpoint"] = &rbacconfigv3.Policy{
			Permissions: []*rbacconfigv3.Permission{{Rule: &rbacconfigv3.Permission_NotRule{
				NotRule: &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_OrRules{
					OrRules: &rbacconfigv3.Permission_Set{Rules: known},
				}},
			}}},
			Principals: []*rbacconfigv3.Principal{anyPrincipal()},
		}
	}
	rules := &rbacconfigv3.RBAC{Action: rbacconfigv3.RBAC_DENY, Policies: policies}
	if p.Monitor {
		return &rbacv3.RBAC{ShadowRules: rules, ShadowRulesStatPrefix: "apiwarden_"}, nil
	}
	return &rbacv3.RBAC{Rules: rules}, nil
}

// TemplateRegex turns "/users/{userId}/orders" into an RE2 anchored regex
// that matches one path segment per parameter, ignoring the query string.
func TemplateRegex(tmpl string) (string, error) {
	if !strings.HasPrefix(tmpl, "/") {
		return "", fmt.Errorf("path template %q must start with /", tmpl)
	}
	var b strings.Builder
	b.WriteString("^")
	for i, seg := range strings.Split(tmpl[1:], "/") {
		b.WriteString("/")
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			b.WriteString("[^/?]+")
		} else {
			b.WriteString(regexp.QuoteMeta(seg))
		}
		_ = i
	}
	b.WriteString(`(\?.*)?$`)
	return b.String(), nil
}

func cidr(p netip.Prefix) *corev3.CidrRange {
	return &corev3.CidrRange{AddressPrefix: p.Masked().Addr().String(), PrefixLen: wrapperspb.UInt32(uint32(p.Bits()))}
}

func sortedPrefixes(in []netip.Prefix) []netip.Prefix {
	out := append([]netip.Prefix(nil), in...)
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

func anyPermission() *rbacconfigv3.Permission {
	return &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_Any{Any: true}}
}

func anyPrincipal() *rbacconfigv3.Principal {
	return &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_Any{Any: true}}
}

func orIDs(ids []*rbacconfigv3.Principal) *rbacconfigv3.Principal {
	if len(ids) == 1 {
		return ids[0]
	}
	return &rbacconfigv3.Principal{Identifier: &rbacconfigv3.Principal_OrIds{OrIds: &rbacconfigv3.Principal_Set{Ids: ids}}}
}

func andPerms(a, b *rbacconfigv3.Permission) *rbacconfigv3.Permission {
	return &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_AndRules{AndRules: &rbacconfigv3.Permission_Set{Rules: []*rbacconfigv3.Permission{a, b}}}}
}

func methodPermission(m string) *rbacconfigv3.Permission {
	return &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_Header{Header: &routev3.HeaderMatcher{
		Name: ":method",
		HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
			MatchPattern: &matcherv3.StringMatcher_Exact{Exact: strings.ToUpper(m)},
		}},
	}}}
}

func pathPrefixPermission(prefix string) *rbacconfigv3.Permission {
	return &rbacconfigv3.Permission{Rule: &rbacconfigv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{
		Rule: &matcherv3.PathMatcher_Path{Path: &matcherv3.StringMatcher{
			MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: prefix},
		}},
	}}}
}

// ExtensionConfig wraps the RBAC filter as the ECDS resource Envoy fetches.
func ExtensionConfig(p Policy) (*corev3.TypedExtensionConfig, error) {
	rbac, err := BuildRBAC(p)
	if err != nil {
		return nil, err
	}
	if err := rbac.ValidateAll(); err != nil {
		return nil, fmt.Errorf("rbac config: %w", err)
	}
	anyCfg, err := anypb.New(rbac)
	if err != nil {
		return nil, fmt.Errorf("pack rbac config: %w", err)
	}
	return &corev3.TypedExtensionConfig{Name: FilterName, TypedConfig: anyCfg}, nil
}

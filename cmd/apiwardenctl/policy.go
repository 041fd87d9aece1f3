package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"gopkg.in/yaml.v3"

	apiwardenv1 "github.com/apiwarden/apiwarden/api/apiwarden/v1"
	"github.com/apiwarden/apiwarden/policyexport"
	"github.com/apiwarden/apiwarden/xds"
)

const policyUsage = `usage: apiwardenctl policy export --format xds|istio|cilium [flags]

Writes apiwarden's policy for a mesh or proxy that owns its configuration:
  xds     Envoy: the RBAC http filter (before the router in your listener), or
          with listeners in --config a whole static bootstrap (envoy -c)
  istio   AuthorizationPolicy with DENY rules (istio.io/dry-run in monitor mode)
  cilium  CiliumNetworkPolicy per service: L7 allow-list of the inventory

flags:
  -o yaml|json            encoding (default yaml)
  --config FILE           agent config: denyRules, mode, xdsEnvoyListeners, xdsRateLimit
  --inventory FILE        inventory JSON (apiwardenctl inventory -o json) instead of the agent's
  --blocklist FILE        blocklist JSON (apiwardenctl blocklist -o json) instead of the agent's
  --namespace NS          namespace of the Kubernetes objects
  --selector k=v[,k=v]    Istio workload selector (default: whole namespace)
  --label-key KEY         pod label holding the service name, for Cilium (default app)
  --allow-inventory       xds: also deny every call outside the inventory
  --mode monitor|protect  override the agent's mode
With both --inventory and --blocklist the agent is not contacted.
`

// agentConfig is the part of the agent's config file the export uses;
// unknown keys are ignored so any agent config file works.
type agentConfig struct {
	Mode      string `yaml:"mode"`
	DenyRules []struct {
		Method     string `yaml:"method"`
		PathPrefix string `yaml:"pathPrefix"`
	} `yaml:"denyRules"`
	XDSEnvoyListeners []xds.EnvoyListener `yaml:"xdsEnvoyListeners"`
	XDSRateLimit      *xds.RateLimit      `yaml:"xdsRateLimit"`
}

func policyCmd(ctx context.Context, g *globals, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("policy", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	g.output = "yaml"
	g.register(fs, "encoding: yaml or json")
	var format, configFile, invFile, blockFile, namespace, selector, labelKey, mode string
	var allowInv bool
	fs.StringVar(&format, "format", "", "xds, istio or cilium")
	fs.StringVar(&configFile, "config", "", "agent config file")
	fs.StringVar(&invFile, "inventory", "", "inventory JSON file")
	fs.StringVar(&blockFile, "blocklist", "", "blocklist JSON file")
	fs.StringVar(&namespace, "namespace", "", "namespace of the objects")
	fs.StringVar(&selector, "selector", "", "Istio workload selector k=v[,k=v]")
	fs.StringVar(&labelKey, "label-key", "app", "pod label holding the service name (Cilium)")
	fs.StringVar(&mode, "mode", "", "monitor or protect (default: the agent's)")
	fs.BoolVar(&allowInv, "allow-inventory", false, "xds: deny calls outside the inventory")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || pos[0] != "export" {
		return fmt.Errorf("%w: policy takes one subcommand, export\n%s", errUsage, policyUsage)
	}
	if format == "" {
		return fmt.Errorf("%w: policy export needs --format (%s)\n%s", errUsage, strings.Join(policyexport.Formats, ", "), policyUsage)
	}
	if !slices.Contains(policyexport.Formats, format) {
		return fmt.Errorf("%w: unknown format %q (want %s)", errUsage, format, strings.Join(policyexport.Formats, ", "))
	}
	if g.output != "yaml" && g.output != "json" {
		return fmt.Errorf("%w: -o must be yaml or json", errUsage)
	}
	if mode != "" && mode != "monitor" && mode != "protect" {
		return fmt.Errorf("%w: --mode must be monitor or protect", errUsage)
	}
	in := policyexport.Input{Namespace: namespace, LabelKey: labelKey, AllowInventory: allowInv}
	if selector != "" {
		in.Selector = map[string]string{}
		for _, kv := range strings.Split(selector, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return fmt.Errorf("%w: --selector %q: want k=v[,k=v]", errUsage, selector)
			}
			in.Selector[k] = v
		}
	}
	if configFile != "" {
		b, err := os.ReadFile(configFile)
		if err != nil {
			return err
		}
		var cfg agentConfig
		if err := yaml.Unmarshal(b, &cfg); err != nil {
			return fmt.Errorf("%s: %w", configFile, err)
		}
		for _, d := range cfg.DenyRules {
			in.Policy.Denies = append(in.Policy.Denies, xds.Deny{Method: d.Method, PathPrefix: d.PathPrefix})
		}
		in.Envoy, in.Policy.RateLimit = cfg.XDSEnvoyListeners, cfg.XDSRateLimit
		if mode == "" {
			mode = cfg.Mode
		}
	}

	inv, blocks := &apiwardenv1.ListInventoryResponse{}, &apiwardenv1.ListBlocksResponse{}
	if err := readJSON(invFile, inv); err != nil {
		return err
	}
	if err := readJSON(blockFile, blocks); err != nil {
		return err
	}
	if invFile == "" || blockFile == "" {
		conn, err := g.dial()
		if err != nil {
			return err
		}
		defer conn.Close()
		c := apiwardenv1.NewApiwardenClient(conn)
		ctx, cancel := context.WithTimeout(ctx, g.timeout)
		defer cancel()
		if invFile == "" {
			if inv, err = c.ListInventory(ctx, &apiwardenv1.ListInventoryRequest{}); err != nil {
				return err
			}
		}
		if blockFile == "" {
			if blocks, err = c.ListBlocks(ctx, &apiwardenv1.ListBlocksRequest{}); err != nil {
				return err
			}
		}
		if mode == "" {
			st, err := c.GetStatus(ctx, &apiwardenv1.GetStatusRequest{})
			if err != nil {
				return err
			}
			mode = st.GetMode()
		}
	}
	in.Policy.Monitor = mode == "monitor"
	for _, b := range blocks.GetBlocks() {
		p, err := netip.ParsePrefix(b.GetPrefix())
		if err != nil {
			return fmt.Errorf("blocklist entry %q: %w", b.GetPrefix(), err)
		}
		in.Policy.BlockedSources = append(in.Policy.BlockedSources, p)
	}
	in.Services = servicesOf(inv)
	return policyexport.Write(stdout, format, g.output, in)
}

// readJSON fills m from a file in the API's JSON shape; "" leaves m.
func readJSON(path string, m proto.Message) error {
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, m); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// servicesOf groups the inventory by service name and port.
func servicesOf(inv *apiwardenv1.ListInventoryResponse) []policyexport.Service {
	type key struct {
		name string
		port uint32
	}
	byKey := map[key]*policyexport.Service{}
	for _, e := range inv.GetEndpoints() {
		k := key{e.GetService().GetName(), e.GetService().GetPort()}
		s, ok := byKey[k]
		if !ok {
			s = &policyexport.Service{Name: k.name, Port: k.port}
			byKey[k] = s
		}
		s.Endpoints = append(s.Endpoints, policyexport.Endpoint{Method: e.GetMethod(), PathTemplate: e.GetPathTemplate()})
	}
	out := make([]policyexport.Service, 0, len(byKey))
	for _, s := range byKey {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Name < out[j].Name || out[i].Name == out[j].Name && out[i].Port < out[j].Port
	})
	return out
}

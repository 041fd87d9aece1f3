package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	apiwardenv1 "github.com/apiwarden/apiwarden/api/apiwarden/v1"
	"github.com/apiwarden/apiwarden/apimodel/behavior"
	"github.com/apiwarden/apiwarden/apimodel/inventory"
)

// specCommand runs "spec import" and "spec diff".
func specCommand(ctx context.Context, g *globals, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: spec import|diff SERVICE FILE", errUsage)
	}
	sub := args[0]
	fs := flag.NewFlagSet("spec "+sub, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	dataDir := "/var/lib/apiwarden"
	switch sub {
	case "import":
		g.register(fs, "unused")
		fs.StringVar(&dataDir, "data-dir", dataDir, "the agent's data directory")
	case "diff":
		g.register(fs, "output format: table or json")
	default:
		return fmt.Errorf("%w: unknown spec command %q", errUsage, sub)
	}
	pos, err := parseInterleaved(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return fmt.Errorf("%w: spec %s takes SERVICE FILE", errUsage, sub)
	}
	service, file := pos[0], pos[1]
	if service == "" || strings.ContainsAny(service, "/\\") || strings.HasPrefix(service, ".") {
		return fmt.Errorf("%w: bad service name %q", errUsage, service)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	sp, err := behavior.ParseSpec(data)
	if err != nil {
		return err
	}
	if sub == "import" {
		dir := filepath.Join(dataDir, "specs")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		dst := filepath.Join(dir, service+".yaml")
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "spec of %s installed in %s (the agent reads it at start)\n", service, dst)
		return err
	}
	if g.output != "table" && g.output != "json" {
		return fmt.Errorf("%w: -o must be table or json", errUsage)
	}
	conn, err := g.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	resp, err := apiwardenv1.NewApiwardenClient(conn).ListInventory(ctx, &apiwardenv1.ListInventoryRequest{Service: service})
	if err != nil {
		return err
	}
	var obs []inventory.Endpoint
	for _, ep := range resp.GetEndpoints() {
		obs = append(obs, inventory.Endpoint{Service: inventory.Service{Name: ep.GetService().GetName()},
			Method: ep.GetMethod(), PathTemplate: ep.GetPathTemplate()})
	}
	d := behavior.Diff(sp, service, obs)
	if g.output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(d)
	}
	for _, sec := range []struct {
		title string
		list  []string
	}{{"undocumented (shadow)", d.Undocumented}, {"deprecated, still called (zombie)", d.DeprecatedCalled},
		{"documented, never observed", d.Unobserved}} {
		fmt.Fprintf(stdout, "%s: %d\n", sec.title, len(sec.list))
		for _, e := range sec.list {
			fmt.Fprintf(stdout, "  %s\n", e)
		}
	}
	return nil
}

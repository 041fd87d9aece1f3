package policyexport

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/apiwarden/apiwarden/xds"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var sample = Input{
	Policy: xds.Policy{
		BlockedSources: []netip.Prefix{netip.MustParsePrefix("203.0.113.7/32"), netip.MustParsePrefix("198.51.100.0/24")},
		Denies:         []Deny{{Method: "delete", PathPrefix: "/admin"}, {PathPrefix: "/debug/"}},
	},
	Services: []Service{
		{Name: "shop", Port: 8080, Endpoints: []Endpoint{
			{Method: "GET", PathTemplate: "/items/{id}"},
			{Method: "POST", PathTemplate: "/orders"},
			{Method: "DELETE", PathTemplate: "/admin/users/{id}"},
			{Method: "GET", PathTemplate: "/debug/vars"},
		}},
		{Name: "Billing_API", Port: 9000, Endpoints: []Endpoint{{Method: "GET", PathTemplate: "/invoices/{invoiceId}/pdf"}}},
	},
	Namespace: "prod",
	Selector:  map[string]string{"app": "shop"},
}

type Deny = xds.Deny

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./policyexport -update creates it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test ./policyexport -update rewrites it):\n%s", path, got)
	}
}

func render(t *testing.T, format, enc string, in Input) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := Write(&b, format, enc, in); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestGoldenExports(t *testing.T) {
	withListener := sample
	withListener.Envoy = []xds.EnvoyListener{{Name: "ingress-http", Address: netip.MustParseAddrPort("0.0.0.0:10000"), Upstream: netip.MustParseAddrPort("127.0.0.1:8080")}}
	withListener.AllowInventory = true
	monitor := sample
	monitor.Policy.Monitor = true
	for _, c := range []struct {
		file, format, enc string
		in                Input
	}{
		{"xds-filter.json", "xds", "json", sample},
		{"xds-filter.yaml", "xds", "yaml", sample},
		{"xds-bootstrap.yaml", "xds", "yaml", withListener},
		{"istio.yaml", "istio", "yaml", sample},
		{"istio-monitor.yaml", "istio", "yaml", monitor},
		{"cilium.yaml", "cilium", "yaml", sample},
		{"cilium.json", "cilium", "json", sample},
	} {
		t.Run(c.file, func(t *testing.T) { golden(t, c.file, render(t, c.format, c.enc, c.in)) })
	}
}

// TestYAMLParsesAsKubernetesObjects decodes every document back and checks
// the fields kubectl needs.
func TestYAMLParsesAsKubernetesObjects(t *testing.T) {
	for _, format := range []string{"istio", "cilium"} {
		dec := yaml.NewDecoder(bytes.NewReader(render(t, format, "yaml", sample)))
		n := 0
		for {
			var obj struct {
				APIVersion string `yaml:"apiVersion"`
				Kind       string `yaml:"kind"`
				Metadata   struct {
					Name, Namespace string
				} `yaml:"metadata"`
				Spec map[string]any `yaml:"spec"`
			}
			if err := dec.Decode(&obj); err != nil {
				break
			}
			n++
			if obj.APIVersion == "" || obj.Kind == "" || obj.Metadata.Namespace != "prod" || len(obj.Spec) == 0 {
				t.Errorf("%s: %+v", format, obj)
			}
			if !regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`).MatchString(obj.Metadata.Name) {
				t.Errorf("%s: name %q is not a DNS label", format, obj.Metadata.Name)
			}
		}
		want := map[string]int{"istio": 1, "cilium": 2}[format]
		if n != want {
			t.Errorf("%s: %d documents, want %d", format, n, want)
		}
	}
}

// TestCiliumAllowListLeavesDeniedOut: Cilium L7 rules only allow, so the
// deny rules become absences from the list.
func TestCiliumAllowListLeavesDeniedOut(t *testing.T) {
	out := string(render(t, "cilium", "json", sample))
	for _, gone := range []string{"/admin/users", "/debug/vars"} {
		if strings.Contains(out, gone) {
			t.Errorf("%s still allowed", gone)
		}
	}
	var list struct {
		Items []struct {
			Spec struct {
				Ingress []struct {
					ToPorts []struct {
						Rules struct {
							HTTP []struct{ Method, Path string } `json:"http"`
						} `json:"rules"`
					} `json:"toPorts"`
				} `json:"ingress"`
			} `json:"spec"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatal(err)
	}
	for _, it := range list.Items {
		for _, h := range it.Spec.Ingress[0].ToPorts[0].Rules.HTTP {
			if _, err := regexp.Compile(h.Path); err != nil {
				t.Errorf("path %q: %v", h.Path, err)
			}
		}
	}
	re := regexp.MustCompile(list.Items[1].Spec.Ingress[0].ToPorts[0].Rules.HTTP[0].Path) // shop: /items/{id}
	if !re.MatchString("/items/42") || re.MatchString("/items/42/x") {
		t.Errorf("template regex %s", re)
	}
}

func TestUnknownFormat(t *testing.T) {
	if err := Write(&bytes.Buffer{}, "nginx", "yaml", sample); err == nil {
		t.Fatal("unknown format accepted")
	}
	if err := Write(&bytes.Buffer{}, "istio", "toml", sample); err == nil {
		t.Fatal("unknown encoding accepted")
	}
}

// Package deploy_test checks the deployment files offline: the plain
// manifests (and the Helm chart, see helm_test.go) decode strictly into
// k8s.io/api types, carry what the agent needs on a node, and embed an
// agent config the agent itself accepts.
package deploy_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/apiwarden/apiwarden/agent"
)

// objects decodes a multi-document manifest strictly (unknown fields are
// errors) into typed objects.
func objects(t *testing.T, name string, manifest []byte) []any {
	t.Helper()
	var out []any
	for i, doc := range bytes.Split(manifest, []byte("\n---")) {
		doc = bytes.TrimSpace(doc)
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			t.Fatalf("%s doc %d: %v", name, i, err)
		}
		var obj any
		switch tm.Kind {
		case "Namespace":
			obj = &corev1.Namespace{}
		case "ConfigMap":
			obj = &corev1.ConfigMap{}
		case "Service":
			obj = &corev1.Service{}
		case "DaemonSet":
			obj = &appsv1.DaemonSet{}
		case "ServiceMonitor":
			obj = &serviceMonitor{}
		case "Secret":
			obj = &corev1.Secret{}
		default:
			t.Fatalf("%s doc %d: unexpected kind %q", name, i, tm.Kind)
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			t.Fatalf("%s doc %d (%s): %v", name, i, tm.Kind, err)
		}
		out = append(out, obj)
	}
	return out
}

func stripComments(doc []byte) []byte {
	var b bytes.Buffer
	for _, l := range strings.Split(string(doc), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.Bytes()
}

// serviceMonitor is the part of monitoring.coreos.com/v1 the chart uses
// (the operator's Go types would pull in its whole module).
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector  metav1.LabelSelector `json:"selector"`
		Endpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path"`
			Interval      string `json:"interval"`
			Authorization *struct {
				Type        string                   `json:"type"`
				Credentials corev1.SecretKeySelector `json:"credentials"`
			} `json:"authorization,omitempty"`
		} `json:"endpoints"`
	} `json:"spec"`
}

var wantCaps = []corev1.Capability{"BPF", "PERFMON", "NET_ADMIN", "SYS_PTRACE", "DAC_READ_SEARCH", "CHECKPOINT_RESTORE", "SYS_RESOURCE"}

// checkAgentObjects checks the DaemonSet and its ConfigMap.
func checkAgentObjects(t *testing.T, objs []any, privileged bool) {
	t.Helper()
	var ds *appsv1.DaemonSet
	var cm *corev1.ConfigMap
	for _, o := range objs {
		switch v := o.(type) {
		case *appsv1.DaemonSet:
			ds = v
		case *corev1.ConfigMap:
			if _, ok := v.Data["config.yaml"]; ok {
				cm = v
			}
		}
	}
	if ds == nil || cm == nil {
		t.Fatalf("want a DaemonSet and its ConfigMap, got %d objects", len(objs))
	}
	spec := ds.Spec.Template.Spec
	if !spec.HostPID || !spec.HostNetwork {
		t.Error("the agent needs hostPID and hostNetwork")
	}
	if sel := ds.Spec.Selector.MatchLabels; len(sel) == 0 {
		t.Error("empty selector")
	} else {
		for k, v := range sel {
			if ds.Spec.Template.Labels[k] != v {
				t.Errorf("selector %s=%s does not match the pod labels", k, v)
			}
		}
	}
	c := spec.Containers[0]
	sc := c.SecurityContext
	if privileged {
		if sc.Privileged == nil || !*sc.Privileged {
			t.Error("privileged toggle not applied")
		}
	} else {
		if sc.Privileged != nil && *sc.Privileged {
			t.Error("privileged by default")
		}
		if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Add, wantCaps) {
			t.Errorf("capabilities %v, want %v", sc.Capabilities, wantCaps)
		}
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m.Name
	}
	vols := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		vols[v.Name] = v
	}
	for _, path := range []string{"/sys/fs/bpf", "/sys/kernel/tracing", "/sys/fs/cgroup", "/var/lib/apiwarden", "/etc/apiwarden"} {
		name, ok := mounts[path]
		if !ok {
			t.Errorf("no mount at %s", path)
			continue
		}
		v, ok := vols[name]
		if !ok {
			t.Errorf("mount %s: no volume %s", path, name)
			continue
		}
		if path != "/etc/apiwarden" && (v.HostPath == nil || v.HostPath.Path != path) {
			t.Errorf("%s must be the host's %s, got %+v", name, path, v.VolumeSource)
		}
		if path == "/etc/apiwarden" && (v.ConfigMap == nil || v.ConfigMap.Name != cm.Name) {
			t.Errorf("config volume does not use ConfigMap %s", cm.Name)
		}
	}
	// The embedded config must load in the agent as it is (strict keys)
	// and validate.
	f := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(f, []byte(cm.Data["config.yaml"]), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := agent.Default()
	if err := cfg.LoadFile(f); err != nil {
		t.Fatalf("embedded agent config: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("embedded agent config: %v", err)
	}
	port := c.Ports[0].ContainerPort
	if c.ReadinessProbe.HTTPGet.Port.IntValue() != int(port) || !strings.HasSuffix(cfg.APIAddr, ":"+strconv.Itoa(int(port))) {
		t.Errorf("probe port %v, api %s, container port %d disagree", c.ReadinessProbe.HTTPGet.Port, cfg.APIAddr, port)
	}
}

func TestPlainManifests(t *testing.T) {
	b, err := os.ReadFile("kubernetes/daemonset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	checkAgentObjects(t, objects(t, "daemonset.yaml", b), false)
}

// TestChartDashboardsMatch keeps the chart's copies of the dashboards
// (Helm reads only files inside the chart) equal to deploy/grafana.
func TestChartDashboardsMatch(t *testing.T) {
	src, _ := filepath.Glob("grafana/*.json")
	dst, _ := filepath.Glob("helm/apiwarden/dashboards/*.json")
	if len(src) == 0 || len(src) != len(dst) {
		t.Fatalf("dashboards %v vs chart copies %v (cp deploy/grafana/*.json deploy/helm/apiwarden/dashboards/)", src, dst)
	}
	for _, f := range src {
		a, _ := os.ReadFile(f)
		b, err := os.ReadFile(filepath.Join("helm/apiwarden/dashboards", filepath.Base(f)))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s: chart copy differs (cp deploy/grafana/*.json deploy/helm/apiwarden/dashboards/)", f)
		}
	}
}

func TestSystemdUnit(t *testing.T) {
	b, err := os.ReadFile("systemd/apiwarden.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	for _, c := range wantCaps {
		if !strings.Contains(unit, "AmbientCapabilities=") || !strings.Contains(unit, "CAP_"+string(c)) {
			t.Errorf("unit lacks CAP_%s", c)
		}
	}
	if !strings.Contains(unit, "ExecStart=/usr/local/bin/apiwarden agent") {
		t.Error("unit does not start the agent")
	}
}

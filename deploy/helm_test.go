package deploy_test

import (
	"fmt"
	"path"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/loader"
	"helm.sh/helm/v4/pkg/engine"
	corev1 "k8s.io/api/core/v1"
)

// render is `helm template` with Helm's own packages: load the chart,
// coalesce the values and run the template engine.
func render(t *testing.T, vals map[string]any) []any {
	t.Helper()
	files, err := renderFiles(vals)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var objs []any
	for _, n := range names {
		if path.Ext(n) != ".yaml" || strings.HasPrefix(path.Base(n), "_") {
			continue
		}
		objs = append(objs, objects(t, n, []byte(files[n]))...)
	}
	return objs
}

func kinds(objs []any) map[string]int {
	out := map[string]int{}
	for _, o := range objs {
		switch v := o.(type) {
		case *corev1.ConfigMap:
			if isDashboards(v) {
				out["ConfigMap/dashboards"]++
			} else {
				out["ConfigMap/config"]++
			}
		default:
			out[strings.TrimPrefix(fmt.Sprintf("%T", o), "*")]++
		}
	}
	return out
}

func TestChartRendersDefaults(t *testing.T) {
	objs := render(t, nil)
	checkAgentObjects(t, objs, false)
	k := kinds(objs)
	if k["deploy_test.serviceMonitor"] != 0 || k["ConfigMap/dashboards"] != 0 || k["v1.DaemonSet"] != 1 {
		t.Fatalf("toggles on by default: %v", k)
	}
}

func TestChartRendersToggles(t *testing.T) {
	objs := render(t, map[string]any{
		"privileged":     true,
		"serviceMonitor": map[string]any{"enabled": true},
		"apiToken":       map[string]any{"value": "s3cret"},
		"dashboards":     map[string]any{"enabled": true},
		"xdsPort":        0,
	})
	checkAgentObjects(t, objs, true)
	k := kinds(objs)
	if k["deploy_test.serviceMonitor"] != 1 || k["v1.Service"] != 1 || k["ConfigMap/dashboards"] != 1 || k["v1.Secret"] != 1 {
		t.Fatalf("kinds %v", k)
	}
	for _, o := range objs {
		if cm, ok := o.(*corev1.ConfigMap); ok {
			if _, isCfg := cm.Data["config.yaml"]; isCfg && strings.Contains(cm.Data["config.yaml"], "xdsAddr") {
				t.Error("xdsPort 0 still configures xDS")
			}
			if isDashboards(cm) && !strings.Contains(cm.Data["apiwarden-dashboard.json"], "apiwarden_http_requests_total") {
				t.Error("dashboard ConfigMap lacks the dashboard")
			}
		}
		if sm, ok := o.(*serviceMonitor); ok && (len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Path != "/metrics") {
			t.Errorf("service monitor %+v", sm.Spec)
		}
	}
}

func isDashboards(cm *corev1.ConfigMap) bool { return cm.Labels["grafana_dashboard"] == "1" }

// renderFiles runs the template engine and returns the rendered files.
func renderFiles(vals map[string]any) (map[string]string, error) {
	chrt, err := loader.Load("helm/apiwarden")
	if err != nil {
		return nil, err
	}
	rv, err := util.ToRenderValues(chrt, vals, common.ReleaseOptions{Name: "aw", Namespace: "apiwarden", IsInstall: true}, nil)
	if err != nil {
		return nil, err
	}
	return engine.Render(chrt, rv)
}

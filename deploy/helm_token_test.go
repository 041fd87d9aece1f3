package deploy_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/apiwarden/apiwarden/agent"
)

// agentConfig returns the DaemonSet and the agent config it embeds, loaded
// and validated by the agent.
func agentConfig(t *testing.T, objs []any) (*appsv1.DaemonSet, agent.Config, []*corev1.Secret) {
	t.Helper()
	var ds *appsv1.DaemonSet
	var secrets []*corev1.Secret
	cfg := agent.Default()
	for _, o := range objs {
		switch v := o.(type) {
		case *appsv1.DaemonSet:
			ds = v
		case *corev1.Secret:
			secrets = append(secrets, v)
		case *corev1.ConfigMap:
			if data, ok := v.Data["config.yaml"]; ok {
				f := filepath.Join(t.TempDir(), "config.yaml")
				if err := os.WriteFile(f, []byte(data), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := cfg.LoadFile(f); err != nil {
					t.Fatal(err)
				}
				if err := cfg.Validate(); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if ds == nil {
		t.Fatal("no DaemonSet")
	}
	return ds, cfg, secrets
}

// Without a token the API stays on loopback and the probes go there.
func TestChartLoopbackWithoutToken(t *testing.T) {
	ds, cfg, secrets := agentConfig(t, render(t, nil))
	c := ds.Spec.Template.Spec.Containers[0]
	if cfg.APIAddr != "127.0.0.1:9464" || cfg.APITokenFile != "" || len(secrets) != 0 {
		t.Errorf("api %s token %q secrets %d", cfg.APIAddr, cfg.APITokenFile, len(secrets))
	}
	if c.ReadinessProbe.HTTPGet.Host != "127.0.0.1" || c.LivenessProbe.HTTPGet.Host != "127.0.0.1" {
		t.Errorf("probes not on loopback: %+v", c.ReadinessProbe.HTTPGet)
	}
	if _, ok := ds.Spec.Template.Annotations["prometheus.io/scrape"]; ok {
		t.Error("scrape annotation for an API on loopback")
	}
	for _, m := range c.VolumeMounts {
		if m.Name == "api-token" {
			t.Error("token mounted without a token")
		}
	}
}

// With a token the API listens everywhere, the Secret is mounted where
// apiTokenFile points, and a private /metrics makes the ServiceMonitor send it.
func TestChartTokenSecret(t *testing.T) {
	for name, tc := range map[string]struct {
		token      map[string]any
		wantSecret bool
		secretName string
	}{
		"value":           {map[string]any{"value": "s3cret", "publicMetrics": false}, true, "aw-api-token"},
		"existing secret": {map[string]any{"existingSecret": "my-token", "key": "tok", "publicMetrics": false}, false, "my-token"},
	} {
		t.Run(name, func(t *testing.T) {
			objs := render(t, map[string]any{"apiToken": tc.token, "serviceMonitor": map[string]any{"enabled": true}})
			ds, cfg, secrets := agentConfig(t, objs)
			if cfg.APIAddr != "0.0.0.0:9464" || cfg.APIPublicMetrics {
				t.Errorf("api %s public metrics %v", cfg.APIAddr, cfg.APIPublicMetrics)
			}
			if (len(secrets) == 1) != tc.wantSecret {
				t.Fatalf("%d secrets", len(secrets))
			}
			key := "token"
			if k, ok := tc.token["key"].(string); ok {
				key = k
			}
			if tc.wantSecret && (secrets[0].Name != tc.secretName || secrets[0].StringData[key] != "s3cret") {
				t.Errorf("secret %s %v", secrets[0].Name, secrets[0].StringData)
			}
			spec := ds.Spec.Template.Spec
			var mount *corev1.VolumeMount
			for i, m := range spec.Containers[0].VolumeMounts {
				if m.Name == "api-token" {
					mount = &spec.Containers[0].VolumeMounts[i]
				}
			}
			if mount == nil || !mount.ReadOnly || filepath.Join(mount.MountPath, key) != cfg.APITokenFile {
				t.Fatalf("token mount %+v, apiTokenFile %q", mount, cfg.APITokenFile)
			}
			var vol *corev1.Volume
			for i, v := range spec.Volumes {
				if v.Name == "api-token" {
					vol = &spec.Volumes[i]
				}
			}
			if vol == nil || vol.Secret == nil || vol.Secret.SecretName != tc.secretName {
				t.Fatalf("token volume %+v", vol)
			}
			if spec.Containers[0].ReadinessProbe.HTTPGet.Host != "" {
				t.Error("probe pinned to loopback while the API listens everywhere")
			}
			for _, o := range objs {
				if sm, ok := o.(*serviceMonitor); ok {
					a := sm.Spec.Endpoints[0].Authorization
					if a == nil || a.Type != "Bearer" || a.Credentials.Name != tc.secretName || a.Credentials.Key != key {
						t.Errorf("service monitor authorization %+v", a)
					}
				}
			}
		})
	}
}

func TestChartServiceMonitorNeedsToken(t *testing.T) {
	_, err := renderFiles(map[string]any{"serviceMonitor": map[string]any{"enabled": true}})
	if err == nil || !strings.Contains(err.Error(), "serviceMonitor.enabled needs apiToken") {
		t.Fatalf("got %v", err)
	}
}

package tls

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apiwarden/apiwarden/apimodel/capture"
)

// serverCase starts one TLS server and checks the sensor sees the request
// a curl client sends and the response it gets.
func checkServer(t *testing.T, s *Sensor, c *collector, spid, port int, wantKind, path, bodyPart string) {
	t.Helper()
	if err := s.AttachPID(spid); err != nil {
		t.Fatal(err)
	}
	kind, detail := s.Visibility(spid)
	t.Logf("server visibility: %s %q", kind, detail)
	if kind != wantKind {
		t.Fatalf("visibility %q, want %q", kind, wantKind)
	}
	_, body := runClient(t, "curl", "-sk", "--http1.1", fmt.Sprintf("https://127.0.0.1:%d%s", port, path))
	if !strings.Contains(string(body), bodyPart) {
		t.Fatalf("curl got %q", body)
	}
	if !waitFor(t, 5*time.Second, func() bool {
		resp, _ := c.stream(t, spid, capture.SourceTLSWrite)
		return bytes.Contains(resp, []byte(bodyPart))
	}) {
		resp, _ := c.stream(t, spid, capture.SourceTLSWrite)
		st, _ := s.Stats()
		t.Fatalf("server write stream %q lacks the body; stats %+v", resp, st)
	}
	req, reqChunks := c.stream(t, spid, capture.SourceTLSRead)
	if !strings.HasPrefix(string(req), "GET "+path+" HTTP/1.1\r\n") {
		t.Errorf("server read %q", req)
	}
	checkKeys(t, reqChunks, port, true)
	_, respChunks := c.stream(t, spid, capture.SourceTLSWrite)
	checkKeys(t, respChunks, port, true)
}

// TestNodeStaticOpenSSL: node has OpenSSL linked in; the probes go on the
// node executable itself.
func TestNodeStaticOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node not installed")
	}
	s, c := startSensor(t)
	dir := t.TempDir()
	cert, key := writeCert(t, dir)
	port := freePort(t)
	js := fmt.Sprintf(`require('https').createServer({cert: require('fs').readFileSync(%q), key: require('fs').readFileSync(%q)},
  (req, res) => { res.setHeader('Content-Length', 10); res.end('node-hello'); }).listen(%d, '127.0.0.1');`, cert, key, port)
	cmd := exec.Command("node", "-e", js)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if err := s.AttachPID(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	waitPort(t, port)
	checkServer(t, s, c, cmd.Process.Pid, port, "openssl", "/node", "node-hello")
}

// TestNginxOpenSSL: nginx with TLS over the shared libssl.
func TestNginxOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("nginx"); err != nil {
		t.Skip("nginx not installed")
	}
	s, c := startSensor(t)
	dir := t.TempDir()
	cert, key := writeCert(t, dir)
	port := freePort(t)
	conf := fmt.Sprintf(`daemon off; master_process off; pid %[1]s/nginx.pid; error_log stderr error;
events { worker_connections 64; }
http { access_log off; client_body_temp_path %[1]s; proxy_temp_path %[1]s; fastcgi_temp_path %[1]s; uwsgi_temp_path %[1]s; scgi_temp_path %[1]s;
  server { listen 127.0.0.1:%[2]d ssl; ssl_certificate %[3]s; ssl_certificate_key %[4]s;
    location / { return 200 "nginx-hello"; } } }
`, dir, port, cert, key)
	cf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("nginx", "-c", cf, "-p", dir)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitPort(t, port)
	checkServer(t, s, c, cmd.Process.Pid, port, "openssl", "/nginx", "nginx-hello")
}

// TestGnuTLSClient: gnutls-cli (libgnutls) talks to the python server.
func TestGnuTLSClient(t *testing.T) {
	if _, err := exec.LookPath("gnutls-cli"); err != nil {
		t.Skip("gnutls-cli not installed")
	}
	s, c := startSensor(t)
	_, port := startPyServer(t, "1.3")
	req := "GET /size/7 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
	cmd := exec.Command("gnutls-cli", "--insecure", "-p", fmt.Sprint(port), "127.0.0.1")
	cmd.Stdin = strings.NewReader(req)
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	// Probes on the host's libgnutls are in place since New; AttachPID only
	// records the process for Visibility.
	_ = s.AttachPID(pid)
	cmd.Wait()
	if !strings.Contains(out.String(), "0123456") {
		t.Fatalf("gnutls-cli got %q", out.String())
	}
	if k, d := s.Visibility(pid); k != "gnutls" && k != "openssl" {
		t.Errorf("visibility %q %q", k, d)
	}
	if !waitFor(t, 5*time.Second, func() bool {
		resp, _ := c.stream(t, pid, capture.SourceTLSRead)
		return bytes.Contains(resp, []byte("0123456"))
	}) {
		t.Fatal("gnutls read stream lacks the body")
	}
	w, chunks := c.stream(t, pid, capture.SourceTLSWrite)
	if string(w) != req {
		t.Errorf("gnutls write stream %q", w)
	}
	checkKeys(t, chunks, port, false)
}

// TestAttachAfterStart: a process started after the sensor, attached
// through AttachPID as the exec hook would, has its first request seen.
// The python server dlopens libssl after start; the host libssl is probed
// from New on, and AttachPID's rescans catch libraries not known then.
func TestAttachAfterStart(t *testing.T) {
	s, c := startSensor(t)
	spid, port := startPyServer(t, "1.3")
	_ = s.AttachPID(spid)
	cpid, body := runClient(t, "curl", "-sk", "--http1.1", fmt.Sprintf("https://127.0.0.1:%d/size/3", port))
	if string(body) != "012" {
		t.Fatalf("curl got %q", body)
	}
	if !waitFor(t, 5*time.Second, func() bool {
		req, _ := c.stream(t, spid, capture.SourceTLSRead)
		resp, _ := c.stream(t, cpid, capture.SourceTLSRead)
		return bytes.HasPrefix(req, []byte("GET /size/3 ")) && bytes.HasSuffix(resp, []byte("\r\n\r\n012"))
	}) {
		t.Fatal("first request of new processes not captured")
	}
}

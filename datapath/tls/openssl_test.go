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

// pyServer is a python3 https server (OpenSSL through the ssl module) that
// answers GET /size/N with N bytes of a repeating pattern.
const pyServer = `
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        n = int(self.path.rsplit("/", 1)[1]) if self.path.startswith("/size/") else 5
        body = (b"0123456789abcdef" * (n // 16 + 1))[:n]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
if sys.argv[4] == "1.2":
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
srv = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
`

func startPyServer(t *testing.T, tlsVer string, env ...string) (pid, port int) {
	t.Helper()
	dir := t.TempDir()
	cert, key := writeCert(t, dir)
	script := filepath.Join(dir, "server.py")
	if err := os.WriteFile(script, []byte(pyServer), 0o600); err != nil {
		t.Fatal(err)
	}
	port = freePort(t)
	cmd := exec.Command("python3", script, fmt.Sprint(port), cert, key, tlsVer)
	cmd.Stderr = os.Stderr
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitPort(t, port)
	return cmd.Process.Pid, port
}

// runClient runs a client to completion and returns its pid and stdout.
func runClient(t *testing.T, name string, args ...string) (int, []byte) {
	t.Helper()
	cmd := exec.Command(name, args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return cmd.Process.Pid, out.Bytes()
}

func TestOpenSSLPythonCurl(t *testing.T) {
	for _, tc := range []struct {
		name, ver string
		size      int
	}{
		{"tls13", "1.3", 5},
		{"tls12", "1.2", 5},
		{"tls13-1MB", "1.3", 1 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, c := startSensor(t)
			spid, port := startPyServer(t, tc.ver)
			if err := s.AttachPID(spid); err != nil {
				t.Fatal(err)
			}
			if k, d := s.Visibility(spid); k != "openssl" {
				t.Fatalf("visibility of python = %q %q", k, d)
			} else {
				t.Logf("python: %s %s", k, d)
			}
			cpid, body := runClient(t, "curl", "-sk", "--http1.1", fmt.Sprintf("https://127.0.0.1:%d/size/%d", port, tc.size))
			if len(body) != tc.size {
				t.Fatalf("curl got %d bytes", len(body))
			}
			wantReq := fmt.Sprintf("GET /size/%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n", tc.size, port)
			ok := waitFor(t, 5*time.Second, func() bool {
				resp, _ := c.stream(t, cpid, capture.SourceTLSRead)
				return bytes.HasSuffix(resp, body)
			})
			if !ok {
				t.Fatalf("client read stream incomplete")
			}
			req, reqChunks := c.stream(t, cpid, capture.SourceTLSWrite)
			if !strings.HasPrefix(string(req), wantReq) {
				t.Errorf("client write stream = %q", req)
			}
			checkKeys(t, reqChunks, port, false)
			sreq, sreqChunks := c.stream(t, spid, capture.SourceTLSRead)
			if !bytes.Equal(sreq, req) {
				t.Errorf("server read %q, client wrote %q", sreq, req)
			}
			checkKeys(t, sreqChunks, port, true)
			sresp, srespChunks := c.stream(t, spid, capture.SourceTLSWrite)
			cresp, crespChunks := c.stream(t, cpid, capture.SourceTLSRead)
			if !bytes.Equal(sresp, cresp) || !bytes.HasPrefix(cresp, []byte("HTTP/1.0 200 OK\r\n")) && !bytes.HasPrefix(cresp, []byte("HTTP/1.1 200 OK\r\n")) {
				t.Errorf("server wrote %d bytes, client read %d (%.40q)", len(sresp), len(cresp), cresp)
			}
			checkKeys(t, srespChunks, port, true)
			checkKeys(t, crespChunks, port, false)
			if len(srespChunks) > 0 && len(reqChunks) > 0 && srespChunks[0].ConnID == 0 {
				t.Errorf("conn id 0")
			}
			st, _ := s.Stats()
			t.Logf("stats: %+v", st)
		})
	}
}

// TestPrivateLibsslFoundThroughMaps: a process using its own copy of libssl
// (a new inode, not among the host libraries probed at start, as in a
// container) is found through /proc/PID/maps once python has loaded it.
func TestPrivateLibsslFoundThroughMaps(t *testing.T) {
	s, c := startSensor(t)
	const sys = "/lib/x86_64-linux-gnu/libssl.so.3"
	data, err := os.ReadFile(sys)
	if err != nil {
		t.Skipf("no %s", sys)
	}
	lib := filepath.Join(t.TempDir(), "libssl.so.3")
	if err := os.WriteFile(lib, data, 0o755); err != nil {
		t.Fatal(err)
	}
	spid, port := startPyServer(t, "1.3", "LD_LIBRARY_PATH="+filepath.Dir(lib))
	if err := s.AttachPID(spid); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Points()[fmt.Sprintf("/proc/%d/root%s", spid, lib)]; !ok {
		t.Fatalf("private libssl not probed: %v", s.Points())
	}
	_, body := runClient(t, "curl", "-sk", "--http1.1", fmt.Sprintf("https://127.0.0.1:%d/size/4", port))
	if string(body) != "0123" {
		t.Fatalf("curl got %q", body)
	}
	if !waitFor(t, 5*time.Second, func() bool {
		req, _ := c.stream(t, spid, capture.SourceTLSRead)
		return bytes.HasPrefix(req, []byte("GET /size/4 HTTP/1.1\r\n"))
	}) {
		t.Fatal("request through the private libssl not captured")
	}
}

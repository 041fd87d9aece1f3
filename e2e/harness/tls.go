package harness

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Ports of the TLS servers inside the server namespace.
const (
	NginxTLSPort = 8443
	PyTLSPort    = 8444
	NodeTLSPort  = 8445
	GoTLSPort    = 8446
	GnuTLSPort   = 8447
)

// BigFileSize is the size of the static file the TLS nginx serves at
// /big/blob.json, above 1 MB so one response spans many TLS records.
const BigFileSize = 1536 << 10

// Certs are PEM files of a throwaway CA and a server certificate signed by
// it, valid for the server namespace's addresses.
type Certs struct {
	CA   string // CA certificate, for clients (curl --cacert)
	Cert string // server certificate
	Key  string // server key, PKCS#8
}

// GenCerts creates a self-signed CA and a server certificate for ips in dir.
// ECDSA P-256 keeps generation instant; every TLS stack here accepts it.
func GenCerts(dir string, ips ...string) (Certs, error) {
	c := Certs{CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, "server.pem"), Key: filepath.Join(dir, "server-key.pem")}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return c, fmt.Errorf("ca key: %w", err)
	}
	now := time.Now().Add(-time.Hour)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: Prefix + " test CA"},
		NotBefore:             now,
		NotAfter:              now.Add(48 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return c, fmt.Errorf("ca certificate: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return c, fmt.Errorf("parse ca: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return c, fmt.Errorf("server key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: Prefix + " server"},
		NotBefore:    now,
		NotAfter:     now.Add(48 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
	}
	for _, s := range ips {
		if ip := net.ParseIP(s); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return c, fmt.Errorf("server certificate: %w", err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return c, fmt.Errorf("encode key: %w", err)
	}
	for _, f := range []struct {
		path, typ string
		der       []byte
	}{{c.CA, "CERTIFICATE", caDER}, {c.Cert, "CERTIFICATE", der}, {c.Key, "PRIVATE KEY", pk}} {
		if err := os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), 0o600); err != nil {
			return c, fmt.Errorf("write %s: %w", filepath.Base(f.path), err)
		}
	}
	return c, nil
}

// BuildStrippedGoAPI builds e2e/testdata/goapi with -s -w into dir/goapi,
// so the Go TLS probes must find crypto/tls without a symbol table.
func BuildStrippedGoAPI(ctx context.Context, dir string) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "goapi")
	cmd := exec.CommandContext(ctx, "go", "build", "-ldflags=-s -w", "-o", out, "./e2e/testdata/goapi")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build stripped goapi: %w: %s", err, tail(string(b), 2000))
	}
	return out, nil
}

// StartGoAPITLS runs goapi serving HTTPS (HTTP/1.1 only) on GoTLSPort.
func (t *Topology) StartGoAPITLS(bin, dir string, c Certs, withLog bool) (*Server, error) {
	s, err := t.SpawnGoAPITLS(bin, dir, c, GoTLSPort, withLog)
	if err != nil {
		return nil, err
	}
	if err := s.WaitTCP(s.Addr, 10*time.Second); err != nil {
		s.Kill()
		return nil, err
	}
	s.CPUPids = []int{s.Pid()}
	return s, nil
}

// SpawnGoAPITLS starts goapi with TLS on port and returns at once, without
// waiting for it to listen (startup-gap measurements).
func (t *Topology) SpawnGoAPITLS(bin, dir string, c Certs, port int, withLog bool) (*Server, error) {
	var err error
	s := &Server{Service: "goapi", Port: port, Addr: fmt.Sprintf("%s:%d", t.SrvIP, port)}
	args := []string{bin, "-addr", fmt.Sprintf(":%d", port), "-tls-cert", c.Cert, "-tls-key", c.Key}
	name := fmt.Sprintf("goapi-tls-%d", port)
	if withLog {
		s.ReqLog = filepath.Join(dir, name+"-requests.log")
		args = append(args, "-log", s.ReqLog)
	}
	if s.Proc, err = StartInNS(t.SrvNS, name, filepath.Join(dir, name+".out"), nil, args...); err != nil {
		return nil, err
	}
	s.CPUPids = []int{s.Pid()}
	return s, nil
}

// StartNginxTLS runs nginx (one worker, shared libssl) with TLS 1.2 and 1.3
// on NginxTLSPort. It serves /ping, /gone (404), /status (204),
// /static/ and /big/blob.json (BigFileSize bytes).
func (t *Topology) StartNginxTLS(dir string, c Certs, withLog bool) (*Server, error) {
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		return nil, fmt.Errorf("find nginx: %w", err)
	}
	td, err := Testdata()
	if err != nil {
		return nil, err
	}
	tmpl, err := os.ReadFile(filepath.Join(td, "nginx-tls.conf.tmpl"))
	if err != nil {
		return nil, fmt.Errorf("read nginx template: %w", err)
	}
	ndir := filepath.Join(dir, "nginx-tls")
	if err := os.MkdirAll(filepath.Join(ndir, "big"), 0o755); err != nil {
		return nil, err
	}
	blob := make([]byte, BigFileSize)
	for i := range blob {
		blob[i] = 'b'
	}
	copy(blob, `{"blob":"`)
	copy(blob[len(blob)-2:], `"}`)
	if err := os.WriteFile(filepath.Join(ndir, "big", "blob.json"), blob, 0o644); err != nil {
		return nil, err
	}
	access := "access_log " + filepath.Join(ndir, "access.log") + " reqs;"
	if !withLog {
		access = "access_log off;"
	}
	conf := strings.NewReplacer("{{DIR}}", ndir, "{{PORT}}", strconv.Itoa(NginxTLSPort),
		"{{STATIC}}", filepath.Join(td, "static"), "{{CERT}}", c.Cert, "{{KEY}}", c.Key,
		"{{ACCESS}}", access).Replace(string(tmpl))
	confPath := filepath.Join(ndir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	s := &Server{Service: "nginx", Port: NginxTLSPort, Addr: fmt.Sprintf("%s:%d", t.SrvIP, NginxTLSPort)}
	if withLog {
		s.ReqLog = filepath.Join(ndir, "access.log")
	}
	if s.Proc, err = StartInNS(t.SrvNS, "nginx-tls", filepath.Join(dir, "nginx-tls.out"), nil,
		nginx, "-c", confPath, "-p", ndir, "-e", filepath.Join(ndir, "error.log")); err != nil {
		return nil, err
	}
	if err := s.WaitTCP(s.Addr, 10*time.Second); err != nil {
		s.Kill()
		return nil, err
	}
	s.CPUPids = append([]int{s.Pid()}, childPids(s.Pid())...)
	return s, nil
}

// StartPyTLS runs e2e/testdata/pyhttps.py (http.server behind the ssl
// module, so the shared libssl) on PyTLSPort.
func (t *Topology) StartPyTLS(dir string, c Certs) (*Server, error) {
	py, err := Python()
	if err != nil {
		return nil, err
	}
	td, err := Testdata()
	if err != nil {
		return nil, err
	}
	s := &Server{Port: PyTLSPort, Addr: fmt.Sprintf("%s:%d", t.SrvIP, PyTLSPort), ReqLog: filepath.Join(dir, "pytls-requests.log")}
	s.Service = filepath.Base(py)
	if real, err := filepath.EvalSymlinks(py); err == nil {
		s.Service = filepath.Base(real)
	}
	if s.Proc, err = StartInNS(t.SrvNS, "pyhttps", filepath.Join(dir, "pytls.out"), nil,
		py, filepath.Join(td, "pyhttps.py"), strconv.Itoa(PyTLSPort), c.Cert, c.Key, s.ReqLog); err != nil {
		return nil, err
	}
	if err := s.WaitTCP(s.Addr, 10*time.Second); err != nil {
		s.Kill()
		return nil, err
	}
	s.CPUPids = []int{s.Pid()}
	return s, nil
}

// NodeBin is the node interpreter the tests use: Debian's, which links
// OpenSSL statically, so the probes must find SSL_* inside the executable.
const NodeBin = "/usr/bin/node"

// StartNodeTLS runs e2e/testdata/nodehttps.js on NodeTLSPort.
func (t *Topology) StartNodeTLS(dir string, c Certs) (*Server, error) {
	if _, err := os.Stat(NodeBin); err != nil {
		return nil, fmt.Errorf("find node: %w", err)
	}
	td, err := Testdata()
	if err != nil {
		return nil, err
	}
	s := &Server{Service: "node", Port: NodeTLSPort, Addr: fmt.Sprintf("%s:%d", t.SrvIP, NodeTLSPort),
		ReqLog: filepath.Join(dir, "node-requests.log")}
	if real, err := filepath.EvalSymlinks(NodeBin); err == nil {
		s.Service = filepath.Base(real)
	}
	if s.Proc, err = StartInNS(t.SrvNS, "nodehttps", filepath.Join(dir, "node.out"), nil,
		NodeBin, filepath.Join(td, "nodehttps.js"), strconv.Itoa(NodeTLSPort), c.Cert, c.Key, s.ReqLog); err != nil {
		return nil, err
	}
	if err := s.WaitTCP(s.Addr, 15*time.Second); err != nil {
		s.Kill()
		return nil, err
	}
	s.CPUPids = []int{s.Pid()}
	return s, nil
}

// StartGnuTLS runs `gnutls-serv --http` (libgnutls) on GnuTLSPort. It
// answers every GET with a 200 HTML page describing the session.
func (t *Topology) StartGnuTLS(dir string, c Certs) (*Server, error) {
	bin, err := exec.LookPath("gnutls-serv")
	if err != nil {
		return nil, fmt.Errorf("find gnutls-serv: %w", err)
	}
	s := &Server{Service: "gnutls-serv", Port: GnuTLSPort, Addr: fmt.Sprintf("%s:%d", t.SrvIP, GnuTLSPort)}
	if s.Proc, err = StartInNS(t.SrvNS, "gnutls-serv", filepath.Join(dir, "gnutls.out"), nil,
		bin, "--http", "--x509certfile", c.Cert, "--x509keyfile", c.Key, "-p", strconv.Itoa(GnuTLSPort)); err != nil {
		return nil, err
	}
	if err := s.WaitTCP(s.Addr, 10*time.Second); err != nil {
		s.Kill()
		return nil, err
	}
	s.CPUPids = []int{s.Pid()}
	return s, nil
}

// ProcessStatus is one row of GET /v1/processes.
type ProcessStatus struct {
	Pid        U64    `json:"pid"`
	Comm       string `json:"comm"`
	Exe        string `json:"exe"`
	Ports      []U64  `json:"ports"`
	Visibility string `json:"visibility"`
	Reason     string `json:"reason"`
}

// Processes fetches GET /v1/processes.
func (a *Agent) Processes() ([]ProcessStatus, error) {
	var r struct {
		Processes []ProcessStatus `json:"processes"`
	}
	err := a.GetJSON("/v1/processes", &r)
	return r.Processes, err
}

package tls

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/apiwarden/apiwarden/apimodel/capture"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for uprobes")
	}
}

// collector keeps copies of every chunk the sensor reports.
type collector struct {
	mu     sync.Mutex
	chunks []capture.Chunk
}

func (c *collector) add(ch capture.Chunk) {
	ch.Data = bytes.Clone(ch.Data)
	c.mu.Lock()
	c.chunks = append(c.chunks, ch)
	c.mu.Unlock()
}

// stream reassembles the chunks of one (pid, source), checking the offsets
// are gapless and non-overlapping. It returns the bytes and the chunks' keys.
func (c *collector) stream(t *testing.T, pid int, src capture.Source) ([]byte, []capture.Chunk) {
	t.Helper()
	c.mu.Lock()
	var sel []capture.Chunk
	for _, ch := range c.chunks {
		if int(ch.PID) == pid && ch.Source == src {
			sel = append(sel, ch)
		}
	}
	c.mu.Unlock()
	sort.SliceStable(sel, func(i, j int) bool { return sel[i].Seq < sel[j].Seq })
	var out []byte
	next := uint32(0)
	for i, ch := range sel {
		if i == 0 {
			next = ch.Seq
		}
		if ch.Seq != next {
			t.Errorf("pid %d %s: chunk at %d, expected %d", pid, src, ch.Seq, next)
		}
		if uint32(len(ch.Data)) != ch.PayloadLen {
			t.Errorf("pid %d %s: truncated chunk %d/%d", pid, src, len(ch.Data), ch.PayloadLen)
		}
		out = append(out, ch.Data...)
		next = ch.Seq + ch.PayloadLen
	}
	return out, sel
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, cond func() bool) bool {
	t.Helper()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cond()
}

// startSensor starts a sensor and its reader for the test's lifetime.
func startSensor(t *testing.T) (*Sensor, *collector) {
	return startSensorCfg(t, Config{})
}

func startSensorCfg(t *testing.T, cfg Config) (*Sensor, *collector) {
	t.Helper()
	requireRoot(t)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := New(cfg, log)
	if err != nil {
		t.Fatalf("new sensor: %v", err)
	}
	c := &collector{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, c.add) }()
	t.Cleanup(func() {
		cancel()
		<-done
		s.Close()
	})
	return s, c
}

// writeCert writes a self-signed ECDSA cert for 127.0.0.1/localhost.
func writeCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitPort waits until something listens on 127.0.0.1:port.
func waitPort(t *testing.T, port int) {
	t.Helper()
	if !waitFor(t, 10*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	}) {
		t.Fatalf("nothing listens on port %d", port)
	}
}

// checkKeys demands every chunk's key has the server port on the right side.
func checkKeys(t *testing.T, chunks []capture.Chunk, serverPort int, serverSide bool) {
	t.Helper()
	for _, ch := range chunks {
		lo := netip.MustParseAddr("127.0.0.1")
		if ch.Key.Src.Addr() != lo || ch.Key.Dst.Addr() != lo {
			t.Errorf("chunk key %v: not loopback", ch.Key)
			return
		}
		// Reads: sender is the peer. Writes: sender is us.
		wantSrc := (ch.Source == capture.SourceTLSWrite) == serverSide
		if gotSrc := int(ch.Key.Src.Port()) == serverPort; gotSrc != wantSrc {
			t.Errorf("chunk %s key %v: server port %d on wrong side", ch.Source, ch.Key, serverPort)
			return
		}
	}
}

// buildGo builds testdata/gotls into out with extra build flags.
func buildGo(t *testing.T, out string, flags ...string) {
	t.Helper()
	args := append([]string{"build", "-o", out}, flags...)
	args = append(args, "./testdata/gotls")
	cmd := exec.Command("go", args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go build: %v", err)
	}
}

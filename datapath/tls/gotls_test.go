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

// TestGoTLSStripped runs a stripped Go HTTPS server and a Go client (the
// same binary) and checks both sides' plaintext streams.
func TestGoTLSStripped(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "awtls-gotls")
	buildGo(t, bin, "-ldflags=-s -w")
	cert, key := writeCert(t, dir)
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
			port := freePort(t)
			srv := exec.Command(bin, "-mode=server", fmt.Sprintf("-addr=127.0.0.1:%d", port),
				"-cert="+cert, "-key="+key, "-tls="+tc.ver)
			srv.Stderr = os.Stderr
			if err := srv.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
			spid := srv.Process.Pid
			if err := s.AttachPID(spid); err != nil {
				t.Fatal(err)
			}
			waitPort(t, port)
			kind, detail := s.Visibility(spid)
			if kind != "go-tls" || !strings.HasPrefix(detail, "go1.") {
				t.Fatalf("visibility %q %q", kind, detail)
			}
			t.Logf("server: %s %s", kind, detail)
			cpid, body := runClient(t, bin, "-mode=client", "-tls="+tc.ver,
				fmt.Sprintf("-url=https://127.0.0.1:%d/size/%d", port, tc.size))
			if len(body) != tc.size {
				t.Fatalf("client got %d bytes", len(body))
			}
			if !waitFor(t, 5*time.Second, func() bool {
				resp, _ := c.stream(t, cpid, capture.SourceTLSRead)
				return bytes.HasSuffix(resp, body)
			}) {
				resp, _ := c.stream(t, cpid, capture.SourceTLSRead)
				t.Fatalf("client read stream incomplete: %d bytes", len(resp))
			}
			req, reqChunks := c.stream(t, cpid, capture.SourceTLSWrite)
			if !strings.HasPrefix(string(req), fmt.Sprintf("GET /size/%d HTTP/1.1\r\n", tc.size)) {
				t.Errorf("client wrote %q", req)
			}
			checkKeys(t, reqChunks, port, false)
			sreq, sreqChunks := c.stream(t, spid, capture.SourceTLSRead)
			if !bytes.Equal(sreq, req) {
				t.Errorf("server read %q, client wrote %q", sreq, req)
			}
			checkKeys(t, sreqChunks, port, true)
			sresp, srespChunks := c.stream(t, spid, capture.SourceTLSWrite)
			cresp, _ := c.stream(t, cpid, capture.SourceTLSRead)
			if !bytes.Equal(sresp, cresp) || !bytes.HasPrefix(cresp, []byte("HTTP/1.1 200 OK\r\n")) {
				t.Errorf("server wrote %d bytes, client read %d (%.40q)", len(sresp), len(cresp), cresp)
			}
			checkKeys(t, srespChunks, port, true)
			st, _ := s.Stats()
			t.Logf("stats: %+v", st)
		})
	}
}

// TestGoTLSOtherToolchain builds the test server with an older Go release
// (fetched through GOTOOLCHAIN; skipped when it cannot be had) and checks
// the same probes read it.
func TestGoTLSOtherToolchain(t *testing.T) {
	requireRoot(t)
	const toolchain = "go1.22.12"
	dir := t.TempDir()
	src, err := os.ReadFile("testdata/gotls/main.go")
	if err != nil {
		t.Fatal(err)
	}
	mod := filepath.Join(dir, "mod")
	os.MkdirAll(mod, 0o755)
	os.WriteFile(filepath.Join(mod, "main.go"), src, 0o644)
	os.WriteFile(filepath.Join(mod, "go.mod"), []byte("module gotls\n\ngo 1.22\n"), 0o644)
	bin := filepath.Join(dir, "awtls-gotls122")
	cmd := exec.Command("go", "build", "-ldflags=-s -w", "-o", bin, ".")
	cmd.Dir = mod
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN="+toolchain, "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("%s not available: %v %s", toolchain, err, out)
	}
	s, c := startSensor(t)
	cert, key := writeCert(t, dir)
	port := freePort(t)
	srv := exec.Command(bin, "-mode=server", fmt.Sprintf("-addr=127.0.0.1:%d", port), "-cert="+cert, "-key="+key)
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	waitPort(t, port)
	checkServer(t, s, c, srv.Process.Pid, port, "go-tls", "/size/9", "012345678")
	if _, d := s.Visibility(srv.Process.Pid); !strings.HasPrefix(d, toolchain) || strings.Contains(d, "single-stepped") {
		t.Errorf("detail %q (want the read data point, no single-stepped probe)", d)
	}
}

// goReadCode is Read's tail as go1.26 compiles it: CALL runtime.memmove;
// (reload) ADDQ CX, 0x2e0(SI); [pad] TESTQ CX, CX; JE.
func goReadCode(base, memmove uint64, pad bool) []byte {
	code := []byte{0xe8, 0, 0, 0, 0}
	rel := int32(int64(memmove) - int64(base+5))
	code[1], code[2], code[3], code[4] = byte(rel), byte(rel>>8), byte(rel>>16), byte(rel>>24)
	code = append(code, 0x48, 0x8b, 0x4c, 0x24, 0x28)             // MOVQ 0x28(SP), CX
	code = append(code, 0x48, 0x01, 0x8e, 0xe0, 0x02, 0x00, 0x00) // ADDQ CX, 0x2e0(SI)
	if pad {
		code = append(code, 0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00) // NOPW
	}
	code = append(code, 0x48, 0x85, 0xc9)                   // TESTQ CX, CX
	return append(code, 0x0f, 0x84, 0xca, 0x00, 0x00, 0x00) // JE
}

func TestGoReadDataPoint(t *testing.T) {
	const base, memmove = 0x1000, 0x400
	for _, pad := range []bool{false, true} {
		code := goReadCode(base, memmove, pad)
		addr, reg, ok := goReadDataPoint(decode(code, base, 0), memmove)
		if !ok || addr != base+uint64(len(code))-6 || reg != 2 {
			t.Errorf("pad %v: got %#x reg %d ok %v, want the JE at %#x, RCX (2)", pad, addr, reg, ok, base+len(code)-6)
		}
	}
	// A call to another function, or the pattern twice: RET probes instead.
	if _, _, ok := goReadDataPoint(decode(goReadCode(base, memmove, false), base, 0), memmove+16); ok {
		t.Error("matched a call that is not runtime.memmove")
	}
	one := goReadCode(base, memmove, false)
	two := append(one, goReadCode(base+uint64(len(one)), memmove, false)...)
	if _, _, ok := goReadDataPoint(decode(two, base, 0), memmove); ok {
		t.Error("ambiguous pattern (twice) accepted")
	}
	// TEST of another register than the one added: no point.
	bad := goReadCode(base, memmove, false)
	bad[len(bad)-7] = 0xd2 // TESTQ DX, DX
	if _, _, ok := goReadDataPoint(decode(bad, base, 0), memmove); ok {
		t.Error("TEST of a different register accepted")
	}
}

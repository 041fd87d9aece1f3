package tls

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"github.com/apiwarden/apiwarden/apimodel/capture"
	dpcapture "github.com/apiwarden/apiwarden/datapath/capture"
)

// offLen is where a record's data length sits.
var offLen = int(unsafe.Offsetof(tlsBpfChunkEvent{}.Len))

// record builds a raw ring buffer record the way bpf/tls.c lays it out.
func record(ev tlsBpfChunkEvent, data []byte) []byte {
	ev.Len = uint32(len(data))
	copy(ev.Data[:], data)
	raw := (*[unsafe.Sizeof(tlsBpfChunkEvent{})]byte)(unsafe.Pointer(&ev))[:]
	return bytes.Clone(raw[:chunkHeaderSize+len(data)])
}

func TestDecodeChunkIPv4(t *testing.T) {
	var ev tlsBpfChunkEvent
	ev.TsNs = 1500
	copy(ev.Key.Saddr[:], []byte{127, 0, 0, 2})
	copy(ev.Key.Daddr[:], []byte{127, 0, 0, 1})
	ev.Key.Sport, ev.Key.Dport, ev.Key.Family = 40000, 443, 2
	ev.Seq, ev.PayloadLen, ev.Pid, ev.ConnId, ev.Source = 77, 9, 1234, 5, 3
	boot := time.Unix(1000, 0)
	c, err := decodeChunk(record(ev, []byte("GET / HTTP")[:9]), boot)
	if err != nil {
		t.Fatal(err)
	}
	want := capture.FlowKey{
		Src: netip.MustParseAddrPort("127.0.0.2:40000"),
		Dst: netip.MustParseAddrPort("127.0.0.1:443"),
	}
	if c.Key != want || c.Seq != 77 || string(c.Data) != "GET / HTT" || c.PayloadLen != 9 ||
		c.PID != 1234 || c.ConnID != 5 || c.Source != capture.SourceTLSRead || !c.Time.Equal(boot.Add(1500)) {
		t.Fatalf("decoded %+v", c)
	}
}

func TestDecodeChunkIPv6MappedIsIPv4(t *testing.T) {
	var ev tlsBpfChunkEvent
	a := netip.MustParseAddr("::ffff:10.1.2.3").As16()
	b := netip.MustParseAddr("2001:db8::1").As16()
	ev.Key.Saddr, ev.Key.Daddr, ev.Key.Family = a, b, 10
	ev.Key.Sport, ev.Key.Dport = 1, 2
	c, err := decodeChunk(record(ev, nil), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Key.Src.Addr() != netip.MustParseAddr("10.1.2.3") || c.Key.Dst.Addr() != netip.MustParseAddr("2001:db8::1") {
		t.Fatalf("key %v", c.Key)
	}
}

// TestDecodeChunkAtBound: a full MAX_CHUNK_DATA record decodes; a record
// claiming more than it holds is rejected, as is a short header.
func TestDecodeChunkAtBound(t *testing.T) {
	var ev tlsBpfChunkEvent
	ev.Key.Family = 2 // the probes emit only chunks whose socket they read
	full := bytes.Repeat([]byte{'x'}, len(ev.Data))
	raw := record(ev, full)
	c, err := decodeChunk(raw, time.Time{})
	if err != nil || len(c.Data) != len(ev.Data) {
		t.Fatalf("full record: %v, %d bytes", err, len(c.Data))
	}
	binary.LittleEndian.PutUint32(raw[offLen:], uint32(len(ev.Data)+1))
	if _, err := decodeChunk(raw, time.Time{}); !errors.Is(err, dpcapture.ErrBadLength) {
		t.Fatalf("overlong len: %v", err)
	}
	if _, err := decodeChunk(raw[:chunkHeaderSize-1], time.Time{}); !errors.Is(err, dpcapture.ErrShortRecord) {
		t.Fatalf("short header: %v", err)
	}
}

// TestCookieMatchesHeader keeps the Go copies of enum tls_dir / tls_mode
// and the counter names in step with bpf/include/tls_types.h.
func TestCookieMatchesHeader(t *testing.T) {
	src, err := os.ReadFile("../../bpf/include/tls_types.h")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{
		"TLS_DIR_READ": dirRead, "TLS_DIR_WRITE": dirWrite,
		"TLS_MODE_RET_INT32": modeRetInt32, "TLS_MODE_RET_EX": modeRetEx,
		"TLS_MODE_RET_INT64": modeRetInt64, "TLS_MODE_HANDSHAKE": modeHandshake,
	}
	for name, v := range want {
		m := regexp.MustCompile(name + `\s*=\s*(\d+)`).FindSubmatch(src)
		if m == nil {
			t.Errorf("%s not in header", name)
			continue
		}
		if got, _ := strconv.Atoi(string(m[1])); got != v {
			t.Errorf("%s = %d in header, %d in Go", name, got, v)
		}
	}
	// Counters are listed in order, starting at TLS_CNT_CALLS = 0.
	cnt := regexp.MustCompile(`(?m)^\s*TLS_CNT_([A-Z_]+)`).FindAllSubmatch(src, -1)
	if len(cnt) != len(counterNames)+1 { // + TLS_CNT_MAX
		t.Fatalf("header has %d counters, Go %d", len(cnt)-1, len(counterNames))
	}
	for i, name := range counterNames {
		if got := string(bytes.ToLower(cnt[i][1])); got != name {
			t.Errorf("counter %d: header %s, Go %s", i, got, name)
		}
	}
}

func BenchmarkDecodeChunk(b *testing.B) {
	var ev tlsBpfChunkEvent
	ev.Key.Family = 2
	raw := record(ev, bytes.Repeat([]byte{'x'}, 1024))
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeChunk(raw, time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
}

package procmon

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/apiwarden/apiwarden/apimodel/capture"
)

func record(t *testing.T, typ uint32, ev any) []byte {
	t.Helper()
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, procmonProcmonHdr{Type: typ})
	if err := binary.Write(&b, binary.LittleEndian, ev); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func cstr(dst []int8, s string) {
	for i := range len(s) {
		dst[i] = int8(s[i])
	}
}

func TestDecodeSock(t *testing.T) {
	c := clock{bootWall: time.Unix(1000, 0)}
	cases := []struct {
		name          string
		family        uint8
		saddr, daddr  []byte
		local, remote string
	}{
		{"ipv4", afInet, []byte{10, 0, 0, 1}, []byte{10, 0, 0, 2}, "10.0.0.1:8080", "10.0.0.2:5000"},
		{"ipv6", afInet6, netip.MustParseAddr("fd00::1").AsSlice(), netip.MustParseAddr("fd00::2").AsSlice(), "[fd00::1]:8080", "[fd00::2]:5000"},
		{"v4-mapped", afInet6, netip.MustParseAddr("::ffff:10.0.0.1").AsSlice(), netip.MustParseAddr("::ffff:10.0.0.2").AsSlice(), "10.0.0.1:8080", "10.0.0.2:5000"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var ev procmonSockEvent
			ev.TsNs = uint64(time.Second)
			ev.CgroupId = 77
			ev.Key.Family = tc.family
			copy(ev.Key.Saddr[:], tc.saddr)
			copy(ev.Key.Daddr[:], tc.daddr)
			ev.Key.Sport, ev.Key.Dport = 8080, 5000
			ev.Tgid, ev.Pid, ev.Netns, ev.Kind = 42, 43, 4026531840, uint8(capture.SockAccept)
			cstr(ev.Comm[:], "nginx")
			d, err := decodeRecord(record(t, recSock, ev), c)
			if err != nil {
				t.Fatal(err)
			}
			want := capture.SockEvent{
				Time: time.Unix(1001, 0), Kind: capture.SockAccept,
				Local: netip.MustParseAddrPort(tc.local), Remote: netip.MustParseAddrPort(tc.remote),
				TGID: 42, PID: 43, NetNS: 4026531840, CgroupID: 77, Comm: "nginx",
			}
			if d.sock == nil || *d.sock != want || d.proc != nil {
				t.Errorf("got %+v, want %+v", d.sock, want)
			}
		})
	}
}

func TestDecodeProc(t *testing.T) {
	var ev procmonAwProcEvent
	ev.Kind, ev.Tgid, ev.Ppid, ev.CgroupId = uint8(capture.ProcExec), 7, 1, 9
	cstr(ev.Comm[:], "curl")
	cstr(ev.Filename[:], "/usr/bin/curl")
	d, err := decodeRecord(record(t, recProc, ev), clock{})
	if err != nil {
		t.Fatal(err)
	}
	want := capture.ProcEvent{Time: time.Time{}, Kind: capture.ProcExec, TGID: 7, PPID: 1, CgroupID: 9, Comm: "curl", Filename: "/usr/bin/curl"}
	if d.proc == nil || *d.proc != want {
		t.Errorf("got %+v, want %+v", d.proc, want)
	}
	// A full-length name has no NUL; it must not run past the array.
	for i := range ev.Comm {
		ev.Comm[i] = 'x'
	}
	d, _ = decodeRecord(record(t, recProc, ev), clock{})
	if len(d.proc.Comm) != 16 {
		t.Errorf("unterminated comm decoded as %q", d.proc.Comm)
	}
}

func TestDecodeErrors(t *testing.T) {
	full := record(t, recProc, procmonAwProcEvent{})
	if _, err := decodeRecord(full[:len(full)-1], clock{}); !errors.Is(err, errShortRecord) {
		t.Errorf("short proc: %v", err)
	}
	if _, err := decodeRecord([]byte{1, 2}, clock{}); !errors.Is(err, errShortRecord) {
		t.Errorf("short header: %v", err)
	}
	if _, err := decodeRecord(record(t, 99, procmonAwProcEvent{}), clock{}); err == nil {
		t.Error("unknown type accepted")
	}
}

func BenchmarkDecodeSock(b *testing.B) {
	var buf bytes.Buffer
	binary.Write(&buf, binary.LittleEndian, procmonProcmonHdr{Type: recSock})
	binary.Write(&buf, binary.LittleEndian, procmonSockEvent{Kind: uint8(capture.SockAccept)})
	raw := buf.Bytes()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeRecord(raw, clock{}); err != nil {
			b.Fatal(err)
		}
	}
}

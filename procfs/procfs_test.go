package procfs

import (
	"net/netip"
	"os"
	"slices"
	"testing"
)

func TestParseTCP(t *testing.T) {
	cases := []struct {
		file string
		want []Socket
	}{
		{"testdata/tcp", []Socket{
			{netip.MustParseAddrPort("0.0.0.0:8080"), netip.MustParseAddrPort("0.0.0.0:0"), TCPListen, 31337},
			{netip.MustParseAddrPort("127.0.0.1:8080"), netip.MustParseAddrPort("127.0.0.1:54321"), TCPEstablished, 31338},
		}},
		{"testdata/tcp6", []Socket{
			{netip.MustParseAddrPort("[::]:80"), netip.MustParseAddrPort("[::]:0"), TCPListen, 4242},
			// v4-mapped rows of a dual-stack socket come out as IPv4.
			{netip.MustParseAddrPort("10.0.0.2:80"), netip.MustParseAddrPort("10.0.0.1:50000"), TCPEstablished, 4243},
			{netip.MustParseAddrPort("[fe80::5254:ff:fe00:12]:80"), netip.MustParseAddrPort("[::1]:50001"), TCPEstablished, 4244},
		}},
	}
	for _, c := range cases {
		f, err := os.Open(c.file)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseTCP(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s:\n got %v\nwant %v", c.file, got, c.want)
		}
	}
}

func TestContainerID(t *testing.T) {
	const id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	cases := map[string]string{
		"/system.slice/docker-" + id + ".scope": id,
		"/docker/" + id:                         id,
		"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234.slice/cri-containerd-" + id + ".scope": id,
		"/kubepods/burstable/pod8d6d4e4c-1111-2222-3333-444455556666/" + id:                                         id,
		"/machine.slice/libpod-" + id + ".scope/container":                                                          id,
		"/system.slice/crio-" + id + ".scope":                                                                       id,
		"/user.slice/user-0.slice/session-3.scope":                                                                  "",
		"/":                        "",
		"/docker/" + id[:63]:       "",
		"/docker/" + id[:63] + "G": "",
	}
	for in, want := range cases {
		if got := ContainerID(in); got != want {
			t.Errorf("ContainerID(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseCgroup(t *testing.T) {
	cases := map[string]string{
		"0::/system.slice/nginx.service\n":                "/system.slice/nginx.service",
		"12:cpu,cpuacct:/x\n1:name=systemd:/docker/abc\n": "/docker/abc",
		"12:cpu,cpuacct:/x\n":                             "/x",
		"1:name=systemd:/a\n0::/b\n":                      "/b",
		"":                                                "",
	}
	for in, want := range cases {
		if got := ParseCgroup(in); got != want {
			t.Errorf("ParseCgroup(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseStat(t *testing.T) {
	comm, ppid, err := ParseStat("1234 (we ird) (x)) S 42 1234 1234 0 -1 4194560")
	if err != nil || comm != "we ird) (x)" || ppid != 42 {
		t.Errorf("ParseStat = %q %d %v", comm, ppid, err)
	}
	if _, _, err := ParseStat("garbage"); err == nil {
		t.Error("garbage accepted")
	}
}

// TestSelf reads this test process from the real /proc.
func TestSelf(t *testing.T) {
	fs := New("")
	pid := uint32(os.Getpid())
	p, err := fs.Process(pid)
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	if p.Exe != exe || p.PPID != uint32(os.Getppid()) || p.NetNS == 0 || p.Comm == "" {
		t.Errorf("Process(self) = %+v, exe want %s", p, exe)
	}
	pids, err := fs.PIDs()
	if err != nil || !slices.Contains(pids, pid) {
		t.Errorf("PIDs() misses self: %v", err)
	}
	if _, err := fs.TCPSockets(pid); err != nil {
		t.Error(err)
	}
	if _, err := fs.SocketInodes(pid); err != nil {
		t.Error(err)
	}
}

func BenchmarkProcess(b *testing.B) {
	fs := New("")
	pid := uint32(os.Getpid())
	for b.Loop() {
		if _, err := fs.Process(pid); err != nil {
			b.Fatal(err)
		}
	}
}

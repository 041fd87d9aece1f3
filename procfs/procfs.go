// Package procfs reads the few /proc facts apiwarden needs to name the
// processes behind sockets: executable, comm, parent, cgroup, network
// namespace, socket inodes and the TCP socket tables of a namespace.
package procfs

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// TCP states as printed in /proc/net/tcp (include/net/tcp_states.h).
const (
	TCPEstablished = 0x01
	TCPListen      = 0x0A
)

// Process is what /proc says about one process.
type Process struct {
	PID    uint32
	PPID   uint32
	Comm   string
	Exe    string // readlink of /proc/PID/exe; "" for kernel threads
	Cgroup string // cgroup v2 path (or v1 systemd hierarchy)
	NetNS  uint32 // inode of /proc/PID/ns/net
}

// Socket is one row of /proc/PID/net/tcp{,6}.
type Socket struct {
	Local  netip.AddrPort
	Remote netip.AddrPort
	State  uint8
	Inode  uint64
}

// FS reads a proc filesystem mounted at Root.
type FS struct {
	Root string
}

// New returns an FS for root ("" means /proc).
func New(root string) FS {
	if root == "" {
		root = "/proc"
	}
	return FS{Root: root}
}

func (fs FS) path(pid uint32, elem ...string) string {
	return filepath.Join(append([]string{fs.Root, strconv.FormatUint(uint64(pid), 10)}, elem...)...)
}

// PIDs lists the processes (thread-group leaders) visible in /proc.
func (fs FS) PIDs() ([]uint32, error) {
	ents, err := os.ReadDir(fs.Root)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", fs.Root, err)
	}
	pids := make([]uint32, 0, len(ents))
	for _, e := range ents {
		if n, err := strconv.ParseUint(e.Name(), 10, 32); err == nil {
			pids = append(pids, uint32(n))
		}
	}
	return pids, nil
}

// Exe returns the executable path of pid.
func (fs FS) Exe(pid uint32) (string, error) {
	exe, err := os.Readlink(fs.path(pid, "exe"))
	if err != nil {
		return "", fmt.Errorf("read exe of %d: %w", pid, err)
	}
	// A replaced binary still runs; the suffix only confuses inventories.
	return strings.TrimSuffix(exe, " (deleted)"), nil
}

// Process reads comm, ppid, exe, cgroup and netns of pid. Fields that cannot
// be read (kernel threads have no exe) stay empty; only a vanished process is
// an error.
func (fs FS) Process(pid uint32) (Process, error) {
	p := Process{PID: pid}
	// stat, not status: status computes memory statistics and costs twice as
	// much, and this runs for every exec on the host.
	stat, err := os.ReadFile(fs.path(pid, "stat"))
	if err != nil {
		return p, fmt.Errorf("read stat of %d: %w", pid, err)
	}
	if p.Comm, p.PPID, err = ParseStat(string(stat)); err != nil {
		return p, fmt.Errorf("stat of %d: %w", pid, err)
	}
	p.Exe, _ = fs.Exe(pid)
	p.Cgroup, _ = fs.Cgroup(pid)
	p.NetNS, _ = fs.NetNS(pid)
	return p, nil
}

// ParseStat extracts comm and ppid from /proc/PID/stat. comm may hold spaces
// and parentheses, so it ends at the last ')'.
func ParseStat(s string) (comm string, ppid uint32, err error) {
	open := strings.IndexByte(s, '(')
	end := strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return "", 0, fmt.Errorf("stat %q: bad format", s)
	}
	f := strings.Fields(s[end+1:])
	if len(f) < 2 {
		return "", 0, fmt.Errorf("stat %q: bad format", s)
	}
	n, err := strconv.ParseUint(f[1], 10, 32)
	if err != nil {
		return "", 0, fmt.Errorf("stat ppid %q: %w", f[1], err)
	}
	return s[open+1 : end], uint32(n), nil
}

// Cgroup returns pid's cgroup path (see ParseCgroup).
func (fs FS) Cgroup(pid uint32) (string, error) {
	b, err := os.ReadFile(fs.path(pid, "cgroup"))
	if err != nil {
		return "", fmt.Errorf("read cgroup of %d: %w", pid, err)
	}
	return ParseCgroup(string(b)), nil
}

// NetNS returns the inode of pid's network namespace.
func (fs FS) NetNS(pid uint32) (uint32, error) {
	link, err := os.Readlink(fs.path(pid, "ns", "net"))
	if err != nil {
		return 0, fmt.Errorf("read netns of %d: %w", pid, err)
	}
	return parseNSLink(link)
}

// parseNSLink parses "net:[4026531840]".
func parseNSLink(link string) (uint32, error) {
	_, rest, ok := strings.Cut(link, "[")
	num, _, ok2 := strings.Cut(rest, "]")
	if !ok || !ok2 {
		return 0, fmt.Errorf("namespace link %q: bad format", link)
	}
	n, err := strconv.ParseUint(num, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("namespace link %q: %w", link, err)
	}
	return uint32(n), nil
}

// ParseCgroup picks the cgroup path from /proc/PID/cgroup: the unified (v2)
// hierarchy "0::/path" if present, else the v1 systemd hierarchy, else the
// first line's path.
func ParseCgroup(s string) string {
	var first, systemd string
	for line := range strings.SplitSeq(s, "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			return parts[2]
		}
		if parts[1] == "name=systemd" {
			systemd = parts[2]
		}
		if first == "" {
			first = parts[2]
		}
	}
	if systemd != "" {
		return systemd
	}
	return first
}

// SocketInodes lists the inodes of the sockets pid holds open.
func (fs FS) SocketInodes(pid uint32) ([]uint64, error) {
	dir := fs.path(pid, "fd")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list fds of %d: %w", pid, err)
	}
	var out []uint64
	for _, e := range ents {
		link, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil || !strings.HasPrefix(link, "socket:[") {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSuffix(link[len("socket:["):], "]"), 10, 64)
		if err == nil {
			out = append(out, n)
		}
	}
	return out, nil
}

// TCPSockets reads the IPv4 and IPv6 TCP tables of pid's network namespace.
func (fs FS) TCPSockets(pid uint32) ([]Socket, error) {
	var out []Socket
	for _, name := range []string{"tcp", "tcp6"} {
		f, err := os.Open(fs.path(pid, "net", name))
		if errors.Is(err, os.ErrNotExist) && name == "tcp6" {
			continue // IPv6 disabled
		}
		if err != nil {
			return nil, fmt.Errorf("open tcp table of %d: %w", pid, err)
		}
		socks, err := ParseTCP(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("parse %s of %d: %w", name, pid, err)
		}
		out = append(out, socks...)
	}
	return out, nil
}

// ParseTCP parses a /proc/net/tcp or tcp6 table.
func ParseTCP(r io.Reader) ([]Socket, error) {
	sc := bufio.NewScanner(r)
	var out []Socket
	header := true
	for sc.Scan() {
		if header {
			header = false
			continue
		}
		f := strings.Fields(sc.Text())
		if len(f) < 10 {
			continue
		}
		local, err := parseHexAddrPort(f[1])
		if err != nil {
			return nil, err
		}
		remote, err := parseHexAddrPort(f[2])
		if err != nil {
			return nil, err
		}
		st, err := strconv.ParseUint(f[3], 16, 8)
		if err != nil {
			return nil, fmt.Errorf("tcp state %q: %w", f[3], err)
		}
		inode, err := strconv.ParseUint(f[9], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("tcp inode %q: %w", f[9], err)
		}
		out = append(out, Socket{Local: local, Remote: remote, State: uint8(st), Inode: inode})
	}
	return out, sc.Err()
}

// parseHexAddrPort parses "0100007F:1F90": the address as the kernel's
// 32-bit words printed in host (little-endian) order, the port big-endian.
func parseHexAddrPort(s string) (netip.AddrPort, error) {
	a, p, ok := strings.Cut(s, ":")
	if !ok || (len(a) != 8 && len(a) != 32) {
		return netip.AddrPort{}, fmt.Errorf("tcp address %q: bad format", s)
	}
	raw, err := hex.DecodeString(a)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("tcp address %q: %w", s, err)
	}
	for i := 0; i+4 <= len(raw); i += 4 {
		raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("tcp port %q: %w", s, err)
	}
	var ip netip.Addr
	if len(raw) == 4 {
		ip = netip.AddrFrom4([4]byte(raw))
	} else {
		ip = netip.AddrFrom16([16]byte(raw)).Unmap()
	}
	return netip.AddrPortFrom(ip, uint16(port)), nil
}

// ContainerID extracts a container id from a cgroup path, "" on the host.
// Runtimes name the leaf differently: docker-<id>.scope (systemd driver),
// /docker/<id>, cri-containerd-<id>.scope, crio-<id>.scope,
// libpod-<id>.scope, kubepods/<qos>/pod<uid>/<id> (cgroupfs driver). All put
// a 64-hex id in one path segment; the deepest such segment wins.
func ContainerID(cgroupPath string) string {
	segs := strings.Split(cgroupPath, "/")
	for i := len(segs) - 1; i >= 0; i-- {
		s := strings.TrimSuffix(segs[i], ".scope")
		if j := strings.LastIndexByte(s, '-'); j >= 0 {
			s = s[j+1:]
		}
		if isHex64(s) {
			return s
		}
	}
	return ""
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Package harness builds the little world apiwarden's end-to-end tests and
// benchmarks run in: a server namespace and a client namespace, each joined
// to the root namespace by a veth pair, with real servers, real clients and
// the agent watching the host-side veths from the root namespace.
package harness

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Prefix marks every namespace and link the harness creates, so a stale
// cleanup can find leftovers of crashed runs without touching anything else.
const Prefix = "awe2e"

const ipForwardPath = "/proc/sys/net/ipv4/ip_forward"

// forwardStatePath remembers ip_forward from before the harness changed it,
// so a run killed before its cleanup is repaired by the next CleanupStale.
const forwardStatePath = "/run/" + Prefix + "-ip_forward"

// TopologyConfig selects the subnets of one topology. Zero values pick a
// random /30 pair in 10.231.0.0/16 (server) and 10.232.0.0/16 (client).
type TopologyConfig struct {
	// Subnet is the third octet used in both /16s; 0 means random.
	Subnet int
	// DisableOffload caps GSO on both veth ends so the agent sees wire-sized
	// segments instead of up to 64 KB GSO super-packets.
	DisableOffload bool
}

// Topology is two namespaces ("containers") reachable through the host:
//
//	cli ns eth0 10.232.N.2 <-> HostCli 10.232.N.1 | root ns, forwarding | HostSrv 10.231.N.1 <-> srv ns eth0 10.231.N.2
type Topology struct {
	ID      string
	SrvNS   string // e.g. awe2e-srv-1a2b3c
	CliNS   string
	HostSrv string // host-side veth of the server namespace, e.g. awe2e-s1a2b3c
	HostCli string
	SrvIP   string // server address inside SrvNS
	CliIP   string
	SrvGW   string // host-side address of HostSrv
	CliGW   string
	// IPv6 is true when the kernel can forward IPv6 between the veths without
	// turning on forwarding globally (per-interface force_forwarding, 6.17+).
	IPv6   bool
	SrvIP6 string // fd23:1:N::2
	CliIP6 string

	cfg        TopologyConfig
	log        *slog.Logger
	oldForward string
	undo       []func() error
	closed     bool
}

// Ifaces returns the host-side interfaces the agent should watch.
func (t *Topology) Ifaces() []string { return []string{t.HostSrv, t.HostCli} }

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// ip runs one `ip` command.
func ip(args ...string) error { return run("ip", args...) }

// NewTopology creates the namespaces, veths, addresses and routes and turns on
// IPv4 forwarding in the root namespace. Close undoes all of it; it is safe to
// call after a partial failure.
func NewTopology(cfg TopologyConfig, log *slog.Logger) (*Topology, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("random id: %w", err)
	}
	id := hex.EncodeToString(b[:])
	sub := cfg.Subnet
	if sub == 0 {
		sub = 1 + int(b[0])%250
	}
	t := &Topology{
		ID:      id,
		SrvNS:   Prefix + "-srv-" + id,
		CliNS:   Prefix + "-cli-" + id,
		HostSrv: Prefix + "-s" + id, // 12 chars, below IFNAMSIZ-1
		HostCli: Prefix + "-c" + id,
		SrvIP:   fmt.Sprintf("10.231.%d.2", sub),
		SrvGW:   fmt.Sprintf("10.231.%d.1", sub),
		CliIP:   fmt.Sprintf("10.232.%d.2", sub),
		CliGW:   fmt.Sprintf("10.232.%d.1", sub),
		SrvIP6:  fmt.Sprintf("fd23:1:%x::2", sub),
		CliIP6:  fmt.Sprintf("fd23:2:%x::2", sub),
		cfg:     cfg,
		log:     log.With("component", "harness"),
	}
	if err := t.setup(); err != nil {
		_ = t.Close()
		return nil, err
	}
	return t, nil
}

func (t *Topology) setup() error {
	old, err := os.ReadFile(ipForwardPath)
	if err != nil {
		return fmt.Errorf("read ip_forward: %w", err)
	}
	t.oldForward = strings.TrimSpace(string(old))
	// The first live topology records the host's own value; the last one to
	// close puts it back, so concurrent users (a test and a benchmark) do not
	// switch forwarding off under each other.
	if _, err := os.Stat(forwardStatePath); err != nil {
		_ = os.WriteFile(forwardStatePath, []byte(t.oldForward), 0o644)
	}
	if err := os.WriteFile(ipForwardPath, []byte("1"), 0o644); err != nil {
		return fmt.Errorf("enable ip_forward: %w", err)
	}
	t.undo = append(t.undo, func() error {
		restoreForwarding()
		return nil
	})
	owner := ownerPath(t.ID)
	if err := os.WriteFile(owner, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return fmt.Errorf("write owner file: %w", err)
	}
	t.undo = append(t.undo, func() error { return os.Remove(owner) })
	// Global IPv6 forwarding would make the host ignore router advertisements
	// on its real interfaces, so IPv6 is only used with per-interface forcing.
	_, err = os.Stat("/proc/sys/net/ipv6/conf/lo/force_forwarding")
	t.IPv6 = err == nil
	for _, side := range []struct{ ns, host, addr, gw, addr6 string }{
		{t.SrvNS, t.HostSrv, t.SrvIP, t.SrvGW, t.SrvIP6},
		{t.CliNS, t.HostCli, t.CliIP, t.CliGW, t.CliIP6},
	} {
		if err := ip("netns", "add", side.ns); err != nil {
			return fmt.Errorf("create namespace: %w", err)
		}
		ns := side.ns
		t.undo = append(t.undo, func() error { return DeleteNamespace(ns) })
		peer := side.host + "p"
		if err := ip("link", "add", side.host, "type", "veth", "peer", "name", peer, "netns", side.ns); err != nil {
			return fmt.Errorf("create veth: %w", err)
		}
		host := side.host
		t.undo = append(t.undo, func() error {
			if _, err := os.Stat("/sys/class/net/" + host); err != nil {
				return nil // went away with its namespace
			}
			return ip("link", "del", host)
		})
		steps := [][]string{
			{"addr", "add", side.gw + "/30", "dev", side.host},
			{"link", "set", side.host, "up"},
			{"-n", side.ns, "link", "set", peer, "name", "eth0"},
			{"-n", side.ns, "addr", "add", side.addr + "/30", "dev", "eth0"},
			{"-n", side.ns, "link", "set", "eth0", "up"},
			{"-n", side.ns, "link", "set", "lo", "up"},
			{"-n", side.ns, "route", "add", "default", "via", side.gw},
		}
		if t.IPv6 {
			gw6 := strings.TrimSuffix(side.addr6, "2") + "1"
			steps = append(steps,
				[]string{"-6", "addr", "add", gw6 + "/64", "dev", side.host, "nodad"},
				[]string{"-n", side.ns, "-6", "addr", "add", side.addr6 + "/64", "dev", "eth0", "nodad"},
				[]string{"-n", side.ns, "-6", "route", "add", "default", "via", gw6})
		}
		for _, s := range steps {
			if err := ip(s...); err != nil {
				return fmt.Errorf("configure %s: %w", side.ns, err)
			}
		}
		if t.IPv6 {
			// Dies with the interface, so there is nothing to restore.
			if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+side.host+"/force_forwarding", []byte("1"), 0o644); err != nil {
				return fmt.Errorf("ipv6 force_forwarding: %w", err)
			}
		}
		if t.cfg.DisableOffload {
			// Capping the GSO size at one MSS makes the stack emit wire-sized
			// segments; real containers keep GSO on, so this is opt-in.
			for _, args := range [][]string{
				{"link", "set", "dev", side.host, "gso_max_size", "1500"},
				{"-n", side.ns, "link", "set", "dev", "eth0", "gso_max_size", "1500"},
			} {
				if err := ip(args...); err != nil {
					return fmt.Errorf("limit gso: %w", err)
				}
			}
		}
	}
	t.log.Info("topology up", "srv", t.SrvNS, "cli", t.CliNS, "ifaces", t.Ifaces())
	return nil
}

// CheckReach waits until the client namespace can open a TCP connection to
// addr ("ip:port"), proving addresses, routes and forwarding. It sends no data,
// so servers log nothing.
func (t *Topology) CheckReach(addr string, timeout time.Duration) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("check reach: %w", err)
	}
	deadline := time.Now().Add(timeout)
	for {
		err := run("ip", "netns", "exec", t.CliNS, "timeout", "2", "bash", "-c",
			fmt.Sprintf("exec 3<>/dev/tcp/%s/%s", host, port))
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("client namespace cannot reach %s: %w", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Close removes everything NewTopology created, in reverse order, and
// restores ip_forward. It returns the first error but always runs every step.
func (t *Topology) Close() error {
	if t.closed {
		return nil
	}
	t.closed = true
	var errs []error
	for i := len(t.undo) - 1; i >= 0; i-- {
		if err := t.undo[i](); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// DeleteNamespace kills every process still inside ns and deletes it.
func DeleteNamespace(ns string) error {
	out, _ := exec.Command("ip", "netns", "pids", ns).Output()
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	return ip("netns", "del", ns)
}

func ownerPath(id string) string { return "/run/" + Prefix + "-" + id + ".owner" }

// ownerAlive reports whether the process that created topology id still runs.
func ownerAlive(id string) bool {
	b, err := os.ReadFile(ownerPath(id))
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return false
	}
	err = syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// liveTopologies counts topologies whose owner process still runs.
func liveTopologies() int {
	files, _ := filepath.Glob("/run/" + Prefix + "-*.owner")
	n := 0
	for _, f := range files {
		id := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), Prefix+"-"), ".owner")
		if ownerAlive(id) {
			n++
		} else {
			_ = os.Remove(f)
		}
	}
	return n
}

// restoreForwarding puts ip_forward back when no live topology needs it.
func restoreForwarding() {
	if liveTopologies() > 0 {
		return
	}
	if old, err := os.ReadFile(forwardStatePath); err == nil {
		_ = os.WriteFile(ipForwardPath, old, 0o644)
		_ = os.Remove(forwardStatePath)
	}
}

// CleanupStale removes namespaces and links left behind by earlier runs that
// died before their cleanup ran. Only names with the harness prefix whose
// creating process is gone are touched, so concurrent runs are left alone.
func CleanupStale(log *slog.Logger) {
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], Prefix+"-") {
			continue
		}
		if ownerAlive(f[0][strings.LastIndexByte(f[0], '-')+1:]) {
			continue
		}
		if err := DeleteNamespace(f[0]); err != nil && log != nil {
			log.Warn("stale namespace", "ns", f[0], "err", err)
		}
	}
	ents, _ := os.ReadDir("/sys/class/net")
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, Prefix+"-") || len(name) < len(Prefix)+2 {
			continue
		}
		if ownerAlive(name[len(Prefix)+2:]) { // awe2e-s<id>, awe2e-c<id>
			continue
		}
		_ = ip("link", "del", name)
	}
	restoreForwarding()
}

package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

// prefix marks every namespace, link, nft table and file this benchmark
// creates, so a later run can remove leftovers of a killed one.
const prefix = "awflood"

// side is one namespace joined to the root namespace by a veth pair.
type side struct {
	NS   string // awflood-att-<id>
	Host string // host-side veth, awflood-a<id>
	IP   string // address of eth0 inside NS
	GW   string // address of Host
}

// topology is three namespaces routed through the root namespace:
//
//	att ns eth0 10.233.N.2 -> HostAtt (guard here) | root ns | HostSrv <- srv ns eth0 10.235.N.2
//	cli ns eth0 10.234.N.2 -> HostCli               |         |
type topology struct {
	ID            string
	Att, Cli, Srv side
	undo          []func() error
	closed        bool
}

func sh(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func ownerFile(id string) string { return "/run/" + prefix + "-" + id + ".owner" }

// newTopology builds the three namespaces; close undoes whatever was built,
// also after a partial failure.
func newTopology() (*topology, error) {
	var b [2]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("random id: %w", err)
	}
	id := hex.EncodeToString(b[:])
	n := 1 + int(b[0])%250
	mk := func(role string, octet int) side {
		return side{
			NS:   fmt.Sprintf("%s-%s-%s", prefix, role, id),
			Host: fmt.Sprintf("%s-%c%s", prefix, role[0], id), // 13 chars < IFNAMSIZ
			IP:   fmt.Sprintf("10.%d.%d.2", octet, n),
			GW:   fmt.Sprintf("10.%d.%d.1", octet, n),
		}
	}
	t := &topology{ID: id, Att: mk("att", 233), Cli: mk("cli", 234), Srv: mk("srv", 235)}
	if err := t.setup(); err != nil {
		return nil, errors.Join(err, t.close())
	}
	return t, nil
}

func (t *topology) setup() error {
	owner := ownerFile(t.ID)
	if err := os.WriteFile(owner, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return fmt.Errorf("write owner file: %w", err)
	}
	t.undo = append(t.undo, func() error { return os.Remove(owner) })
	for _, s := range []side{t.Att, t.Cli, t.Srv} {
		if err := sh("ip", "netns", "add", s.NS); err != nil {
			return fmt.Errorf("create namespace: %w", err)
		}
		ns := s.NS
		t.undo = append(t.undo, func() error { return deleteNamespace(ns) })
		if err := sh("ip", "link", "add", s.Host, "type", "veth", "peer", "name", s.Host+"p", "netns", s.NS); err != nil {
			return fmt.Errorf("create veth: %w", err)
		}
		host := s.Host
		t.undo = append(t.undo, func() error {
			if _, err := os.Stat("/sys/class/net/" + host); err != nil {
				return nil // went away with its namespace
			}
			return sh("ip", "link", "del", host)
		})
		for _, args := range [][]string{
			{"addr", "add", s.GW + "/30", "dev", s.Host},
			{"link", "set", s.Host, "up"},
			{"-n", s.NS, "link", "set", s.Host + "p", "name", "eth0"},
			{"-n", s.NS, "addr", "add", s.IP + "/30", "dev", "eth0"},
			{"-n", s.NS, "link", "set", "eth0", "up"},
			{"-n", s.NS, "link", "set", "lo", "up"},
			{"-n", s.NS, "route", "add", "default", "via", s.GW},
		} {
			if err := sh("ip", args...); err != nil {
				return fmt.Errorf("configure %s: %w", s.NS, err)
			}
		}
	}
	return t.forward()
}

// forward turns on IPv4 forwarding for the three host-side veths only, so
// the host's global ip_forward is never touched. A global ip_forward change
// by someone else resets every device's flag, so it is re-applied before each
// window.
func (t *topology) forward() error {
	for _, s := range []side{t.Att, t.Cli, t.Srv} {
		path := "/proc/sys/net/ipv4/conf/" + s.Host + "/forwarding"
		if cur, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(cur)) == "1" {
			continue
		}
		if err := os.WriteFile(path, []byte("1"), 0o644); err != nil {
			return fmt.Errorf("enable forwarding on %s: %w", s.Host, err)
		}
	}
	return nil
}

// close removes everything in reverse order; it runs every step and returns
// all errors.
func (t *topology) close() error {
	if t.closed {
		return nil
	}
	t.closed = true
	var errs []error
	for i := len(t.undo) - 1; i >= 0; i-- {
		errs = append(errs, t.undo[i]())
	}
	return errors.Join(errs...)
}

// deleteNamespace kills what still runs inside ns and deletes it.
func deleteNamespace(ns string) error {
	out, _ := exec.Command("ip", "netns", "pids", ns).Output()
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	return sh("ip", "netns", "del", ns)
}

// ownerAlive reports whether the run that created id still runs.
func ownerAlive(id string) bool {
	b, err := os.ReadFile(ownerFile(id))
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

// cleanupStale removes namespaces, links and nft tables of earlier runs whose
// process is gone; a concurrent live run is left alone.
func cleanupStale() {
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], prefix+"-") {
			continue
		}
		id := f[0][strings.LastIndexByte(f[0], '-')+1:]
		if !ownerAlive(id) {
			_ = deleteNamespace(f[0])
			_ = os.Remove(ownerFile(id))
		}
	}
	ents, _ := os.ReadDir("/sys/class/net")
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, prefix+"-") && len(name) > len(prefix)+2 && !ownerAlive(name[len(prefix)+2:]) {
			_ = sh("ip", "link", "del", name)
		}
	}
	tables, _ := exec.Command("nft", "list", "tables", "netdev").Output()
	for _, line := range strings.Split(string(tables), "\n") {
		f := strings.Fields(line) // "table netdev awflood_<id>"
		if len(f) == 3 && strings.HasPrefix(f[2], prefix+"_") && !ownerAlive(strings.TrimPrefix(f[2], prefix+"_")) {
			_ = sh("nft", "delete", "table", "netdev", f[2])
		}
	}
}

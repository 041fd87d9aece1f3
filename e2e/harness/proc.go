package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Proc is a process the harness started, usually inside a namespace.
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	Log  string // combined stdout+stderr file

	done    chan struct{}
	waitErr error
}

// StartInNS starts argv inside namespace ns (ns "" = root namespace) with its
// output going to logFile. `ip netns exec` execs the program in place, so the
// pid is the program's own pid, which the agent will attribute traffic to.
func StartInNS(ns, name, logFile string, env []string, argv ...string) (*Proc, error) {
	full := argv
	if ns != "" {
		full = append([]string{"ip", "netns", "exec", ns}, argv...)
	}
	f, err := os.Create(logFile)
	if err != nil {
		return nil, fmt.Errorf("create log: %w", err)
	}
	cmd := exec.Command(full[0], full[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	// Own process group, and die with the harness, so an aborted test leaves no server behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, Cmd: cmd, Log: logFile, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// Pid of the started process.
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends sig, waits up to grace, then kills the process group. It returns
// the exit code (-1 when killed by a signal) and the Wait error.
func (p *Proc) Stop(sig syscall.Signal, grace time.Duration) (int, error) {
	if !p.Exited() {
		_ = p.Cmd.Process.Signal(sig)
		select {
		case <-p.done:
		case <-time.After(grace):
			_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
			<-p.done
		}
	}
	code := -1
	if p.Cmd.ProcessState != nil {
		code = p.Cmd.ProcessState.ExitCode()
	}
	return code, p.waitErr
}

// Kill ends the process group at once; for cleanup.
func (p *Proc) Kill() {
	if !p.Exited() {
		_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
		<-p.done
	}
}

// Output returns the process's log so far.
func (p *Proc) Output() string {
	b, _ := os.ReadFile(p.Log)
	return string(b)
}

// WaitTCP waits until addr accepts connections or the process dies.
func (p *Proc) WaitTCP(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if p.Exited() {
			return fmt.Errorf("%s exited before listening on %s: %s", p.Name, addr, tail(p.Output(), 800))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not listening on %s: %w", p.Name, addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// ClockTicks is USER_HZ; /proc/PID/stat times are in these units. It is 100 on
// every Linux ABI Go supports.
const ClockTicks = 100

// CPUTime returns user+system CPU time of pid and, with children, of its
// already-waited children, from /proc/PID/stat.
func CPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read stat: %w", err)
	}
	// comm may contain spaces and parens; fields restart after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// After ')': state(3) ... utime is field 14, stime 15 (1-based in proc(5)).
	if len(f) < 13 {
		return 0, errors.New("short stat")
	}
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / ClockTicks, nil
}

// SoftirqTime returns the total softirq CPU time of all CPUs from /proc/stat.
func SoftirqTime() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, fmt.Errorf("read /proc/stat: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq
	if len(f) < 8 || f[0] != "cpu" {
		return 0, errors.New("malformed /proc/stat")
	}
	v, _ := strconv.ParseUint(f[7], 10, 64)
	return time.Duration(v) * time.Second / ClockTicks, nil
}

// ModuleRoot finds the directory holding go.mod, starting at the working dir.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found")
		}
		dir = parent
	}
}

// GoBuild builds pkg (a path relative to the module root, e.g.
// "./e2e/testdata/goapi") into outDir/name and returns the binary path.
func GoBuild(ctx context.Context, pkg, outDir, name string) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(outDir, name)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w: %s", pkg, err, tail(string(b), 2000))
	}
	return out, nil
}

package agent

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Capability bit numbers (linux/capability.h).
const (
	capNetAdmin = 12
	capSysAdmin = 21
	capPerfmon  = 38
	capBPF      = 39
)

// ErrPrivilege is returned when the agent lacks the capabilities to load and
// attach eBPF programs.
var ErrPrivilege = errors.New("apiwarden needs root or CAP_BPF+CAP_NET_ADMIN+CAP_PERFMON")

// ErrNoBTF is returned when the kernel exposes no BTF, which the CO-RE
// programs need.
var ErrNoBTF = errors.New("kernel has no BTF (/sys/kernel/btf/vmlinux missing): need a kernel built with CONFIG_DEBUG_INFO_BTF=y")

// Preflight checks what the agent needs before it touches the kernel, so a
// user gets one clear sentence instead of a verifier or permission dump.
func Preflight() error {
	caps, err := effectiveCaps()
	if err != nil {
		return fmt.Errorf("read capabilities: %w", err)
	}
	has := func(bit uint) bool { return caps&(1<<bit) != 0 }
	if !(has(capSysAdmin) || (has(capBPF) && has(capPerfmon))) || !has(capNetAdmin) {
		return ErrPrivilege
	}
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		return ErrNoBTF
	}
	return nil
}

func effectiveCaps() (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "CapEff:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	return 0, errors.New("CapEff not found in /proc/self/status")
}

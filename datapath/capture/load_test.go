package capture

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/apiwarden/apiwarden/datapath/iface"
)

func TestLoadErrorExplainsPrivilegesAndVerifier(t *testing.T) {
	err := loadError(fmt.Errorf("map create: %w", unix.EPERM))
	if !errors.Is(err, unix.EPERM) || !strings.Contains(err.Error(), "need root or CAP_BPF+CAP_NET_ADMIN+CAP_PERFMON") {
		t.Errorf("EPERM: %v", err)
	}
	ve := &ebpf.VerifierError{Cause: unix.EACCES, Log: []string{"0: (b7) r0 = 0", "R4 invalid zero-sized read"}}
	err = loadError(fmt.Errorf("program capture_ingress: %w", ve))
	if !errors.As(err, new(*ebpf.VerifierError)) || !strings.Contains(err.Error(), "R4 invalid zero-sized read") {
		t.Errorf("verifier: %v", err)
	}
}

func TestCloseDetachesEverything(t *testing.T) {
	s := newTestSensor(t, Config{})
	var ours []ebpf.ProgramID
	for _, p := range []*ebpf.Program{s.objs.CaptureIngress, s.objs.CaptureEgress} {
		info, err := p.Info()
		if err != nil {
			t.Fatal(err)
		}
		id, _ := info.ID()
		ours = append(ours, id)
	}
	if err := s.Attach(1); err != nil {
		t.Fatal(err)
	}
	if n := len(attachedIDs(t, ours)); n != 2 {
		t.Fatalf("%d of our programs on lo after attach, want 2", n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := s.Attached(); len(got) != 0 {
		t.Fatalf("attached after close: %v", got)
	}
	if left := attachedIDs(t, ours); len(left) != 0 {
		t.Fatalf("programs %v still on lo after close", left)
	}
}

// attachedIDs returns which of ids are attached to lo through tcx.
func attachedIDs(t *testing.T, ids []ebpf.ProgramID) []ebpf.ProgramID {
	t.Helper()
	var out []ebpf.ProgramID
	for _, at := range []ebpf.AttachType{ebpf.AttachTCXIngress, ebpf.AttachTCXEgress} {
		res, err := link.QueryPrograms(link.QueryOptions{Target: 1, Attach: at})
		if err != nil {
			t.Fatalf("query tcx: %v", err)
		}
		for _, p := range res.Programs {
			if slices.Contains(ids, p.ID) {
				out = append(out, p.ID)
			}
		}
	}
	return out
}

// The interface manager drives a Sensor directly.
var _ iface.Attacher = (*Sensor)(nil)

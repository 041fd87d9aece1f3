package tls

import (
	"debug/dwarf"
	"fmt"
)

// goLayout lists the struct fields bpf/tls.c follows from a *tls.Conn to
// the socket fd, with the offsets it assumes (go_iface_data_off is the
// iface's data word, fixed by the Go ABI, so not listed).
var goLayout = []struct {
	typ, field string
	off        int64
}{
	{"crypto/tls.Conn", "conn", 0},
	{"net.conn", "fd", 0},             // go_conn_fd_off
	{"net.netFD", "pfd", 0},           // poll.FD first in netFD
	{"internal/poll.FD", "Sysfd", 16}, // go_netfd_sysfd_off
}

// checkGoLayout compares the offsets with the binary's DWARF. Binaries
// without DWARF (-ldflags=-w) pass: the defaults hold for Go 1.17 to at
// least 1.26, which is what the tests run. A mismatch means the fd would be
// read from the wrong place, so the binary is not probed.
//
// It returns how many of the fields it could check.
func checkGoLayout(ef *elfFile) (int, error) {
	d, err := ef.f.DWARF()
	if err != nil {
		return 0, nil
	}
	want := map[string]int{}
	for i, l := range goLayout {
		want[l.typ] = i
	}
	found := 0
	r := d.Reader()
	for found < len(goLayout) {
		e, err := r.Next()
		if err != nil || e == nil {
			break
		}
		if e.Tag == dwarf.TagCompileUnit {
			continue
		}
		if e.Tag != dwarf.TagStructType {
			if e.Children {
				r.SkipChildren()
			}
			continue
		}
		name, _ := e.Val(dwarf.AttrName).(string)
		i, ok := want[name]
		if !ok {
			if e.Children {
				r.SkipChildren()
			}
			continue
		}
		l := goLayout[i]
		for {
			m, err := r.Next()
			if err != nil || m == nil || m.Tag == 0 {
				break
			}
			if m.Tag != dwarf.TagMember {
				continue
			}
			if mn, _ := m.Val(dwarf.AttrName).(string); mn == l.field {
				off, _ := m.Val(dwarf.AttrDataMemberLoc).(int64)
				if off != l.off {
					return found, fmt.Errorf("%s.%s at %d, not %d: %w", l.typ, l.field, off, l.off, errUnsupported)
				}
				found++
			}
		}
	}
	return found, nil
}

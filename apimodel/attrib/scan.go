package attrib

import (
	"fmt"
	"slices"

	"github.com/apiwarden/apiwarden/procfs"
)

// Scan seeds the table from /proc: processes already running, and the
// listening and established TCP sockets of every network namespace they are
// in. Events that arrive during the scan win over it, so start the event
// reader first. Connections found here have a guessed direction: a socket
// whose local port is listening in the same namespace was accepted, any
// other was connected.
func (t *Table) Scan() error {
	fs := t.cfg.ProcFS
	if fs == nil {
		return nil
	}
	pids, err := fs.PIDs()
	if err != nil {
		return fmt.Errorf("scan processes: %w", err)
	}
	slices.Sort(pids) // the parent (lowest pid, e.g. nginx master) owns shared sockets

	// Read /proc outside the lock; it is the slow part.
	type seen struct {
		info   procfs.Process
		inodes []uint64
	}
	var procs []seen
	nsRep := make(map[uint32]uint32) // netns -> a pid inside it
	var nsOrder []uint32
	for _, pid := range pids {
		info, err := fs.Process(pid)
		if err != nil {
			continue // exited meanwhile
		}
		inodes, _ := fs.SocketInodes(pid)
		if info.Exe == "" && len(inodes) == 0 {
			continue // kernel thread
		}
		procs = append(procs, seen{info, inodes})
		if _, ok := nsRep[info.NetNS]; !ok && info.NetNS != 0 {
			nsRep[info.NetNS] = pid
			nsOrder = append(nsOrder, info.NetNS)
		}
	}
	socks := make(map[uint32][]procfs.Socket, len(nsRep))
	for _, ns := range nsOrder {
		s, err := fs.TCPSockets(nsRep[ns])
		if err != nil {
			t.log.Debug("scan tcp table", "netns", ns, "err", err)
			continue
		}
		socks[ns] = s
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	owner := make(map[uint64]*proc)
	for _, s := range procs {
		p := t.procs[s.info.PID]
		if p == nil {
			p = t.addProc(&proc{pid: s.info.PID, enriched: true})
			t.fill(p, s.info)
			t.stats.ScannedProcesses++
		}
		for _, ino := range s.inodes {
			if _, ok := owner[ino]; !ok {
				owner[ino] = p
			}
		}
	}
	for _, ns := range nsOrder {
		listening := make(map[uint16]bool)
		for _, s := range socks[ns] {
			p := owner[s.Inode]
			if s.State != procfs.TCPListen || p == nil {
				continue
			}
			listening[s.Local.Port()] = true
			k := listenKey{addr: unmap(s.Local), netns: ns}
			if t.listeners[k] == nil {
				t.addListener(k, p)
				t.stats.ScannedSockets++
			}
		}
		for _, s := range socks[ns] {
			p := owner[s.Inode]
			if s.State != procfs.TCPEstablished || p == nil {
				continue
			}
			k := connKey{unmap(s.Local), unmap(s.Remote)}
			if t.conns[k] != nil {
				continue
			}
			kind := connConnected
			if listening[s.Local.Port()] {
				kind = connAccepted
			}
			t.addConn(k, kind, ns, p)
			t.stats.ScannedSockets++
		}
	}
	return nil
}

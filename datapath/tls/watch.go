package tls

// The tls_watch bitmap (bpf/include/tls_watch.h): one bit per tgid whose
// socket syscalls the tracepoints look at. The entry probe sets a process's
// bit on its first TLS call; userspace sets it for memory-BIO processes
// (whose socket reads happen outside the call) and clears it on exit.

func watchWord(pid int) (uint32, uint64) {
	return uint32(pid) >> 6, 1 << (uint32(pid) & 63)
}

// setWatched sets or clears pid's bit. Caller holds s.mu (userspace writers
// are serialised; the kernel only sets bits, see tls_watch.h for the race).
func (s *Sensor) setWatched(pid int, on bool) error {
	if pid <= 0 {
		return nil
	}
	w, bit := watchWord(pid)
	var v uint64
	if err := s.objs.TlsWatch.Lookup(w, &v); err != nil {
		return err
	}
	if on == (v&bit != 0) {
		return nil
	}
	if on {
		v |= bit
	} else {
		v &^= bit
	}
	return s.objs.TlsWatch.Put(w, v)
}

// watched reports whether pid's bit is set (tests).
func (s *Sensor) watched(pid int) bool {
	w, bit := watchWord(pid)
	var v uint64
	return s.objs.TlsWatch.Lookup(w, &v) == nil && v&bit != 0
}

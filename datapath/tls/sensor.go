// Package tls is apiwarden's TLS plaintext sensor: it finds the TLS
// libraries processes use (OpenSSL shared or static, GnuTLS, Go
// crypto/tls), puts uprobes on them and turns the decrypted bytes they
// report into capture.Chunk values carrying pid, socket fd, TCP 4-tuple and
// a gapless stream offset.
//
// Probes are placed per file (device + inode), not per process: one libssl
// probed once serves every process mapping it, in any mount namespace. The
// host's libssl/libgnutls are probed at New, so processes that dlopen them
// later (python's ssl module) are covered from their first call; other
// files are found through AttachPID (exe and /proc/PID/maps) and detached
// by OnExit when their last process is gone.
//
// Stream offsets (Chunk.Seq) are per (tgid, fd, direction) and never reset:
// when a closed fd number is reused by a new connection, its stream goes on
// from the old offset (Chunk.Key tells the connections apart). A call moving
// more than TLS_MAX_CHUNKS_PER_CALL*MAX_CHUNK_DATA bytes leaves a gap: the
// last chunk's PayloadLen exceeds its Data, and the offset still advances.
//
// With Config.Enforce the read probes also run the enforcer's kernel rules
// on decrypted requests (see enforce.go): a drop match flags the flow before
// the server's read returns, so TC drops the response.
package tls

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/apiwarden/apiwarden/apimodel/capture"
	"github.com/apiwarden/apiwarden/datapath/enforce"
	"github.com/apiwarden/apiwarden/datapath/percpu"
)

// Default limits.
const (
	// DefaultMaxFiles bounds the binaries and libraries the sensor analyses
	// and remembers; past it new files are skipped (SkipTooManyFiles).
	DefaultMaxFiles = 4096
	// rescanDelays: at exec time the dynamic loader has not mapped the
	// libraries yet, and interpreters dlopen libssl later still, so a
	// process whose maps show no TLS library is looked at again.
	rescanCount = 4
	// pollInterval bounds the delay between a TLS call and its chunk
	// reaching Run while the ring buffer is below TLS_WAKEUP_BYTES.
	pollInterval = 20 * time.Millisecond
)

var rescanDelays = [rescanCount]time.Duration{20 * time.Millisecond, 200 * time.Millisecond, 1500 * time.Millisecond, 5 * time.Second}

// Skip reasons counted by the sensor (Stats.Skips keys).
const (
	SkipNotELF       = "not_elf"
	SkipNoSymbols    = "no_symbols"
	SkipExited       = "exited"
	SkipAttachError  = "attach_error"
	SkipUnsupported  = "unsupported"
	SkipTooManyFiles = "too_many_files"
	SkipNoExe        = "no_exe" // kernel threads
)

// Config configures the sensor.
type Config struct {
	// ProcRoot is the procfs mount; default "/proc".
	ProcRoot string
	// HostLibGlobs are probed at start, before any process is seen, so a
	// process that dlopens one of them is covered from its first call.
	// Default: libssl and libgnutls in the usual library directories.
	HostLibGlobs []string
	// ChunkMax lowers the bytes copied per chunk (0 = MAX_CHUNK_DATA).
	ChunkMax uint32
	// MaxFiles bounds analysed files (0 = DefaultMaxFiles).
	MaxFiles int
	// ExportedEntryPoints probes OpenSSL's exported SSL_read/SSL_write
	// family instead of the internal function they share. Slower on
	// builds whose wrappers start with a single-stepped instruction; for
	// measurement and as an escape hatch.
	ExportedEntryPoints bool

	// Enforce, when set, makes the read probes enforce the enforcer's
	// kernel rules on decrypted requests: the TLS programs share its rule,
	// port-mode, flag, event and counter maps, so a drop match flags the
	// flow (TC then drops its packets both ways) and reports an
	// enforce.Event on the enforcer's Run, like a match at TC. Nil: the
	// sensor only observes.
	Enforce *enforce.Enforcer

	// PerProcess attaches every probe with a PID filter for each process
	// passed to AttachPID, so the breakpoints are installed only in those
	// processes' address spaces (the kernel also installs them when a
	// watched process maps a probed file later: dlopen). Other processes
	// mapping the same library pay nothing. The host libraries are
	// attached per process too (at AttachPID), not at New.
	PerProcess bool

	// skipReturnProbes attaches entry probes only (no data is emitted): a
	// test knob to split the probe cost into its parts.
	skipReturnProbes bool
}

var defaultHostLibGlobs = []string{
	"/lib/x86_64-linux-gnu/libssl.so*", "/usr/lib/x86_64-linux-gnu/libssl.so*",
	"/lib64/libssl.so*", "/usr/lib64/libssl.so*", "/usr/local/lib*/libssl.so*",
	"/lib/x86_64-linux-gnu/libgnutls.so*", "/usr/lib/x86_64-linux-gnu/libgnutls.so*",
	"/lib64/libgnutls.so*", "/usr/lib64/libgnutls.so*",
}

// fileID identifies a file by device and inode: the kernel places uprobes
// on inodes, so one probe set per fileID serves every process and every
// path (container roots, hard links) that maps the file.
type fileID struct{ dev, ino uint64 }

// analysis is the cached verdict for one file.
type analysis struct {
	plan   *plan  // nil: nothing to probe
	kind   string // for Visibility when plan is nil ("plaintext", "not-visible")
	detail string
}

type probedFile struct {
	path  string
	plan  *plan
	links []link.Link
	users map[int]struct{}
	host  bool // probed at start: kept for the sensor's lifetime
}

type pidState struct {
	kind, detail string
	files        map[fileID]struct{}
	rescans      int
	timer        *time.Timer
	tracked      bool                   // in tls_track_tgid
	links        map[fileID][]link.Link // Config.PerProcess: this process's probes
}

// Sensor owns the TLS probes, their maps and the attach bookkeeping.
type Sensor struct {
	log  *slog.Logger
	cfg  Config
	objs tlsBpfObjects
	tps  []link.Link
	// socketIO names the tracepoints that join C-library calls to sockets.
	socketIO string
	rd       *ringbuf.Reader
	bootTime time.Time

	mu       sync.Mutex
	vis      sync.Map // pid -> [2]string{kind, detail}, readable without mu
	closed   bool
	files    map[fileID]*probedFile
	analyses map[fileID]*analysis
	pids     map[int]*pidState
	skips    map[string]uint64
}

// New loads the TLS programs, attaches the socket I/O tracepoints and probes
// the host's TLS libraries.
func New(cfg Config, log *slog.Logger) (*Sensor, error) {
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = "/proc"
	}
	if cfg.HostLibGlobs == nil {
		cfg.HostLibGlobs = defaultHostLibGlobs
	}
	if cfg.MaxFiles == 0 {
		cfg.MaxFiles = DefaultMaxFiles
	}
	if log == nil {
		log = slog.Default()
	}
	s := &Sensor{
		log:      log.With("component", "tls"),
		cfg:      cfg,
		files:    map[fileID]*probedFile{},
		analyses: map[fileID]*analysis{},
		pids:     map[int]*pidState{},
		skips:    map[string]uint64{},
		bootTime: bootTime(),
	}
	spec, err := loadTlsBpf()
	if err != nil {
		return nil, fmt.Errorf("load tls spec: %w", err)
	}
	if cfg.ChunkMax != 0 {
		if err := spec.Variables["chunk_max"].Set(cfg.ChunkMax); err != nil {
			return nil, fmt.Errorf("set chunk_max: %w", err)
		}
	}
	opts, err := enforceOptions(spec, cfg.Enforce)
	if err != nil {
		return nil, err
	}
	if err := spec.LoadAndAssign(&s.objs, opts); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("load tls programs: %+v", ve)
		}
		return nil, fmt.Errorf("load tls programs: %w", err)
	}
	if err := s.attachSocketIO(); err != nil {
		s.Close()
		return nil, err
	}
	s.rd, err = ringbuf.NewReader(s.objs.TlsEvents)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("open tls ring buffer: %w", err)
	}
	s.probeHostLibs()
	return s, nil
}

// attachSocketIO attaches the programs that join a C library's TLS call to
// its socket. The sock_{recv,send}_length tracepoints (Linux >= 6.3) fire
// only on socket I/O; the syscall tracepoints of older kernels set the
// syscall-trace flag on every task of the host, so every syscall of every
// process pays the tracing entry path (measured here: +40 ns on getppid,
// +80 ns on a read of /dev/zero, in processes the agent does not watch).
func (s *Sensor) attachSocketIO() error {
	recv, rerr := link.Tracepoint("sock", "sock_recv_length", s.objs.TlsSockRecv, nil)
	if rerr == nil {
		send, serr := link.Tracepoint("sock", "sock_send_length", s.objs.TlsSockSend, nil)
		if serr == nil {
			s.tps = append(s.tps, recv, send)
			s.socketIO = "sock_recv_length/sock_send_length"
			return nil
		}
		recv.Close()
		rerr = serr
	}
	s.log.Info("sock tracepoints unavailable, joining TLS calls to sockets through syscall tracepoints", "err", rerr)
	for name, prog := range map[string]*ebpf.Program{
		"sys_enter_read": s.objs.TlsEnterRead, "sys_enter_write": s.objs.TlsEnterWrite,
		"sys_enter_readv": s.objs.TlsEnterReadv, "sys_enter_writev": s.objs.TlsEnterWritev,
		"sys_enter_recvfrom": s.objs.TlsEnterRecvfrom, "sys_enter_sendto": s.objs.TlsEnterSendto,
		"sys_enter_recvmsg": s.objs.TlsEnterRecvmsg, "sys_enter_sendmsg": s.objs.TlsEnterSendmsg,
	} {
		l, err := link.Tracepoint("syscalls", name, prog, nil)
		if err != nil {
			return fmt.Errorf("attach tracepoint %s: %w", name, err)
		}
		s.tps = append(s.tps, l)
	}
	s.socketIO = "syscalls"
	return nil
}

// bootTime returns the wall-clock time at CLOCK_MONOTONIC zero, the clock
// of bpf_ktime_get_ns.
func bootTime() time.Time {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return time.Now().Add(-time.Duration(ts.Nano()))
}

func (s *Sensor) probeHostLibs() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range s.cfg.HostLibGlobs {
		paths, _ := filepath.Glob(g)
		for _, p := range paths {
			id, err := statID(p)
			if err != nil {
				continue
			}
			if pf := s.ensureProbed(id, p, libKind(p)); pf != nil {
				pf.host = true
			}
		}
	}
}

// libKind names the TLS library a mapped file is, or "".
func libKind(path string) string {
	base := filepath.Base(path)
	switch {
	case strings.HasPrefix(base, "libssl.so"):
		return "openssl"
	case strings.HasPrefix(base, "libgnutls.so"):
		return "gnutls"
	}
	return ""
}

func statID(path string) (fileID, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return fileID{}, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fileID{}, fmt.Errorf("%s: not a regular file", path)
	}
	return fileID{st.Dev, st.Ino}, nil
}

// ensureProbed analyses the file (once per inode) and attaches its plan
// unless already attached. lib is "" for executables. Caller holds s.mu.
func (s *Sensor) ensureProbed(id fileID, path, lib string) *probedFile {
	if pf, ok := s.files[id]; ok {
		return pf
	}
	a := s.analyze(id, path, lib)
	if a.plan == nil {
		return nil
	}
	pf := &probedFile{path: path, plan: a.plan, users: map[int]struct{}{}}
	if s.cfg.PerProcess {
		// Attached per process by attachLocked.
		s.files[id] = pf
		return pf
	}
	links, err := s.attachPlan(path, a.plan, 0)
	if err != nil {
		return nil
	}
	pf.links = links
	s.files[id] = pf
	s.log.Info("tls probes attached", "path", path, "kind", a.plan.kind, "detail", a.plan.detail,
		"points", len(a.plan.points), "slow_points", a.plan.slowCount())
	for _, pt := range a.plan.points {
		if pt.Slow {
			s.log.Debug("tls probe on single-step path", "path", path, "point", pt.String())
		}
	}
	return pf
}

// attachPlan attaches a file's plan, for every process (pid 0) or one.
// Caller holds s.mu.
func (s *Sensor) attachPlan(path string, p *plan, pid int) ([]link.Link, error) {
	ex, err := link.OpenExecutable(path)
	if err != nil {
		s.skips[SkipAttachError]++
		s.log.Warn("open executable", "path", path, "err", err)
		return nil, err
	}
	var links []link.Link
	for _, pt := range p.points {
		if s.cfg.skipReturnProbes && pt.Kind == probeLibRet {
			continue
		}
		var l link.Link
		opts := &link.UprobeOptions{Address: pt.Offset, Cookie: pt.Cookie, PID: pid}
		switch pt.Kind {
		case probeLibEnter:
			l, err = ex.Uprobe("", s.objs.TlsLibEnter, opts)
		case probeLibRet:
			l, err = ex.Uretprobe("", s.objs.TlsLibRet, opts)
		case probeGoEnter:
			l, err = ex.Uprobe("", s.objs.TlsGoEnter, opts)
		case probeGoRet:
			l, err = ex.Uprobe("", s.objs.TlsGoRet, opts)
		}
		if err != nil {
			for _, l := range links {
				l.Close()
			}
			s.skips[SkipAttachError]++
			s.log.Warn("attach tls probe", "path", path, "pid", pid, "point", pt.String(), "err", err)
			return nil, err
		}
		links = append(links, l)
	}
	return links, nil
}

// analyze returns the cached or fresh verdict for a file. Caller holds s.mu.
func (s *Sensor) analyze(id fileID, path, lib string) *analysis {
	if a, ok := s.analyses[id]; ok {
		return a
	}
	if len(s.analyses) >= s.cfg.MaxFiles {
		s.skips[SkipTooManyFiles]++
		return &analysis{kind: "not-visible", detail: "analysis limit reached"}
	}
	a := analyzeFile(path, lib, s.cfg.ExportedEntryPoints)
	switch {
	case a.plan != nil:
	case a.detail == "not ELF":
		s.skips[SkipNotELF]++
	case a.kind == "not-visible":
		s.skips[SkipUnsupported]++
	case lib != "":
		s.skips[SkipNoSymbols]++
	}
	s.analyses[id] = a
	return a
}

// analyzeFile is the pure part of analyze: read the ELF and plan probes.
func analyzeFile(path, lib string, exported bool) *analysis {
	f, err := os.Open(path)
	if err != nil {
		return &analysis{kind: "not-visible", detail: "unreadable"}
	}
	defer f.Close()
	ef, err := openELF(f)
	if err != nil {
		return &analysis{kind: "not-visible", detail: "not ELF"}
	}
	switch lib {
	case "openssl":
		p, err := opensslPlan(ef, libDetail(path, f), exported)
		if err != nil {
			return &analysis{kind: "not-visible", detail: "libssl without SSL_read"}
		}
		return &analysis{plan: p}
	case "gnutls":
		p, err := gnutlsPlan(ef, filepath.Base(path))
		if err != nil {
			return &analysis{kind: "not-visible", detail: "libgnutls without gnutls_record_recv"}
		}
		return &analysis{plan: p}
	}
	// An executable: Go first (it has no dynamic TLS library to find).
	if p, err := goTLSPlan(ef, f); err == nil {
		return &analysis{plan: p}
	} else if errors.Is(err, errUnsupported) {
		return &analysis{kind: "not-visible", detail: err.Error()}
	} else if ef.f.Section(".go.buildinfo") != nil {
		return &analysis{kind: "plaintext", detail: "go without crypto/tls"}
	}
	if _, ok := ef.syms["SSL_read"]; ok {
		if p, err := opensslPlan(ef, "static in "+exeName(path), exported); err == nil {
			// Programs that embed OpenSSL (node) drive it through memory
			// BIOs from their own event loop.
			p.memBIO = true
			return &analysis{plan: p}
		}
	}
	if _, ok := ef.syms["gnutls_record_recv"]; ok {
		if p, err := gnutlsPlan(ef, "static in "+exeName(path)); err == nil {
			return &analysis{plan: p}
		}
	}
	for name := range ef.syms {
		if strings.Contains(name, "rustls") {
			return &analysis{kind: "not-visible", detail: "rustls"}
		}
		if strings.Contains(name, "bssl") {
			return &analysis{kind: "not-visible", detail: "statically linked BoringSSL"}
		}
	}
	// Dynamically linked against a TLS library that the loader has not
	// mapped yet (AttachPID runs at exec): say so until the rescan sees it.
	if libs, err := ef.f.ImportedLibraries(); err == nil {
		for _, l := range libs {
			if k := libKind(l); k != "" {
				return &analysis{kind: k, detail: l + " (linked, not mapped yet)"}
			}
		}
	}
	return &analysis{kind: "plaintext"}
}

// libDetail names a libssl with the OpenSSL version string, which lives in
// the file or (OpenSSL 3) in the libcrypto beside it.
func libDetail(path string, f *os.File) string {
	name := filepath.Base(path)
	if t, err := os.Readlink(path); err == nil {
		name = filepath.Base(t)
	}
	if v := opensslVersion(f); v != "" {
		return name + " " + v
	}
	crypto := filepath.Join(filepath.Dir(path), strings.Replace(name, "libssl", "libcrypto", 1))
	if cf, err := os.Open(crypto); err == nil {
		defer cf.Close()
		if v := opensslVersion(cf); v != "" {
			return name + " " + v
		}
	}
	return name
}

// maxVersionScan bounds how much of a library is read to find its version.
const maxVersionScan = 16 << 20

// opensslVersion finds "OpenSSL X.Y.Z" in a file, or "".
func opensslVersion(f *os.File) string {
	buf := make([]byte, 1<<20)
	for off := int64(0); off < maxVersionScan; {
		n, err := f.ReadAt(buf, off)
		data := buf[:n]
		for {
			i := bytes.Index(data, []byte("OpenSSL "))
			if i < 0 || i+9 > len(data) {
				break
			}
			v := data[i+8 : min(len(data), i+40)]
			if v[0] >= '0' && v[0] <= '9' {
				if e := bytes.IndexAny(v, " \x00"); e > 0 {
					return string(v[:e])
				}
			}
			data = data[i+8:]
		}
		if err != nil || n < 64 {
			break
		}
		off += int64(n) - 64
	}
	return ""
}

// AttachPID looks at a process's executable and mapped libraries and probes
// every TLS implementation found. Call it on exec events; a process whose
// libraries are not loaded yet is looked at again a few times.
func (s *Sensor) AttachPID(pid int) error {
	if pid == os.Getpid() {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("sensor closed")
	}
	return s.attachLocked(pid)
}

func (s *Sensor) attachLocked(pid int) error {
	proc := filepath.Join(s.cfg.ProcRoot, strconv.Itoa(pid))
	ps := s.pids[pid]
	if ps == nil {
		ps = &pidState{files: map[fileID]struct{}{}}
	}
	exe := filepath.Join(proc, "exe")
	exeID, err := statID(exe)
	if err != nil {
		if _, serr := os.Stat(proc); serr == nil {
			// Alive without an executable: a kernel thread.
			s.skips[SkipNoExe]++
			return nil
		}
		s.skips[SkipExited]++
		return fmt.Errorf("stat %s: %w", exe, err)
	}
	s.pids[pid] = ps
	var kinds []*analysis
	use := func(id fileID, pf *probedFile) {
		if s.cfg.PerProcess && ps.links[id] == nil {
			links, err := s.attachPlan(pf.path, pf.plan, pid)
			if err != nil {
				return
			}
			if ps.links == nil {
				ps.links = map[fileID][]link.Link{}
			}
			ps.links[id] = links
			// The same line as a per-file attach (with the process's exe
			// path), so "when were the probes in place" reads alike in
			// both scopes.
			s.log.Info("tls probes attached", "path", filepath.Join(proc, "exe"), "file", pf.path,
				"pid", pid, "kind", pf.plan.kind, "points", len(pf.plan.points))
		}
		pf.users[pid] = struct{}{}
		ps.files[id] = struct{}{}
		kinds = append(kinds, &analysis{plan: pf.plan})
		if pf.plan.memBIO && !ps.tracked {
			err := s.objs.TlsTrackTgid.Put(uint32(pid), uint8(1))
			if err == nil {
				err = s.setWatched(pid, true)
			}
			if err != nil {
				s.log.Warn("track memory-BIO process", "pid", pid, "err", err)
			} else {
				ps.tracked = true
			}
		}
	}
	if pf := s.ensureProbed(exeID, exe, ""); pf != nil {
		use(exeID, pf)
	}
	exeA := s.analyses[exeID]
	if s.cfg.PerProcess {
		// Host libraries before they are mapped: the kernel installs the
		// breakpoints when this process dlopens one.
		n := len(kinds)
		for id, pf := range s.files {
			if pf.host {
				use(id, pf)
			}
		}
		kinds = kinds[:n] // visible once mapped (below), not before
	}
	libs, err := mappedTLSLibs(proc)
	if err != nil {
		s.skips[SkipExited]++
		return fmt.Errorf("read maps: %w", err)
	}
	for _, m := range libs {
		// Through the process's root, so containers' own libraries are found.
		p := filepath.Join(proc, "root", m.path)
		id, err := statID(p)
		if err != nil || id.ino != m.ino {
			// Replaced on disk since mapped: the map_files link still
			// reaches the mapped inode.
			p = filepath.Join(proc, "map_files", m.rng)
			if id, err = statID(p); err != nil {
				continue
			}
		}
		if pf := s.ensureProbed(id, p, libKind(m.path)); pf != nil {
			use(id, pf)
		}
	}
	ps.kind, ps.detail = "plaintext", ""
	switch {
	case len(kinds) > 0:
		ps.kind, ps.detail = kinds[0].plan.kind, kinds[0].plan.detail
		if n := kinds[0].plan.slowCount(); n > 0 {
			ps.detail += fmt.Sprintf(" (%d/%d probes single-stepped)", n, len(kinds[0].plan.points))
		}
	case exeA != nil && exeA.kind != "plaintext":
		ps.kind, ps.detail = exeA.kind, exeA.detail
	case isJava(exe):
		ps.kind, ps.detail = "not-visible", "java JSSE"
	}
	s.vis.Store(pid, [2]string{ps.kind, ps.detail})
	if len(kinds) == 0 && ps.rescans < rescanCount && ps.kind != "not-visible" {
		d := rescanDelays[ps.rescans]
		ps.rescans++
		ps.timer = time.AfterFunc(d, func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if cur, ok := s.pids[pid]; ok && cur == ps && !s.closed {
				_ = s.attachLocked(pid)
			}
		})
	}
	return nil
}

// exeName names an executable by its real file, not /proc/PID/exe.
func exeName(path string) string {
	if t, err := os.Readlink(path); err == nil {
		return filepath.Base(t)
	}
	if t, err := filepath.EvalSymlinks(path); err == nil {
		return filepath.Base(t)
	}
	return filepath.Base(path)
}

func isJava(exe string) bool {
	t, err := os.Readlink(exe)
	return err == nil && filepath.Base(t) == "java"
}

type mappedLib struct {
	path, rng string
	ino       uint64
}

// mappedTLSLibs lists the TLS libraries in /proc/PID/maps.
func mappedTLSLibs(proc string) ([]mappedLib, error) {
	f, err := os.Open(filepath.Join(proc, "maps"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	seen := map[string]bool{}
	var out []mappedLib
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// addr perms offset dev inode path
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || libKind(fields[5]) == "" || seen[fields[5]] {
			continue
		}
		ino, _ := strconv.ParseUint(fields[4], 10, 64)
		seen[fields[5]] = true
		out = append(out, mappedLib{path: fields[5], rng: fields[0], ino: ino})
	}
	return out, sc.Err()
}

// OnExit forgets a process and detaches probes no other process uses
// (host libraries stay).
func (s *Sensor) OnExit(pid int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		// Any process may have been marked by its first TLS call.
		_ = s.setWatched(pid, false)
	}
	ps, ok := s.pids[pid]
	if !ok {
		return
	}
	delete(s.pids, pid)
	// Calls of a short-lived process are often rebuilt after it exited:
	// its label outlives it for a while.
	time.AfterFunc(visibilityGrace, func() { s.vis.Delete(pid) })
	if ps.timer != nil {
		ps.timer.Stop()
	}
	if ps.tracked {
		_ = s.objs.TlsTrackTgid.Delete(uint32(pid))
	}
	for _, links := range ps.links {
		for _, l := range links {
			l.Close()
		}
	}
	for id := range ps.files {
		pf := s.files[id]
		if pf == nil {
			continue
		}
		delete(pf.users, pid)
		if len(pf.users) == 0 && !pf.host {
			for _, l := range pf.links {
				l.Close()
			}
			delete(s.files, id)
		}
	}
}

// ScanAll attaches to every process already running.
func (s *Sensor) ScanAll() {
	ents, err := os.ReadDir(s.cfg.ProcRoot)
	if err != nil {
		s.log.Warn("scan processes", "err", err)
		return
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if err := s.AttachPID(pid); err != nil {
			s.log.Debug("attach pid", "pid", pid, "err", err)
		}
	}
}

// Visibility says how the sensor sees a process's TLS traffic: kind is
// "openssl", "gnutls", "go-tls" (plaintext visible), "plaintext" (no TLS
// library found: TC sees its traffic), "not-visible" (TLS the sensor cannot
// read: detail says why) or "unknown" (pid never attached).
func (s *Sensor) Visibility(pid int) (kind, detail string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps, ok := s.pids[pid]
	if !ok {
		return "unknown", ""
	}
	return ps.kind, ps.detail
}

// visibilityGrace is how long VisibilityNow still answers for a process
// that exited.
const visibilityGrace = 2 * time.Minute

// VisibilityNow is Visibility without the sensor's lock (an attach in
// progress may hold it for a while): it answers from a copy kept per
// process, also for a while after the process exited. ok is false for a
// process never analysed.
func (s *Sensor) VisibilityNow(pid int) (kind, detail string, ok bool) {
	v, found := s.vis.Load(pid)
	if !found {
		return "", "", false
	}
	kd := v.([2]string)
	return kd[0], kd[1], true
}

// Points lists the attach points in place, for logs and diagnostics.
func (s *Sensor) Points() map[string][]AttachPoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][]AttachPoint{}
	for _, pf := range s.files {
		out[pf.path] = append(out[pf.path], pf.plan.points...)
	}
	return out
}

// Stats is a snapshot of the sensor's counters.
type Stats struct {
	Kernel     map[string]uint64 // enum tls_counter, summed over CPUs
	Skips      map[string]uint64 // Skip* reasons
	Files      int               // probed files
	Points     int               // attach points in place
	SlowPoints int               // of which single-stepped
}

var counterNames = []string{"calls", "chunks", "bytes", "chunks_truncated", "bytes_truncated",
	"chunks_lost", "no_fd", "not_socket", "read_failed", "fd_watched"}

// Stats returns the current counters.
func (s *Sensor) Stats() (Stats, error) {
	kernel, err := percpu.SumList(s.objs.TlsCounters, counterNames)
	if err != nil {
		return Stats{}, fmt.Errorf("tls counters: %w", err)
	}
	st := Stats{Kernel: kernel, Skips: map[string]uint64{}}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.skips {
		st.Skips[k] = v
	}
	st.Files = len(s.files)
	for _, pf := range s.files {
		st.Points += len(pf.plan.points)
		st.SlowPoints += pf.plan.slowCount()
	}
	return st, nil
}

// Run reads chunk events until ctx ends or the sensor is closed, handing
// each to fn. The chunk's Data is only valid during the call.
func (s *Sensor) Run(ctx context.Context, fn func(capture.Chunk)) error {
	// The kernel side does not wake the reader per event (see
	// TLS_WAKEUP_BYTES), so the reader polls; the same deadline lets it see
	// ctx end (Read holds its lock while it waits: no SetDeadline from
	// outside).
	const poll = pollInterval
	s.rd.SetDeadline(time.Now().Add(poll))
	var rec ringbuf.Record
	for {
		if err := s.rd.ReadInto(&rec); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				s.rd.SetDeadline(time.Now().Add(poll))
				continue
			}
			if errors.Is(err, ringbuf.ErrClosed) {
				return nil
			}
			return fmt.Errorf("read tls ring buffer: %w", err)
		}
		c, err := decodeChunk(rec.RawSample, s.bootTime)
		if err != nil {
			s.log.Warn("decode tls chunk", "err", err)
			continue
		}
		fn(c)
	}
}

// Close detaches everything and frees the kernel objects.
func (s *Sensor) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for _, ps := range s.pids {
		if ps.timer != nil {
			ps.timer.Stop()
		}
		for _, links := range ps.links {
			for _, l := range links {
				l.Close()
			}
		}
	}
	for id, pf := range s.files {
		for _, l := range pf.links {
			l.Close()
		}
		delete(s.files, id)
	}
	s.mu.Unlock()
	for _, l := range s.tps {
		l.Close()
	}
	if s.rd != nil {
		s.rd.Close()
	}
	return s.objs.Close()
}

package harness

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Ports the servers listen on inside the server namespace.
const (
	GoAPIPort = 8080
	PyPort    = 8081
	NginxPort = 8082
)

// Server is one running test server.
type Server struct {
	*Proc
	Service string // expected service name (exe basename)
	Port    int
	Addr    string // SrvIP:Port
	Addr6   string // [SrvIP6]:Port when the server listens on IPv6 too
	ReqLog  string // "METHOD PATH STATUS" per request; nginx writes its access log here
	// CPUPids are the pids whose CPU time is the server's (nginx: master+worker).
	CPUPids []int
}

// Exe returns the basename of /proc/PID/exe of the process that serves
// requests (nginx: a worker), which is what the agent attributes traffic to.
func (s *Server) Exe() string {
	pid := s.Pid()
	if len(s.CPUPids) > 0 {
		pid = s.CPUPids[len(s.CPUPids)-1]
	}
	p, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return s.Service
	}
	return filepath.Base(p)
}

// Testdata returns the absolute path of e2e/testdata.
func Testdata() (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "e2e", "testdata"), nil
}

// Binaries are the Go programs of the harness, built once.
type Binaries struct {
	GoAPI    string // exe name "goapi", so the agent names the service "goapi"
	GoClient string
	AWLoad   string
}

// BuildBinaries builds e2e/testdata/goapi, e2e/testdata/goclient and
// cmd/awload into dir.
func BuildBinaries(ctx context.Context, dir string) (Binaries, error) {
	var b Binaries
	var err error
	if b.GoAPI, err = GoBuild(ctx, "./e2e/testdata/goapi", dir, "goapi"); err != nil {
		return b, err
	}
	if b.GoClient, err = GoBuild(ctx, "./e2e/testdata/goclient", dir, "goclient"); err != nil {
		return b, err
	}
	if b.AWLoad, err = GoBuild(ctx, "./cmd/awload", dir, "awload"); err != nil {
		return b, err
	}
	return b, nil
}

// StartGoAPI runs the goapi binary in the server namespace, with scratch
// files in dir. withLog=false drops the request log (benchmarks).
func (t *Topology) StartGoAPI(bin, dir string, withLog bool) (*Server, error) {
	var err error
	s := &Server{Service: "goapi", Port: GoAPIPort, Addr: fmt.Sprintf("%s:%d", t.SrvIP, GoAPIPort)}
	if t.IPv6 {
		s.Addr6 = fmt.Sprintf("[%s]:%d", t.SrvIP6, GoAPIPort)
	}
	args := []string{bin, "-addr", fmt.Sprintf(":%d", GoAPIPort)}
	if withLog {
		s.ReqLog = filepath.Join(dir, "goapi-requests.log")
		args = append(args, "-log", s.ReqLog)
	}
	if s.Proc, err = StartInNS(t.SrvNS, "goapi", filepath.Join(dir, "goapi.out"), nil, args...); err != nil {
		return nil, err
	}
	if err := s.WaitTCP(s.Addr, 10*time.Second); err != nil {
		s.Kill()
		return nil, err
	}
	if s.Addr6 != "" {
		if err := s.WaitTCP(s.Addr6, 5*time.Second); err != nil {
			s.Kill()
			return nil, err
		}
	}
	s.CPUPids = []int{s.Pid()}
	return s, nil
}

// Python returns the real python3 interpreter (not a pyenv shim), so the
// process the agent sees is the interpreter itself.
func Python() (string, error) {
	out, err := exec.Command("python3", "-c", "import sys; print(sys.executable)").Output()
	if err != nil {
		return "", fmt.Errorf("find python3: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// StartPyServer runs e2e/testdata/pyserver.py in the server namespace.
func (t *Topology) StartPyServer(dir string) (*Server, error) {
	py, err := Python()
	if err != nil {
		return nil, err
	}
	td, err := Testdata()
	if err != nil {
		return nil, err
	}
	s := &Server{Port: PyPort, Addr: fmt.Sprintf("%s:%d", t.SrvIP, PyPort), ReqLog: filepath.Join(dir, "py-requests.log")}
	s.Service = filepath.Base(py)
	if real, err := filepath.EvalSymlinks(py); err == nil {
		s.Service = filepath.Base(real)
	}
	if s.Proc, err = StartInNS(t.SrvNS, "pyserver", filepath.Join(dir, "py.out"), nil,
		py, filepath.Join(td, "pyserver.py"), strconv.Itoa(PyPort), s.ReqLog); err != nil {
		return nil, err
	}
	if err := s.WaitTCP(s.Addr, 10*time.Second); err != nil {
		s.Kill()
		return nil, err
	}
	s.CPUPids = []int{s.Pid()}
	return s, nil
}

// StartNginx renders e2e/testdata/nginx.conf.tmpl into dir and runs nginx
// (one worker, daemon off) in the server namespace.
func (t *Topology) StartNginx(dir string) (*Server, error) {
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		return nil, fmt.Errorf("find nginx: %w", err)
	}
	td, err := Testdata()
	if err != nil {
		return nil, err
	}
	tmpl, err := os.ReadFile(filepath.Join(td, "nginx.conf.tmpl"))
	if err != nil {
		return nil, fmt.Errorf("read nginx template: %w", err)
	}
	ndir := filepath.Join(dir, "nginx")
	if err := os.MkdirAll(ndir, 0o755); err != nil {
		return nil, err
	}
	conf := strings.NewReplacer("{{DIR}}", ndir, "{{PORT}}", strconv.Itoa(NginxPort),
		"{{STATIC}}", filepath.Join(td, "static")).Replace(string(tmpl))
	confPath := filepath.Join(ndir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	s := &Server{Service: "nginx", Port: NginxPort, Addr: fmt.Sprintf("%s:%d", t.SrvIP, NginxPort),
		ReqLog: filepath.Join(ndir, "access.log")}
	if s.Proc, err = StartInNS(t.SrvNS, "nginx", filepath.Join(dir, "nginx.out"), nil,
		nginx, "-c", confPath, "-p", ndir, "-e", filepath.Join(ndir, "error.log")); err != nil {
		return nil, err
	}
	if err := s.WaitTCP(s.Addr, 10*time.Second); err != nil {
		s.Kill()
		return nil, err
	}
	s.CPUPids = append([]int{s.Pid()}, childPids(s.Pid())...)
	return s, nil
}

// childPids lists the direct children of pid (nginx workers).
func childPids(pid int) []int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// CPUTime sums the CPU time of the server's processes.
func (s *Server) CPUTime() time.Duration {
	var sum time.Duration
	for _, p := range s.CPUPids {
		d, _ := CPUTime(p)
		sum += d
	}
	return sum
}

// RequestLog returns "METHOD PATH STATUS" lines the server logged.
func (s *Server) RequestLog() ([]string, error) {
	f, err := os.Open(s.ReqLog)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	return out, sc.Err()
}

// TruncateLog empties the request log (between phases of a test).
func (s *Server) TruncateLog() error {
	if s.ReqLog == "" {
		return nil
	}
	return os.Truncate(s.ReqLog, 0)
}

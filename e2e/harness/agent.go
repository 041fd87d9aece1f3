package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// AgentConfig is how to run `apiwarden agent`.
type AgentConfig struct {
	Bin     string   // path to bin/apiwarden
	Ifaces  []string // --interface, repeated
	DataDir string
	APIAddr string // 127.0.0.1:PORT; empty picks a free port
	Mode    string // default "monitor"
	LogFile string // default DataDir/../agent-N.log
	// Config is a YAML file passed as --config (empty: none).
	Config string
	Extra  []string
	// TokenFile, when set, is passed as --api-token-file and its content
	// sent as the bearer token on every API call of the harness.
	TokenFile string
	// Env is added to the agent's environment (benchmarks: GOMAXPROCS=1).
	Env []string
}

// Agent is a running apiwarden agent.
type Agent struct {
	*Proc
	Cfg  AgentConfig
	Base string // http://127.0.0.1:PORT
	hc   *http.Client
}

// BuildAgent builds ./cmd/apiwarden into dir/apiwarden.
func BuildAgent(ctx context.Context, dir string) (string, error) {
	return GoBuild(ctx, "./cmd/apiwarden", dir, "apiwarden")
}

// FreePort returns a loopback TCP port nobody listens on right now.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// StartAgent starts the agent in the root namespace; call WaitReady next.
func StartAgent(cfg AgentConfig) (*Agent, error) {
	if cfg.APIAddr == "" {
		p, err := FreePort()
		if err != nil {
			return nil, fmt.Errorf("pick api port: %w", err)
		}
		cfg.APIAddr = "127.0.0.1:" + strconv.Itoa(p)
	}
	if cfg.Mode == "" {
		cfg.Mode = "monitor"
	}
	if cfg.LogFile == "" {
		cfg.LogFile = filepath.Join(filepath.Dir(filepath.Clean(cfg.DataDir)),
			fmt.Sprintf("agent-%d.log", time.Now().UnixNano()))
	}
	args := []string{cfg.Bin, "agent", "--mode", cfg.Mode, "--data-dir", cfg.DataDir, "--api-addr", cfg.APIAddr}
	for _, i := range cfg.Ifaces {
		args = append(args, "--interface", i)
	}
	if cfg.Config != "" {
		args = append(args, "--config", cfg.Config)
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	if cfg.TokenFile != "" {
		args = append(args, "--api-token-file", cfg.TokenFile)
		tok, err := os.ReadFile(cfg.TokenFile)
		if err != nil {
			return nil, err
		}
		hc.Transport = bearerTransport{token: strings.TrimSpace(string(tok))}
	}
	args = append(args, cfg.Extra...)
	p, err := StartInNS("", "apiwarden", cfg.LogFile, cfg.Env, args...)
	if err != nil {
		return nil, err
	}
	return &Agent{Proc: p, Cfg: cfg, Base: "http://" + cfg.APIAddr, hc: hc}, nil
}

// bearerTransport adds the API token to every request.
type bearerTransport struct{ token string }

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

// WaitReady waits for /healthz 200 and a JSON /v1/status.
func (a *Agent) WaitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if a.Exited() {
			return fmt.Errorf("agent exited during start: %s", tail(a.Output(), 2000))
		}
		code, _, err := a.get("/healthz")
		if err == nil && code == 200 {
			var st map[string]any
			if last = a.GetJSON("/v1/status", &st); last == nil {
				return nil
			}
		} else if err != nil {
			last = err
		} else {
			last = fmt.Errorf("healthz status %d", code)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("agent not ready after %v: %v: %s", timeout, last, tail(a.Output(), 2000))
}

// WaitAttached waits until /v1/status names every interface in ifaces, which
// is the agent's word that its capture programs are attached there.
func (a *Agent) WaitAttached(ifaces []string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		st, err := a.Status()
		missing := ""
		if err == nil {
			b, _ := json.Marshal(st)
			for _, i := range ifaces {
				if !strings.Contains(string(b), `"`+i+`"`) {
					missing = i
					break
				}
			}
			if missing == "" {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("agent not attached to %q after %v (status %v, err %v)", missing, timeout, st, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop sends SIGTERM and returns the exit code.
func (a *Agent) Stop(grace time.Duration) (int, error) {
	return a.Proc.Stop(syscall.SIGTERM, grace)
}

func (a *Agent) get(path string) (int, []byte, error) {
	resp, err := a.hc.Get(a.Base + path)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// Do sends one API request with an optional JSON body and returns the
// status and the answer's body.
func (a *Agent) Do(method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, fmt.Errorf("encode %s body: %w", path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.Base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// GetJSON fetches path and decodes a 200 JSON answer into v.
func (a *Agent) GetJSON(path string, v any) error {
	code, b, err := a.get(path)
	if err != nil {
		return fmt.Errorf("get %s: %w", path, err)
	}
	if code != 200 {
		return fmt.Errorf("get %s: status %d: %s", path, code, tail(string(b), 300))
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode %s: %w", path, err)
	}
	return nil
}

// Inventory fetches GET /v1/inventory.
func (a *Agent) Inventory() ([]Endpoint, error) {
	var inv struct {
		Endpoints []Endpoint `json:"endpoints"`
	}
	err := a.GetJSON("/v1/inventory", &inv)
	return inv.Endpoints, err
}

// Status fetches GET /v1/status as a generic JSON tree.
func (a *Agent) Status() (map[string]any, error) {
	var st map[string]any
	err := a.GetJSON("/v1/status", &st)
	return st, err
}

// U64 decodes protojson uint64 values, which arrive as strings, and numbers.
type U64 uint64

// UnmarshalJSON accepts "12" and 12.
func (u *U64) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		*u = 0
		return nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil {
			return fmt.Errorf("uint64 %s: %w", b, err)
		}
		v = uint64(f)
	}
	*u = U64(v)
	return nil
}

// Endpoint is the part of the REST inventory the tests check.
type Endpoint struct {
	Service struct {
		Name string `json:"name"`
		Exe  string `json:"exe"`
		Port U64    `json:"port"`
	} `json:"service"`
	Method       string         `json:"method"`
	PathTemplate string         `json:"pathTemplate"`
	RequestCount U64            `json:"requestCount"`
	StatusCodes  map[string]U64 `json:"statusCodes"`
	Processes    []struct {
		Pid  U64    `json:"pid"`
		Comm string `json:"comm"`
		Exe  string `json:"exe"`
	} `json:"processes"`
	QueryParams []Param        `json:"queryParams"`
	PathParams  []Param        `json:"pathParams"`
	AuthSchemes map[string]U64 `json:"authSchemes"`
	NoResponse  U64            `json:"noResponse"`
	// TLS counts the requests read from decrypted TLS, by library.
	TLS map[string]U64 `json:"tls"`
	// Protocol is http/1.1, h2 or grpc; GRPCStatusCodes counts
	// grpc-status values of gRPC endpoints.
	Protocol        string         `json:"protocol"`
	GRPCStatusCodes map[string]U64 `json:"grpcStatusCodes"`
	// GRPCKinds counts the streaming kinds (unary, client-streaming,
	// server-streaming, bidi-streaming) seen on a gRPC endpoint.
	GRPCKinds    map[string]U64 `json:"grpcKinds"`
	PartialCalls U64            `json:"partialCalls"`
}

// Param is a query or path parameter.
type Param struct {
	Name     string `json:"name"`
	In       string `json:"in"`
	Type     string `json:"type"`
	Required bool   `json:"required"`
	Count    U64    `json:"count"`
}

// AttachedPrograms lists the BPF programs attached to iface (tcx, tc, xdp) as
// bpftool reports them; empty means the interface is clean.
func AttachedPrograms(iface string) ([]string, error) {
	out, err := exec.Command("bpftool", "-j", "net", "show", "dev", iface).Output()
	if err != nil {
		return nil, fmt.Errorf("bpftool net show: %w", err)
	}
	// [{"xdp":[...],"tc":[...],"flow_dissector":[...],"netfilter":[...]}]
	var res []map[string][]map[string]any
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, fmt.Errorf("decode bpftool: %w", err)
	}
	var progs []string
	for _, m := range res {
		for kind, list := range m {
			if kind != "xdp" && kind != "tc" {
				continue
			}
			for _, p := range list {
				progs = append(progs, fmt.Sprintf("%s:%v:%v", kind, p["kind"], p["name"]))
			}
		}
	}
	return progs, nil
}

// Pprof saves the agent's /debug/pprof/<kind> ("profile", "trace") over d
// to file; the agent must run with --pprof.
func (a *Agent) Pprof(kind string, d time.Duration, file string) error {
	secs := max(1, int(d.Seconds()))
	c := &http.Client{Timeout: d + 10*time.Second, Transport: a.hc.Transport}
	resp, err := c.Get(fmt.Sprintf("%s/debug/pprof/%s?seconds=%d", a.Base, kind, secs))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", kind, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

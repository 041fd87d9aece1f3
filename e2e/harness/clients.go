package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// ClientRequest mirrors e2e/testdata/goclient's Request.
type ClientRequest struct {
	Method   string            `json:"method"`
	Target   string            `json:"target"`
	Headers  map[string]string `json:"headers,omitempty"`
	Body     string            `json:"body,omitempty"`
	BodySize int               `json:"bodySize,omitempty"`
	Chunked  bool              `json:"chunked,omitempty"`
}

// ClientRaw mirrors goclient's Raw.
type ClientRaw struct {
	Data       []byte `json:"data"`
	CloseWrite bool   `json:"closeWrite,omitempty"`
	NoRead     bool   `json:"noRead,omitempty"`
}

// ClientJob mirrors goclient's Job.
type ClientJob struct {
	Mode     string          `json:"mode"`
	Addr     string          `json:"addr"`
	Requests []ClientRequest `json:"requests,omitempty"`
	Raws     []ClientRaw     `json:"raws,omitempty"`
	Idle     int             `json:"idle,omitempty"`
	Hold     time.Duration   `json:"hold,omitempty"`
	CAFile   string          `json:"caFile,omitempty"` // speak TLS trusting this CA
}

// ClientResult mirrors goclient's Result.
type ClientResult struct {
	Statuses  []int    `json:"statuses"`
	BodyBytes []int    `json:"bodyBytes"`
	Raw       []string `json:"raw"`
	Opened    int      `json:"opened"`
	Error     string   `json:"error"`
}

// Clients runs clients inside the client namespace.
type Clients struct {
	NS       string
	Dir      string // scratch files (job specs, upload bodies)
	GoClient string // built goclient binary
	n        int
}

// NewClients runs clients in the client namespace with the goclient binary
// bin and scratch files in dir.
func (t *Topology) NewClients(bin, dir string) *Clients {
	return &Clients{NS: t.CliNS, Dir: dir, GoClient: bin}
}

// Go runs one goclient job.
func (c *Clients) Go(ctx context.Context, job ClientJob) (ClientResult, error) {
	c.n++
	spec := filepath.Join(c.Dir, fmt.Sprintf("job-%d.json", c.n))
	b, _ := json.Marshal(job)
	if err := os.WriteFile(spec, b, 0o644); err != nil {
		return ClientResult{}, err
	}
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", c.NS, c.GoClient, spec)
	out, err := cmd.Output()
	var res ClientResult
	if jerr := json.Unmarshal(out, &res); jerr != nil {
		return res, fmt.Errorf("goclient %s: %v: %s", job.Mode, err, out)
	}
	if err != nil || res.Error != "" {
		return res, fmt.Errorf("goclient %s: %v: %s", job.Mode, err, res.Error)
	}
	return res, nil
}

// Curl runs curl with args in the client namespace and returns its stdout.
func (c *Clients) Curl(ctx context.Context, args ...string) (string, error) {
	full := append([]string{"netns", "exec", c.NS, "curl", "-sS", "--max-time", "20"}, args...)
	out, err := exec.CommandContext(ctx, "ip", full...).Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		return string(out), fmt.Errorf("curl %v: %w: %s", args, err, stderr)
	}
	return string(out), nil
}

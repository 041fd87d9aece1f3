// Package detectbench measures apiwarden's attack detector against Coraza
// v3 with the OWASP Core Rule Set v4 on one labelled corpus: accuracy per
// attack class, false positives on realistic API traffic, and speed.
package detectbench

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/apiwarden/apiwarden/apimodel/call"
)

// Entry is one labelled request of the corpus (one JSON line).
type Entry struct {
	ID     string `json:"id"`
	Class  string `json:"class"` // attack class or "benign"
	Where  string `json:"where"` // where the payload sits: query, json, form, header, path, body
	Method string `json:"method"`
	Path   string `json:"path"` // as sent, percent-encoding kept
	Query  string `json:"query,omitempty"`
	Proto  string `json:"proto,omitempty"`
	// Headers keep order and duplicates, as smuggling cases need.
	Headers [][2]string `json:"headers"`
	Body    string      `json:"body,omitempty"`
	// Src says where the values of a spec-built request came from:
	// "examples" (every value documented in the spec) or "schema".
	Src string `json:"src,omitempty"`
}

// Benign is the class label of requests that must not be flagged.
const Benign = "benign"

// LoadCorpus reads a JSONL corpus.
func LoadCorpus(path string) ([]Entry, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read corpus: %w", err)
	}
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("read corpus: %w", err)
		}
		if data, err = io.ReadAll(zr); err != nil {
			return nil, fmt.Errorf("read corpus: %w", err)
		}
	}
	var out []Entry
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 4<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var e Entry
		if err := json.Unmarshal(line, &e); err != nil {
			return nil, fmt.Errorf("corpus line %d: %w", n, err)
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

// Request converts an entry to the detector's input.
func (e *Entry) Request() *call.Request {
	r := &call.Request{
		Method:   e.Method,
		Path:     e.Path,
		RawQuery: e.Query,
		Proto:    e.Proto,
		Body:     []byte(e.Body),
		BodySize: int64(len(e.Body)),
	}
	if r.Proto == "" {
		r.Proto = "HTTP/1.1"
	}
	for _, h := range e.Headers {
		r.Headers = append(r.Headers, call.Header{Name: h[0], Value: h[1]})
		if strings.EqualFold(h[0], "host") {
			r.Host = h[1]
		}
		if strings.EqualFold(strings.TrimSpace(h[0]), "transfer-encoding") {
			r.Chunked = true
		}
	}
	return r
}

// Kind buckets an entry for the speed table: get, json, form or other.
func (e *Entry) Kind() string {
	if e.Body == "" {
		return "get"
	}
	ct := ""
	for _, h := range e.Headers {
		if strings.EqualFold(h[0], "content-type") {
			ct = strings.ToLower(h[1])
		}
	}
	switch {
	case strings.Contains(ct, "json"):
		return "json"
	case strings.Contains(ct, "x-www-form-urlencoded"):
		return "form"
	}
	return "other"
}

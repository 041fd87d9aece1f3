package detect

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/apiwarden/apiwarden/apimodel/call"
)

// corpusRequests reads every request of the bench/detect corpora (the
// loader of bench/detect/corpus.go, which this package cannot import).
func corpusRequests(t *testing.T) []*call.Request {
	t.Helper()
	files, _ := filepath.Glob("../../bench/detect/testdata/*.jsonl")
	gz, _ := filepath.Glob("../../bench/detect/testdata/*.jsonl.gz")
	files = append(files, gz...)
	if len(files) == 0 {
		t.Fatal("no corpus under bench/detect/testdata")
	}
	var out []*call.Request
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(f, ".gz") {
			zr, err := gzip.NewReader(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if data, err = io.ReadAll(zr); err != nil {
				t.Fatal(err)
			}
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(make([]byte, 1<<20), 4<<20)
		for sc.Scan() {
			line := bytes.TrimSpace(sc.Bytes())
			if len(line) == 0 {
				continue
			}
			var e struct {
				Method, Path, Query, Proto, Body string
				Headers                          [][2]string
			}
			if err := json.Unmarshal(line, &e); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			r := &call.Request{Method: e.Method, Path: e.Path, RawQuery: e.Query, Proto: e.Proto,
				Body: []byte(e.Body), BodySize: int64(len(e.Body))}
			if r.Proto == "" {
				r.Proto = "HTTP/1.1"
			}
			for _, h := range e.Headers {
				r.Headers = append(r.Headers, call.Header{Name: h[0], Value: h[1]})
				if strings.EqualFold(h[0], "host") {
					r.Host = h[1]
				}
			}
			out = append(out, r)
		}
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// variants returns req and copies of it whose header names are spelled
// otherwise: upper case, lower case, and past the index's bound (filler
// headers first), so both the index and its fallback are compared.
func variants(req *call.Request) []*call.Request {
	with := func(f func(call.Headers) call.Headers) *call.Request {
		c := *req
		c.Headers = f(append(call.Headers(nil), req.Headers...))
		return &c
	}
	return []*call.Request{
		req,
		with(func(hs call.Headers) call.Headers {
			for i := range hs {
				hs[i].Name = strings.ToUpper(hs[i].Name)
			}
			return hs
		}),
		with(func(hs call.Headers) call.Headers {
			for i := range hs {
				hs[i].Name = strings.ToLower(hs[i].Name)
			}
			return hs
		}),
		with(func(hs call.Headers) call.Headers {
			fill := make(call.Headers, maxIndexedHeaders+1-len(hs), maxIndexedHeaders+1)
			for i := range fill {
				fill[i] = call.Header{Name: "X-Fill", Value: "1"}
			}
			return append(fill, hs...)
		}),
	}
}

// TestHeaderIndexSameFindings runs Inspect over every corpus request (and
// the variants of each) with the header index and with the per-check
// header walks it replaced: the findings must be the same.
func TestHeaderIndexSameFindings(t *testing.T) {
	reqs := corpusRequests(t)
	levels := []int{DefaultParanoia, 4}
	if testing.Short() {
		levels = levels[:1]
	}
	for _, pl := range levels {
		cfg := Config{Paranoia: pl}
		idx := newDetector(t, cfg)
		walk := newDetector(t, cfg)
		walk.noHeaderIndex = true
		indexed, diff := 0, 0
		var hx headerIndex
		for _, r := range reqs {
			for _, v := range variants(r) {
				if hx.build(v.Headers) {
					indexed++
				}
				got, want := idx.Inspect(v, "svc"), walk.Inspect(v, "svc")
				if !reflect.DeepEqual(got, want) {
					if diff++; diff <= 10 {
						t.Errorf("paranoia %d, %s %s?%s %q:\nindex %+v\nwalk  %+v", pl, v.Method, v.Path, v.RawQuery, v.Headers, got, want)
					}
				}
			}
		}
		t.Logf("paranoia %d: %d requests, %d indexed, %d differ", pl, 4*len(reqs), indexed, diff)
		if indexed < len(reqs) {
			t.Errorf("only %d of %d requests indexed: the comparison says little", indexed, 4*len(reqs))
		}
	}
}

// TestHeaderIndexBound: at maxIndexedHeaders headers the index is built,
// one more and the checks walk; the findings of a smuggling request are
// the same either way, wherever its framing headers sit.
func TestHeaderIndexBound(t *testing.T) {
	idx := newDetector(t, Config{})
	walk := newDetector(t, Config{})
	walk.noHeaderIndex = true
	attack := call.Headers{
		{Name: "Content-Length", Value: "4"}, {Name: "Transfer-Encoding", Value: "chunked"},
		{Name: "transfer_encoding", Value: "chunked"}, {Name: "User-Agent", Value: "sqlmap/1.7"},
		{Name: "Accept", Value: "<script>alert(1)</script>"}, {Name: "Content-Type", Value: "application/x-www-form-urlencoded"},
		{Name: "X-Filename", Value: "shell.php"}, {Name: "Authorization", Value: "Bearer eyJhbGciOiJub25lIn0.e30."},
		// Repeated names: the walks keep the first or the last.
		{Name: "content-length", Value: "5"}, {Name: "TRANSFER-ENCODING", Value: "gzip, chunked"},
		{Name: "Content-Type", Value: "text/x-unknown"},
	}
	for _, n := range []int{len(attack), maxIndexedHeaders - 1, maxIndexedHeaders, maxIndexedHeaders + 1, maxIndexedHeaders + 8} {
		for _, atEnd := range []bool{false, true} {
			fill := make(call.Headers, n-len(attack))
			for i := range fill {
				fill[i] = call.Header{Name: "X-Fill", Value: "1"}
			}
			hs := append(append(call.Headers(nil), attack...), fill...)
			if atEnd {
				hs = append(fill, attack...)
			}
			req := &call.Request{Method: "POST", Path: "/api/x", RawQuery: "PHPSESSID=abc", Proto: "HTTP/1.1", Headers: hs, Body: []byte("a=1")}
			var hx headerIndex
			if built := hx.build(hs); built != (n <= maxIndexedHeaders) {
				t.Fatalf("%d headers: index built %v", n, built)
			}
			got, want := idx.Inspect(req, "svc"), walk.Inspect(req, "svc")
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%d headers (attack at end %v):\nindex %+v\nwalk  %+v", n, atEnd, got, want)
			}
			ids := map[string]bool{}
			for _, f := range got {
				ids[f.RuleID] = true
			}
			if len(ids) < 5 {
				t.Errorf("%d headers (attack at end %v): only %v", n, atEnd, ids)
			}
		}
	}
}

// TestHeaderIndexNames compares each mask of the index with the name
// comparison of the walk it replaces, on plain names, and checks that a
// name that is not plain (blanks at its ends, non-ASCII: the walks trim
// and fold Unicode) leaves the request unindexed.
func TestHeaderIndexNames(t *testing.T) {
	names := []string{"Transfer-Encoding", "transfer_encoding", "TRANSFER_ENCODING", "X-Transfer-Encoding",
		"Transfer- Encoding", "Trans fer-Encoding", "transfer-encodings", "ttransfer-encoding", "transfer-encodin",
		"Transfer-Encoding\x00", "Transfer\tEncoding", "Content-Length", "content-LENGTH", "Content-Lengthx",
		"X-File-Name", "x_filename", "FILE", "fil", "If", "Lock-Token", "Proxy", "Translate", "Back-End-Server",
		"X-HTTP-Method-Override-2", "Proxy-Authorization", "Authorization", "Referer", "Host", "Cookie", "Accept",
		"Accept-Encoding", "User-Agent", "Upgrade-Insecure-Requests", "X-Amz-Content-Sha256", "Sec-Fetch-User",
		"X-A", strings.Repeat("transfer-encoding", 5), strings.Repeat("A", 70) + "-Transfer-Encoding"}
	for n := range skipHeaders {
		names = append(names, n, strings.ToUpper(n))
	}
	for n := range knownHeaders {
		names = append(names, n)
	}
	for n := range restrictedHeaders {
		names = append(names, n)
	}
	for _, r := range corpusRequests(t) {
		for _, h := range r.Headers {
			names = append(names, h.Name)
		}
	}
	checked := 0
	for _, name := range names {
		hs := call.Headers{{Name: name, Value: "v"}}
		var hx headerIndex
		if !hx.build(hs) {
			if plainHeaderName(name) {
				t.Errorf("%q: plain but not indexed", name)
			}
			continue
		}
		checked++
		ln := lowerHeaderName(name)
		for k, want := range hdrKeyNames {
			if got := hx.pos[k] != 0; got != headerNameIs(name, want) || got != (hs.Get(want) == "v") || got != (ln == want) {
				t.Errorf("%q: key %s %v", name, want, got)
			}
		}
		te := ln == "transfer_encoding" || (ln != "transfer-encoding" && strings.Contains(strings.ReplaceAll(ln, " ", ""), "transfer-encoding"))
		for _, c := range []struct {
			what      string
			got, want bool
		}{
			{"skip", hx.skip != 0, skipHeaders[ln]},
			{"known", hx.known != 0, knownHeaders[ln]},
			{"restricted", hx.restricted != 0, restrictedHeaders[ln]},
			{"te spelling", hx.teName != 0, te},
			{"file", hx.fileName != 0, strings.Contains(ln, "file")},
			{"authorization (jwt)", hx.pos[hkAuthorization] != 0, strings.EqualFold(name, "Authorization")},
			{"cookie (jwt)", hx.pos[hkCookie] != 0, strings.EqualFold(name, "Cookie")},
		} {
			if c.got != c.want {
				t.Errorf("%q: %s %v, want %v", name, c.what, c.got, c.want)
			}
		}
	}
	if checked < 100 {
		t.Errorf("only %d names checked", checked)
	}
	for _, name := range []string{" Host", "Host ", "Host\t", "\x00Host", "Hoſt", "Coo\u212aie", "Content-Length\u00a0", ""} {
		var hx headerIndex
		if hx.build(call.Headers{{Name: "Accept", Value: "*/*"}, {Name: name, Value: "x"}}) {
			t.Errorf("%q: indexed", name)
		}
	}
}

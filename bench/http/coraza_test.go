package main

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// TestCorazaProxyBlocksAndPasses: the inline WAF of mode (d) answers 403 to
// a PL1 attack without forwarding it and passes the benchmark's request.
func TestCorazaProxyBlocksAndPasses(t *testing.T) {
	hits := 0
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	defer up.Close()
	h, err := newCorazaProxy(strings.TrimPrefix(up.URL, "http://"), 1)
	if err != nil {
		t.Fatal(err)
	}
	px := httptest.NewServer(h)
	defer px.Close()
	get := func(q string) int {
		u := px.URL + "/api/v1/ping"
		if q != "" {
			u += "?q=" + url.QueryEscape(q)
		}
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		req.Host = loadHost
		req.Header.Set("User-Agent", "awload")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := get(""); c != 200 || hits != 1 {
		t.Fatalf("benign: %d, upstream hits %d", c, hits)
	}
	if c := get("1' UNION SELECT password FROM users--"); c != 403 || hits != 1 {
		t.Fatalf("sqli: %d, upstream hits %d", c, hits)
	}
}

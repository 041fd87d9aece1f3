// Command goapi is the Go net/http JSON API the end-to-end tests put under
// the agent. It logs every request its handlers saw ("METHOD PATH STATUS")
// so tests can prove what really reached the server.
package main

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
)

type logger struct {
	mu sync.Mutex
	f  *os.File
}

func (l *logger) write(method, path string, status int) {
	if l.f == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.f, "%s %s %d\n", method, path, status)
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func main() {
	addr := flag.String("addr", ":8080", "listen address")
	logPath := flag.String("log", "", "request log file (empty: no log)")
	tlsCert := flag.String("tls-cert", "", "serve HTTPS with this certificate (PEM); needs -tls-key")
	tlsKey := flag.String("tls-key", "", "private key (PEM) of -tls-cert")
	flag.Parse()

	l := &logger{}
	if *logPath != "" {
		f, err := os.OpenFile(*logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			log.Fatal(err)
		}
		l.f = f
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/ping", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"pong":true}`)
	})
	mux.HandleFunc("GET /api/v1/users", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, []map[string]any{{"id": 1, "name": "ada"}, {"id": 2, "name": "bob"}})
	})
	mux.HandleFunc("POST /api/v1/users", func(w http.ResponseWriter, r *http.Request) {
		var u map[string]any
		if err := json.NewDecoder(r.Body).Decode(&u); err != nil {
			writeJSON(w, 400, map[string]string{"error": "bad json"})
			return
		}
		u["id"] = 42
		writeJSON(w, 201, u)
	})
	user := func(w http.ResponseWriter, r *http.Request) (int, bool) {
		id, err := strconv.Atoi(r.PathValue("id"))
		if err != nil || id <= 0 {
			writeJSON(w, 404, map[string]string{"error": "no such user"})
			return 0, false
		}
		return id, true
	}
	mux.HandleFunc("GET /api/v1/users/{id}", func(w http.ResponseWriter, r *http.Request) {
		if id, ok := user(w, r); ok {
			writeJSON(w, 200, map[string]any{"id": id, "name": "user" + strconv.Itoa(id), "email": "u@example.com"})
		}
	})
	mux.HandleFunc("PUT /api/v1/users/{id}", func(w http.ResponseWriter, r *http.Request) {
		if id, ok := user(w, r); ok {
			var u map[string]any
			_ = json.NewDecoder(r.Body).Decode(&u)
			if u == nil {
				u = map[string]any{}
			}
			u["id"] = id
			writeJSON(w, 200, u)
		}
	})
	mux.HandleFunc("DELETE /api/v1/users/{id}", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := user(w, r); ok {
			w.WriteHeader(http.StatusNoContent)
		}
	})
	mux.HandleFunc("GET /api/v1/users/{id}/orders", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := user(w, r); !ok {
			return
		}
		limit, err := strconv.Atoi(r.URL.Query().Get("limit"))
		if err != nil {
			writeJSON(w, 400, map[string]string{"error": "limit required"})
			return
		}
		orders := make([]map[string]any, 0, limit)
		for i := 0; i < limit && i < 5; i++ {
			orders = append(orders, map[string]any{"id": i, "status": r.URL.Query().Get("status")})
		}
		writeJSON(w, 200, orders)
	})
	echo := func(key string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, 200, map[string]string{key: r.PathValue(key)})
		}
	}
	mux.HandleFunc("GET /api/v1/orders/{uuid}", echo("uuid"))
	mux.HandleFunc("GET /api/v1/files/{sha256}", echo("sha256"))
	mux.HandleFunc("GET /api/v1/reports/{date}", echo("date"))
	mux.HandleFunc("GET /api/v1/accounts/{email}", echo("email"))
	mux.HandleFunc("GET /api/v1/profiles/{username}", echo("username"))
	mux.HandleFunc("POST /api/v1/upload", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			writeJSON(w, 400, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, 200, map[string]any{"bytes": n, "sha256": hex.EncodeToString(h.Sum(nil))})
	})
	big := []byte(`{"data":"` + strings.Repeat("x", 1<<20-11) + `"}`)
	mux.HandleFunc("GET /api/v1/big", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(big)))
		_, _ = w.Write(big)
	})
	mux.HandleFunc("GET /api/v1/search", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		writeJSON(w, 200, map[string]any{"q": q.Get("q"), "page": q.Get("page"), "hits": []string{}})
	})
	mux.HandleFunc("GET /api/v1/etag", func(w http.ResponseWriter, r *http.Request) {
		const tag = `"v1"`
		w.Header().Set("ETag", tag)
		if r.Header.Get("If-None-Match") == tag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		writeJSON(w, 200, map[string]string{"version": "v1"})
	})
	// Behavioural scenarios (issue #12): a login that fails unless the
	// password is "correct", payments whose records from id 1000 on carry
	// a card number (a leaking endpoint), and an undocumented debug
	// endpoint.
	mux.HandleFunc("POST /api/v1/login", func(w http.ResponseWriter, r *http.Request) {
		var c struct{ Username, Password string }
		if err := json.NewDecoder(r.Body).Decode(&c); err != nil || c.Username == "" {
			writeJSON(w, 400, map[string]string{"error": "bad credentials body"})
			return
		}
		if c.Password != "correct" {
			writeJSON(w, 401, map[string]string{"error": "invalid credentials"})
			return
		}
		writeJSON(w, 200, map[string]string{"token": "t-" + c.Username})
	})
	mux.HandleFunc("GET /api/v1/payments/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, ok := user(w, r)
		if !ok {
			return
		}
		p := map[string]any{"id": id, "amount": 1250, "currency": "EUR"}
		if id >= 1000 {
			p["card"] = "4111 1111 1111 1111"
		}
		writeJSON(w, 200, p)
	})
	mux.HandleFunc("GET /api/v1/internal/debug", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"goroutines": 12, "build": "dev"})
	})
	mux.HandleFunc("GET /api/v1/admin/stats", func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		parts := strings.Split(tok, ".")
		if !ok || len(parts) != 3 {
			w.Header().Set("WWW-Authenticate", "Bearer")
			writeJSON(w, 401, map[string]string{"error": "unauthorized"})
			return
		}
		if _, err := base64.RawURLEncoding.DecodeString(parts[1]); err != nil {
			writeJSON(w, 401, map[string]string{"error": "bad token"})
			return
		}
		writeJSON(w, 200, map[string]int{"users": 2, "orders": 5})
	})

	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		mux.ServeHTTP(sw, r)
		if sw.status == 0 {
			sw.status = 200
		}
		l.write(r.Method, r.URL.Path, sw.status)
	})
	srv := &http.Server{Addr: *addr, Handler: h}
	if *tlsCert != "" {
		// HTTP/1.1 only: the tests read the decrypted bytes as HTTP/1.x.
		srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
		log.Fatal(srv.ListenAndServeTLS(*tlsCert, *tlsKey))
	}
	log.Fatal(srv.ListenAndServe())
}

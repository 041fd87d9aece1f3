package tls

import (
	"fmt"
)

// opensslPlan finds where to probe an OpenSSL-API library (libssl, or a
// binary with OpenSSL linked in statically, such as node).
//
// SSL_read and SSL_read_ex are thin wrappers around one internal function
// ssl_read_internal(SSL *s, void *buf, size_t num, size_t *readbytes) (same
// for write), and in the builds we know the wrappers start with an
// instruction the kernel must single-step (sub $n,%rsp or endbr64: ~10 us a
// hit) while the internal function starts with push (emulated: ~0.5 us). So
// when both wrappers call the same target early, that target is probed:
// one probe covers both API variants. Otherwise the four wrappers are probed
// at their entries.
//
// exported forces the exported wrappers (to measure the slow path).
func opensslPlan(ef *elfFile, detail string, exported bool) (*plan, error) {
	p := &plan{kind: "openssl", detail: detail}
	found := false
	for _, fn := range []struct {
		plain, ex string
		dir       uint64
	}{
		{"SSL_read", "SSL_read_ex", dirRead},
		{"SSL_write", "SSL_write_ex", dirWrite},
	} {
		plain, okPlain := ef.syms[fn.plain]
		ex, okEx := ef.syms[fn.ex]
		if !okPlain && !okEx {
			continue
		}
		found = true
		if okPlain && okEx && !exported {
			t1, ok1 := ef.firstCallTarget(plain.Value)
			t2, ok2 := ef.firstCallTarget(ex.Value)
			if ok1 && ok2 && t1 == t2 {
				pts, err := ef.enterAndRet(fn.ex+"/internal", t1, cookie(fn.dir, modeRetEx))
				if err != nil {
					return nil, err
				}
				p.points = append(p.points, pts...)
				continue
			}
		}
		if okPlain {
			pts, err := ef.enterAndRet(fn.plain, plain.Value, cookie(fn.dir, modeRetInt32))
			if err != nil {
				return nil, err
			}
			p.points = append(p.points, pts...)
		}
		if okEx {
			pts, err := ef.enterAndRet(fn.ex, ex.Value, cookie(fn.dir, modeRetEx))
			if err != nil {
				return nil, err
			}
			p.points = append(p.points, pts...)
		}
	}
	if !found {
		return nil, fmt.Errorf("SSL_read/SSL_write: %w", errNoSymbol)
	}
	// Syscalls of the handshake bind the socket fd to the SSL* before the
	// first read, which may be served from the library's buffer.
	if hs, ok := ef.syms["SSL_do_handshake"]; ok {
		pts, err := ef.enterAndRet("SSL_do_handshake", hs.Value, cookie(dirRead, modeHandshake))
		if err != nil {
			return nil, err
		}
		p.points = append(p.points, pts...)
	}
	return p, nil
}

// gnutlsPlan probes gnutls_record_recv/send (ssize_t return = bytes).
func gnutlsPlan(ef *elfFile, detail string) (*plan, error) {
	p := &plan{kind: "gnutls", detail: detail}
	for _, fn := range []struct {
		sym       string
		dir, mode uint64
	}{
		{"gnutls_record_recv", dirRead, modeRetInt64},
		{"gnutls_record_send", dirWrite, modeRetInt64},
		{"gnutls_handshake", dirRead, modeHandshake},
	} {
		s, ok := ef.syms[fn.sym]
		if !ok {
			if fn.mode == modeHandshake {
				continue
			}
			return nil, fmt.Errorf("%s: %w", fn.sym, errNoSymbol)
		}
		pts, err := ef.enterAndRet(fn.sym, s.Value, cookie(fn.dir, fn.mode))
		if err != nil {
			return nil, err
		}
		p.points = append(p.points, pts...)
	}
	return p, nil
}

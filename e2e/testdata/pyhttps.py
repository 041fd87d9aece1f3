#!/usr/bin/env python3
"""HTTPS JSON API (http.server behind the ssl module) for the apiwarden
TLS end-to-end tests.

Usage: pyhttps.py PORT CERT KEY [LOG]. Logs "METHOD PATH STATUS" per
request to LOG, so tests can prove what reached the server.
"""
import json
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

PORT, CERT, KEY = int(sys.argv[1]), sys.argv[2], sys.argv[3]
LOG = sys.argv[4] if len(sys.argv) > 4 else None
BIG = b'{"blob":"' + b"p" * (1200 * 1024) + b'"}'
_lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def _send(self, status, obj=None, raw=None):
        body = raw if raw is not None else (b"" if obj is None else json.dumps(obj).encode())
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)
        if LOG:
            with _lock, open(LOG, "a") as f:
                f.write("%s %s %d\n" % (self.command, urlsplit(self.path).path, status))

    def do_GET(self):
        path = urlsplit(self.path).path
        if path == "/health":
            self._send(200, {"status": "ok"})
        elif path == "/big":
            self._send(200, raw=BIG)
        elif path.startswith("/items/"):
            tail = path.rsplit("/", 1)[1]
            if tail.isdigit() and int(tail) < 100:
                self._send(200, {"id": int(tail)})
            else:
                self._send(404, {"error": "not found"})
        else:
            self._send(404, {"error": "no route"})

    def do_POST(self):
        path = urlsplit(self.path).path
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n)
        if path == "/upload":
            self._send(200, {"bytes": len(raw)})
            return
        if path != "/items":
            self._send(404, {"error": "no route"})
            return
        try:
            item = json.loads(raw)
        except ValueError:
            self._send(400, {"error": "bad json"})
            return
        item["id"] = 7
        self._send(201, item)


ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(CERT, KEY)
srv = ThreadingHTTPServer(("0.0.0.0", PORT), Handler)
srv.daemon_threads = True
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()

#!/usr/bin/env python3
"""Small http.server API for the apiwarden end-to-end tests.

Logs "METHOD PATH STATUS" for every request it handled to the file given as
the second argument, so tests can prove what reached the server.
"""
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 8081
LOG = sys.argv[2] if len(sys.argv) > 2 else None
_lock = threading.Lock()
ITEMS = {1: {"id": 1, "name": "hammer"}, 2: {"id": 2, "name": "saw"}}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive like a real API server

    def log_message(self, fmt, *args):
        pass

    def _send(self, status, obj=None):
        body = b"" if obj is None else json.dumps(obj).encode()
        self.send_response(status)
        if obj is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)
        if LOG:
            with _lock, open(LOG, "a") as f:
                f.write("%s %s %d\n" % (self.command, urlsplit(self.path).path, status))

    def _item_id(self, path):
        try:
            return int(path.rsplit("/", 1)[1])
        except ValueError:
            return None

    def do_GET(self):
        path = urlsplit(self.path).path
        if path == "/health":
            self._send(200, {"status": "ok"})
        elif path == "/items":
            self._send(200, list(ITEMS.values()))
        elif path.startswith("/items/"):
            i = self._item_id(path)
            if i in ITEMS:
                self._send(200, ITEMS[i])
            else:
                self._send(404, {"error": "not found"})
        else:
            self._send(404, {"error": "no route"})

    def do_POST(self):
        path = urlsplit(self.path).path
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n)
        if path != "/items":
            self._send(404, {"error": "no route"})
            return
        try:
            item = json.loads(raw)
        except ValueError:
            self._send(400, {"error": "bad json"})
            return
        item["id"] = max(ITEMS) + 1
        ITEMS[item["id"]] = item
        self._send(201, item)

    def do_DELETE(self):
        path = urlsplit(self.path).path
        if path.startswith("/items/") and self._item_id(path) is not None:
            self._send(204)
        else:
            self._send(404, {"error": "no route"})


if __name__ == "__main__":
    ThreadingHTTPServer.daemon_threads = True
    # socketserver listens with a backlog of 5: eight parallel clients
    # overflow it and the kernel drops handshakes, which the client sees
    # as a request that times out. Real servers listen with hundreds.
    ThreadingHTTPServer.request_queue_size = 512
    ThreadingHTTPServer(("0.0.0.0", PORT), Handler).serve_forever()

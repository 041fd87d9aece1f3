#!/usr/bin/env python3
"""Stand-in for `apiwarden agent` that only speaks the REST contract the
harness relies on (/healthz, /v1/status, /v1/inventory). It attaches nothing.
Used to test the harness and the benchmark plumbing without the real agent."""
import argparse
import json
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

p = argparse.ArgumentParser()
p.add_argument("cmd")
p.add_argument("--interface", action="append", default=[])
p.add_argument("--mode")
p.add_argument("--data-dir")
p.add_argument("--api-addr", default="127.0.0.1:9464")
a = p.parse_args()


class H(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        body = {
            "/healthz": {"ok": True},
            "/v1/status": {"interfaces": a.interface, "counters": {"httpParseErrors": "0"}},
            "/v1/inventory": {"endpoints": []},
        }.get(self.path)
        if body is None:
            self.send_response(404)
            self.end_headers()
            return
        b = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)


host, port = a.api_addr.rsplit(":", 1)
srv = ThreadingHTTPServer((host, int(port)), H)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
srv.serve_forever()

#!/usr/bin/env python3
"""Python HTTPS client of the apiwarden TLS end-to-end tests.

Usage: tlsclient.py HOST PORT CAFILE JOB.json. JOB is a list of requests
{"method", "target", "body"?, "bodySize"?} sent in order on ONE keep-alive
connection (http.client with an ssl context). Prints {"statuses": [...],
"bodyBytes": [...]} as JSON.
"""
import http.client
import json
import ssl
import sys

host, port, cafile, job = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=cafile)
conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=20)
out = {"statuses": [], "bodyBytes": []}
for r in json.load(open(job)):
    body = r.get("body")
    if r.get("bodySize"):
        n = r["bodySize"]
        body = '{"blob":"' + "q" * (n - 12) + '"}'
    headers = {"Content-Type": "application/json"} if body is not None else {}
    conn.request(r["method"], r["target"], body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    out["statuses"].append(resp.status)
    out["bodyBytes"].append(len(data))
conn.close()
print(json.dumps(out))

#!/usr/bin/python3
"""A python grpcio client for h2srv, with no generated stubs.

Messages are encoded by hand (both are one string field, number 1):
grpc.health.v1.HealthCheckRequest{service} and
google.protobuf.StringValue{value}. It calls Health/Check N times for
svc.A (SERVING), M times for an unknown service (NOT_FOUND), then the
server-streaming test.v1.Echo/Feed once, and prints a JSON summary.

usage: grpcclient.py HOST:PORT N M
"""
import json
import sys

import grpc


def string_field(value):
    raw = value.encode()
    if len(raw) > 127:
        raise ValueError("keep test strings short: one-byte length varint")
    return b"\x0a" + bytes([len(raw)]) + raw


def main():
    addr, n, m = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    codes = {}
    with grpc.insecure_channel(addr) as ch:
        check = ch.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        for i in range(n + m):
            svc = "svc.A" if i < n else "svc.unknown"
            try:
                check(string_field(svc), timeout=10)
                code = "OK"
            except grpc.RpcError as e:
                code = e.code().name
            codes[code] = codes.get(code, 0) + 1
        feed = ch.unary_stream(
            "/test.v1.Echo/Feed",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        received = sum(1 for _ in feed(string_field("py"), timeout=10))
    print(json.dumps({"codes": codes, "feed": received}, sort_keys=True))


if __name__ == "__main__":
    main()

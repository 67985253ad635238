#!/usr/bin/env python3
"""A Loki stand-in for the benchmark: accepts pushes on /loki/api/v1/push,
answers 204 at once and keeps the bodies; GET /count decodes what arrived
since the last count and returns the running totals {"pushes", "entries",
"bad"}. Decoding is deferred so that this process takes no CPU from the
measured service while the load runs. Loki's push format is a snappy-compressed
(block format) protobuf logproto.PushRequest; both are decoded here with the
standard library only, so the benchmark needs no pip install.

usage: loki_standin.py PORT_FILE   (binds 127.0.0.1:0, writes the port)
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def varint(buf, pos):
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def snappy_decompress(buf):
    """Snappy's raw block format: a varint length, then literals and copies."""
    length, pos = varint(buf, 0)
    out = bytearray()
    while pos < len(buf):
        tag = buf[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:  # literal
            n = tag >> 2
            if n >= 60:
                width = n - 59
                n = int.from_bytes(buf[pos : pos + width], "little")
                pos += width
            n += 1
            out += buf[pos : pos + n]
            pos += n
            continue
        if kind == 1:
            n = ((tag >> 2) & 7) + 4
            offset = ((tag >> 5) << 8) | buf[pos]
            pos += 1
        elif kind == 2:
            n = (tag >> 2) + 1
            offset = int.from_bytes(buf[pos : pos + 2], "little")
            pos += 2
        else:
            n = (tag >> 2) + 1
            offset = int.from_bytes(buf[pos : pos + 4], "little")
            pos += 4
        start = len(out) - offset
        if offset <= 0 or start < 0:
            raise ValueError("snappy: bad copy offset")
        for i in range(n):  # copies may overlap their own output
            out.append(out[start + i])
    if len(out) != length:
        raise ValueError(f"snappy: expected {length} bytes, got {len(out)}")
    return bytes(out)


def fields(buf):
    """(field number, wire type, value) of one protobuf message's fields."""
    pos = 0
    while pos < len(buf):
        key, pos = varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = varint(buf, pos)
        elif wire == 2:
            n, pos = varint(buf, pos)
            value, pos = buf[pos : pos + n], pos + n
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"protobuf: wire type {wire}")
        yield number, wire, value


def count_entries(body):
    """PushRequest.streams (1) -> StreamAdapter.entries (2)."""
    total = 0
    for number, wire, stream in fields(snappy_decompress(body)):
        if number == 1 and wire == 2:
            total += sum(1 for n, w, _ in fields(stream) if n == 2 and w == 2)
    return total


class Counts:
    lock = threading.Lock()
    pending = []
    pushes = 0
    entries = 0
    bad = 0

    @classmethod
    def settle(cls):
        with cls.lock:
            pending, cls.pending = cls.pending, []
        for body in pending:
            try:
                n = count_entries(body)
            except (ValueError, IndexError):
                n = None
            with cls.lock:
                cls.pushes += 1
                if n is None:
                    cls.bad += 1
                else:
                    cls.entries += n


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with Counts.lock:
            Counts.pending.append(body)
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        Counts.settle()
        with Counts.lock:
            body = json.dumps(
                {"pushes": Counts.pushes, "entries": Counts.entries, "bad": Counts.bad}
            ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(sys.argv[1], "w") as f:
        f.write(str(server.server_address[1]))
    server.serve_forever()


if __name__ == "__main__":
    main()

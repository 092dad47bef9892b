"""Tiny real servers for tests, the demo and benchmarks: each answers with its own identity.

Run inside a network namespace (the testbed does this with `ip netns exec`):

    python -m lb.realserver http --port 80 --name r1      # body "r1\\n", header X-Real-Server: r1
    python -m lb.realserver tcp  --port 9000 --name r1    # line echo: "hello\\n" -> "r1 hello\\n"
    python -m lb.realserver udp  --port 5353 --name r1    # datagram echo: b"ping" -> b"r1 ping"

Why identity in every answer: a balancer test has to know which real served each request or each
message of a held connection, and the answer itself is the only witness that survives NAT, DR and
IPIP alike. Each server prints one line `ready <kind> <port>` on stdout once its socket is bound,
so a caller can wait for readiness without polling. Pure standard library, so it runs anywhere the
interpreter does.
"""

from __future__ import annotations

import argparse
import os
import socket
import socketserver
import struct
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

IDENTITY_HEADER = "X-Real-Server"
CLIENT_HEADER = "X-Client-Address"
MAX_LINE = 65536
# Linux's IP_PKTINFO (include/uapi/linux/in.h); Python 3.11's socket module does not export it.
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)


def _ready(kind: str, port: int) -> None:
    print(f"ready {kind} {port}", flush=True)


def make_http_handler(
    name: str, status: int, fail_file: str | None
) -> type[BaseHTTPRequestHandler]:
    """A handler answering every GET/HEAD with `name`; 500 while `fail_file` exists.

    HTTP/1.0 and `Connection: close` on purpose: every request is a new TCP connection, so a
    client loop of N requests asks the balancer N scheduling questions (keepalive would pin them
    all to the first real). The fail file lets a health-check test turn a real sick and well
    again without restarting it.
    """

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"
        server_version = "lbxdp-realserver"

        def _answer(self, with_body: bool) -> None:
            code = status
            if fail_file is not None and os.path.exists(fail_file):
                code = 500
            body = f"{name}\n".encode()
            self.send_response(code)
            self.send_header(IDENTITY_HEADER, name)
            self.send_header(CLIENT_HEADER, f"{self.client_address[0]}:{self.client_address[1]}")
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if with_body:
                self.wfile.write(body)

        def do_GET(self) -> None:  # http.server's naming
            self._answer(with_body=True)

        def do_HEAD(self) -> None:
            self._answer(with_body=False)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            # Quiet by default: a benchmark must not be bounded by a server's log writes.
            pass

    return Handler


class _ReusableHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024


def serve_http(port: int, name: str, bind: str, status: int, fail_file: str | None) -> None:
    server = _ReusableHTTPServer((bind, port), make_http_handler(name, status, fail_file))
    _ready("http", port)
    server.serve_forever()


class _LineEcho(socketserver.StreamRequestHandler):
    """Echo each line prefixed by the server's name; the connection is held until the client
    closes it, so a test can keep a long-lived flow open across balancer edits or restarts."""

    name = ""

    def handle(self) -> None:
        prefix = f"{self.name} ".encode()
        while True:
            line = self.rfile.readline(MAX_LINE)
            if not line:
                return
            self.wfile.write(prefix + line)
            self.wfile.flush()


class _ThreadingTCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024


def serve_tcp(port: int, name: str, bind: str) -> None:
    handler = type("Echo", (_LineEcho,), {"name": name})
    server = _ThreadingTCPServer((bind, port), handler)
    _ready("tcp", port)
    server.serve_forever()


def serve_udp(port: int, name: str, bind: str) -> None:
    """Reply to each datagram with `name + b" " + payload`, from the address it was sent to.

    IP_PKTINFO makes the reply leave from the datagram's destination address: a direct-routing
    or IPIP real receives for the VIP on lo and must answer from the VIP, not from eth0's address.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
    sock.bind((bind, port))
    _ready("udp", port)
    prefix = f"{name} ".encode()
    while True:
        data, ancdata, _flags, peer = sock.recvmsg(MAX_LINE, socket.CMSG_SPACE(12))
        reply_anc = [
            (socket.IPPROTO_IP, IP_PKTINFO, _reply_pktinfo(payload))
            for level, kind, payload in ancdata
            if level == socket.IPPROTO_IP and kind == IP_PKTINFO
        ]
        try:
            sock.sendmsg([prefix + data], reply_anc, 0, peer)
        except OSError:
            # A reply that cannot be routed is the test's signal, not this server's failure.
            continue


def _reply_pktinfo(received: bytes) -> bytes:
    """struct in_pktinfo {ifindex, spec_dst, addr} for the reply: source = the address the
    datagram was sent to (ip(7)); ifindex 0 so routing, not the ingress device, picks the way out."""
    _ifindex, _spec_dst, header_dst = struct.unpack("=i4s4s", received[:12])
    return struct.pack("=i4s4s", 0, header_dst, bytes(4))


def _port(text: str) -> int:
    value = int(text)
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"port out of range: {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lb.realserver",
        description="Tiny servers that answer with their own identity (for lbxdp tests).",
        epilog="examples:\n"
        "  python -m lb.realserver http --port 80 --name r1\n"
        "  python -m lb.realserver http --port 80 --name r2 --fail-file /tmp/r2.sick\n"
        "  python -m lb.realserver tcp --port 9000 --name r1\n"
        "  python -m lb.realserver udp --port 5353 --name r1\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("kind", choices=("http", "tcp", "udp"))
    parser.add_argument("--port", type=_port, required=True)
    parser.add_argument("--name", required=True, help="identity put in every answer")
    parser.add_argument("--bind", default="0.0.0.0", help="address to bind (default: all)")
    parser.add_argument("--status", type=int, default=200, help="HTTP status to answer with")
    parser.add_argument("--fail-file", default=None, help="HTTP: answer 500 while this file exists")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.kind == "http":
            serve_http(args.port, args.name, args.bind, args.status, args.fail_file)
        elif args.kind == "tcp":
            serve_tcp(args.port, args.name, args.bind)
        else:
            serve_udp(args.port, args.name, args.bind)
    except OSError as err:
        print(f"realserver: {args.kind} on port {args.port}: {err.strerror or err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Probes against real sockets on loopback (no root, no namespaces needed)."""

import http.server
import socket
import threading
from ipaddress import IPv4Address

import pytest

from lb.daemon.health import CheckKind, HealthCheck
from lb.datapath.probes import probe


@pytest.fixture
def http_server():
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            self.send_response(200 if self.path == "/ok" else 500)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


LOCAL = IPv4Address("127.0.0.1")


def test_tcp_probe(http_server):
    assert probe(LOCAL, http_server, HealthCheck(CheckKind.TCP))[0]
    ok, detail = probe(LOCAL, closed_port(), HealthCheck(CheckKind.TCP))
    assert not ok and "refused" in detail.lower()


def test_http_probe_checks_status(http_server):
    assert probe(LOCAL, http_server, HealthCheck(CheckKind.HTTP, path="/ok"))[0]
    ok, detail = probe(LOCAL, http_server, HealthCheck(CheckKind.HTTP, path="/broken"))
    assert not ok and "status 500, expected 200" in detail

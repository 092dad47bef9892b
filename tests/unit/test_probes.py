"""Probes against real sockets on loopback (no root, no namespaces needed)."""

import http.server
import socket
import threading
import time
from ipaddress import IPv4Address

import pytest

from lb.balancer.health import CheckKind, HealthCheck
from lb.datapath.probes import probe


@pytest.fixture
def http_server():
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # http.server's name
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


# --- issue 14: one deadline per probe -------------------------------------------------------------


class Dripper:
    """A real that accepts and then sends `payload` one byte every `gap` seconds (or nothing, for an
    empty payload), until the prober hangs up or `stop` is set. Bounded: one connection, at most
    len(payload) sends, and the listener closes after the test."""

    def __init__(self, payload: bytes, gap: float) -> None:
        self.payload, self.gap = payload, gap
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.listener.settimeout(5)
        self.port = self.listener.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with conn:
            for i in range(len(self.payload)):
                if self.stop.wait(self.gap):
                    return
                try:
                    conn.sendall(self.payload[i : i + 1])
                except OSError:
                    return  # the probe gave up and closed
            self.stop.wait(10)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.listener.close()


@pytest.fixture
def dripper():
    made: list[Dripper] = []

    def make(payload: bytes, gap: float = 0.4) -> Dripper:
        made.append(Dripper(payload, gap))
        return made[-1]

    try:
        yield make
    finally:
        for d in made:
            d.close()


HTTP_CHECK = HealthCheck(CheckKind.HTTP, interval=2.0, timeout=1.0)


def timed_probe(port: int, check: HealthCheck = HTTP_CHECK) -> tuple[bool, str, float]:
    start = time.monotonic()
    ok, detail = probe(LOCAL, port, check)
    return ok, detail, time.monotonic() - start


def test_a_real_that_drips_its_status_line_cannot_hold_the_probe(dripper) -> None:
    # 17 bytes at 0.4 s each: 6.8 s with a per-recv timeout of 1 s; one deadline ends it at 1 s.
    real = dripper(b"HTTP/1.0 200 OK\r\n", gap=0.4)
    ok, detail, took = timed_probe(real.port)
    assert (ok, detail) == (False, f"http 127.0.0.1:{real.port}: no answer within 1s")
    assert 0.9 <= took <= 1.3, took


def test_a_real_that_accepts_and_says_nothing_fails_at_the_timeout(dripper) -> None:
    ok, detail, took = timed_probe(dripper(b"").port)
    assert not ok and detail.endswith("no answer within 1s")
    assert 0.9 <= took <= 1.3, took


def test_a_status_line_that_arrives_in_time_in_pieces_passes(dripper) -> None:
    ok, detail, took = timed_probe(dripper(b"HTTP/1.0 200 OK\r\n", gap=0.01).port)
    assert ok and detail == "http /: 200", detail
    assert took < 1.0


@pytest.mark.parametrize(
    ("answer", "detail"),
    [
        (b"HTTP/1.0 \xb200 OK\r\n", "http: bad status line 'HTTP/1.0 ²00 OK'"),  # latin-1 '²' isdigit(), int() raises
        (b"HTTP/1.0 2000 OK\r\n", "http: bad status line 'HTTP/1.0 2000 OK'"),
        (b"SSH-2.0-OpenSSH_9.2\r\n", "http: bad status line 'SSH-2.0-OpenSSH_9.2'"),
        (b"x" * 10_000, "http: bad status line '" + "x" * 60 + "'"),  # read stops at 256 bytes
    ],
)
def test_odd_answers_are_failures_with_a_reason(dripper, answer: bytes, detail: str) -> None:
    ok, got, took = timed_probe(dripper(answer, gap=0).port)
    assert (ok, got) == (False, detail)
    assert took < 1.0

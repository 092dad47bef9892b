"""Issue 14, item 5: a real that answers one byte at a time, or accepts and says nothing, cannot hold
a health probe past its timeout. The probe runs in the balancer's namespace, as the daemon's does,
against servers in a real's namespace over the testbed's veths.

The slow servers are sockets made inside r1's namespace and served from a thread of this process
(one connection each, a bounded number of sends, closed in `finally`); the well-behaved real is
lb.realserver's HTTP server, as every other e2e test uses.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from ipaddress import IPv4Address

import pytest

from lb.balancer.health import CheckKind, HealthCheck
from lb.datapath.probes import probe
from lb.datapath.testbed import Topology, in_netns_call

pytestmark = [pytest.mark.root, pytest.mark.e2e]

SLOW_PORT = 8080
HTTP_PORT = 80
CHECK = HealthCheck(CheckKind.HTTP, interval=2.0, timeout=1.0)
# One deadline of 1.0 s, plus the scheduling slack of a 2-CPU machine shared with other tests.
LATEST = 1.3


@contextmanager
def slow_real(topo: Topology, payload: bytes, gap: float) -> Iterator[None]:
    """r1 listens on SLOW_PORT and, once a probe connects, sends `payload` one byte every `gap`
    seconds (nothing at all for b""), then holds the connection until told to stop."""
    listener = topo.socket("r1")
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((topo.real("r1").ip, SLOW_PORT))
    listener.listen(1)
    listener.settimeout(5)
    stop = threading.Event()

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            for i in range(len(payload)):
                if stop.wait(gap):
                    return
                try:
                    conn.sendall(payload[i : i + 1])
                except OSError:
                    return  # the probe gave up and closed
            stop.wait(10)

    thread = threading.Thread(target=serve, name="slow-real", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def probe_from_lb(topo: Topology, port: int, check: HealthCheck = CHECK) -> tuple[bool, str, float]:
    """One probe from the balancer's namespace to r1: (ok, detail, seconds it took)."""
    address = IPv4Address(topo.real("r1").ip)

    def run() -> tuple[bool, str, float]:
        start = time.monotonic()
        ok, detail = probe(address, port, check)
        return ok, detail, time.monotonic() - start

    return in_netns_call(topo.lb.netns, run, timeout=10)


@pytest.fixture
def one_real(testbed: Callable[..., Topology]) -> Topology:
    built = testbed("two_arm", reals=1)
    built.start_http_servers(port=HTTP_PORT)
    return built


def test_a_real_dripping_its_status_line_fails_the_probe_at_its_timeout(one_real: Topology) -> None:
    # "HTTP/1.0 200 OK\r\n" at 0.4 s a byte would take 6.8 s: per-recv timeouts of 1 s never fire.
    with slow_real(one_real, b"HTTP/1.0 200 OK\r\n", gap=0.4):
        ok, detail, took = probe_from_lb(one_real, SLOW_PORT)
    assert (ok, detail) == (False, f"http {one_real.real('r1').ip}:{SLOW_PORT}: no answer within 1s")
    assert 0.9 <= took <= LATEST, f"the probe took {took:.2f}s"


def test_a_real_that_accepts_and_never_answers_fails_the_probe_at_its_timeout(one_real: Topology) -> None:
    with slow_real(one_real, b"", gap=0.4):
        ok, detail, took = probe_from_lb(one_real, SLOW_PORT)
    assert (ok, detail) == (False, f"http {one_real.real('r1').ip}:{SLOW_PORT}: no answer within 1s")
    assert 0.9 <= took <= LATEST, f"the probe took {took:.2f}s"
    # the same silent real passes a TCP check: it does accept
    with slow_real(one_real, b"", gap=0.4):
        assert probe_from_lb(one_real, SLOW_PORT, HealthCheck(CheckKind.TCP))[:2] == (True, "tcp connect ok")


def test_a_normal_real_passes_well_within_the_timeout(one_real: Topology) -> None:
    ok, detail, took = probe_from_lb(one_real, HTTP_PORT)
    assert (ok, detail) == (True, "http /: 200")
    assert took < 0.5, f"the probe took {took:.2f}s"

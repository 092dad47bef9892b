"""Heartbeat probes: a TCP connect, or an HTTP GET whose status line is checked.

Blocking, one socket each; the daemon runs them off its packet loop on a small pool of threads, so
a probe that overstays holds a worker and delays every other real's check. Each probe therefore
has one deadline, `timeout` seconds from its start, for all of it: connect, send the request, read
the status line. A socket timeout alone bounds each operation, not their sum: a real that accepts
and then answers one byte every few tenths of a second would keep an HTTP probe for the length of
its status line times that. Here every recv gets only the time left, and at most STATUS_LINE_MAX
bytes are read.
"""

from __future__ import annotations

import socket
import time
from ipaddress import IPv4Address

from lb.balancer.health import CheckKind, HealthCheck

STATUS_LINE_MAX = 256  # "HTTP/1.1 200 OK\r\n" and a generous reason phrase; the rest is not read


class _Late(Exception):
    """The probe's deadline passed."""


def probe(address: IPv4Address, port: int, check: HealthCheck) -> tuple[bool, str]:
    """(ok, one-line detail) for one probe of one real, within `check.timeout` seconds overall."""
    target = (str(address), check.port or port)
    where = f"{check.kind.value} {target[0]}:{target[1]}"
    deadline = time.monotonic() + check.timeout
    try:
        with socket.create_connection(target, timeout=check.timeout) as sock:
            if check.kind is CheckKind.TCP:
                return True, "tcp connect ok"
            request = f"GET {check.path} HTTP/1.0\r\nHost: {address}\r\nUser-Agent: lbxdp-health\r\n\r\n"
            sock.settimeout(_left(deadline))
            sock.sendall(request.encode("ascii"))  # sendall's timeout bounds the whole send (Python ≥ 3.5)
            status_line = _read_status_line(sock, deadline)
    except (_Late, TimeoutError):
        return False, f"{where}: no answer within {check.timeout:g}s"
    except OSError as exc:
        return False, f"{where}: {exc.strerror or exc}"
    return _judge(status_line, check)


def _left(deadline: float) -> float:
    """Seconds until the deadline; _Late once it has passed (settimeout(0) would mean non-blocking)."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise _Late
    return left


def _read_status_line(sock: socket.socket, deadline: float) -> bytes:
    """The first line of the answer (without CR LF), at most STATUS_LINE_MAX bytes, by the deadline."""
    data = b""
    while b"\n" not in data and len(data) < STATUS_LINE_MAX:
        sock.settimeout(_left(deadline))
        chunk = sock.recv(STATUS_LINE_MAX - len(data))
        if not chunk:
            break
        data += chunk
    return data.split(b"\n", 1)[0].rstrip(b"\r")


def _judge(status_line: bytes, check: HealthCheck) -> tuple[bool, str]:
    """RFC 9112 §4: `HTTP-version SP status-code SP [reason]`, the status three ASCII digits."""
    text = status_line.decode("latin-1").strip()
    parts = text.split()
    code_ok = len(parts) >= 2 and parts[1].isascii() and parts[1].isdigit() and len(parts[1]) == 3
    if not code_ok or not parts[0].startswith("HTTP/"):
        return False, f"http: bad status line {text[:60]!r}"
    status = int(parts[1])
    if status != check.expect:
        return False, f"http {check.path}: status {status}, expected {check.expect}"
    return True, f"http {check.path}: {status}"

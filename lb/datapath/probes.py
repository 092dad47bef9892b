"""Heartbeat probes: a TCP connect, or an HTTP GET whose status line is checked.

Blocking, one socket each, bounded by the check's timeout; the daemon runs them off its packet loop.
"""

from __future__ import annotations

import socket
from ipaddress import IPv4Address

from lb.daemon.health import CheckKind, HealthCheck


def probe(address: IPv4Address, port: int, check: HealthCheck) -> tuple[bool, str]:
    """(ok, one-line detail) for one probe of one real."""
    target = (str(address), check.port or port)
    try:
        with socket.create_connection(target, timeout=check.timeout) as sock:
            if check.kind is CheckKind.TCP:
                return True, "tcp connect ok"
            request = f"GET {check.path} HTTP/1.0\r\nHost: {address}\r\nUser-Agent: lbxdp-health\r\n\r\n"
            sock.sendall(request.encode())
            status_line = sock.makefile("rb").readline(256).decode("latin-1").strip()
    except OSError as exc:
        return False, f"{check.kind.value} {target[0]}:{target[1]}: {exc.strerror or exc}"
    parts = status_line.split()
    if len(parts) < 2 or not parts[1].isdigit():
        return False, f"http: bad status line {status_line[:60]!r}"
    status = int(parts[1])
    if status != check.expect:
        return False, f"http {check.path}: status {status}, expected {check.expect}"
    return True, f"http {check.path}: {status}"

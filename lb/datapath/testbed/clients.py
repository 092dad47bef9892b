"""Clients that report which real answered: a curl loop, held TCP connections, UDP queries.

Sockets are made inside the client's namespace (nsenter.ns_socket) and driven from this process,
so a test can hold hundreds of connections without a process each. Every call is bounded in
count and time.
"""

from __future__ import annotations

import socket
import time
from types import TracebackType

from .nsenter import ns_socket
from .procs import run

MAX_REQUESTS = 100_000
_CURL_FORMAT = "%{http_code} %header{x-real-server}\\n"


def host_socket(netns: str, kind: int = socket.SOCK_STREAM) -> socket.socket:
    return ns_socket(netns, socket.AF_INET, kind)


def curl_loop(netns: str, n: int, url: str, *, source: str | None = None,
              timeout: float = 2.0) -> list[str | None]:
    """n requests from one curl process (URL globbing makes n transfers, sequential).

    Each transfer opens its own connection because the servers close after each answer
    (realserver speaks HTTP/1.0, nginx is configured with keepalive_timeout 0), so each request is
    a fresh scheduling decision for the balancer. A failed transfer prints code 000 and no
    header; curl moves on to the next one.
    """
    if not 0 < n <= MAX_REQUESTS:
        raise ValueError(f"request count must be in 1..{MAX_REQUESTS}, got {n}")
    sep = "&" if "?" in url else "?"
    argv = ["curl", "-sS", "-o", "/dev/null", "-w", _CURL_FORMAT,
            "--connect-timeout", f"{timeout:g}", "--max-time", f"{timeout:g}"]
    if source:
        argv += ["--interface", source]
    if n == 1:
        argv.append(url)
    else:
        argv.append(f"{url}{sep}lbx=[1-{n}]")
    done = run(netns, argv, timeout=n * timeout + 5.0, check=False)
    answers: list[str | None] = []
    for line in done.stdout.splitlines():
        code, _, name = line.partition(" ")
        # Any HTTP status counts as an answer (a sick real answering 500 still answered).
        answers.append(name.strip() or None if code != "000" else None)
    if len(answers) != n:
        raise RuntimeError(f"curl made {len(answers)} of {n} requests: {done.stderr.strip()[-200:]}")
    return answers


class HeldConnection:
    """A long-lived TCP connection to `realserver tcp`, which prefixes each echoed line with its
    name. `exchange(k)` sends k lines and checks every reply came from the same real and carried
    our line back intact, so a flow that moved or broke mid-connection fails loudly."""

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        self.sock = sock
        self.timeout = timeout
        self.identity: str | None = None
        self.sent = 0
        self._buffer = b""

    @classmethod
    def open(cls, netns: str, dst: str, port: int, *, source: str | None = None,
             timeout: float = 2.0) -> HeldConnection:
        sock = host_socket(netns, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            if source:
                sock.bind((source, 0))
            sock.connect((dst, port))
        except BaseException:
            sock.close()
            raise
        return cls(sock, timeout)

    @property
    def local(self) -> tuple[str, int]:
        return self.sock.getsockname()  # type: ignore[no-any-return]

    def exchange(self, k: int = 1) -> str:
        """Send k lines, read k replies; return the (single) answering real's name."""
        if not 0 < k <= MAX_REQUESTS:
            raise ValueError(f"message count must be in 1..{MAX_REQUESTS}, got {k}")
        for _ in range(k):
            self.sent += 1
            line = f"msg {self.sent}"
            self.sock.sendall(line.encode() + b"\n")
            reply = self._readline()
            name, _, echoed = reply.partition(" ")
            if echoed != line:
                raise ConnectionError(f"reply {reply!r} does not echo {line!r}")
            if self.identity is None:
                self.identity = name
            elif name != self.identity:
                raise ConnectionError(f"connection moved from {self.identity} to {name}")
        assert self.identity is not None
        return self.identity

    def _readline(self) -> str:
        deadline = time.monotonic() + self.timeout
        while b"\n" not in self._buffer:
            self.sock.settimeout(max(0.001, deadline - time.monotonic()))
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("connection closed by peer")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> HeldConnection:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def udp_query(netns: str, dst: str, port: int, payload: bytes, *, source: str | None = None,
              timeout: float = 1.0) -> str | None:
    """Send one datagram, wait for the echo; the answering real's name, or None on timeout."""
    sock = host_socket(netns, socket.SOCK_DGRAM)
    try:
        sock.settimeout(timeout)
        sock.bind((source or "0.0.0.0", 0))
        sock.sendto(payload, (dst, port))
        try:
            data, _peer = sock.recvfrom(65536)
        except TimeoutError:
            return None
        name, _, echoed = data.partition(b" ")
        if echoed != payload:
            raise ConnectionError(f"UDP reply {data!r} does not echo {payload!r}")
        return name.decode()
    finally:
        sock.close()

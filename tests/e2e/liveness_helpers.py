"""Shared pieces of issue 5's end-to-end tests: a lab with one attached lbxdp, health rows from
`-L -n`, a background loop that keeps held connections talking, and a bounded SYN flood.

Each test module builds one lab (bcc compiles the program for seconds at attach) and gives every
test its own service port on the VIP, so tests do not see each other's flows. Everything here is
bounded in count and time and stays inside the lab's namespaces (team brief, NETWORK RULES).
"""

from __future__ import annotations

import ipaddress
import json
import random
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from lbxdp_helpers import Lbxdp

from lb.datapath.testbed import HeldConnection, Topology, in_netns_call, two_arm

HTTP_PORT = 8080  # every real's HTTP server (answers 500 while its fail file exists)
TCP_PORT = 9001  # every real's line-echo server, for held connections


@dataclass
class Lab:
    topo: Topology
    lbxdp: Lbxdp
    http: dict[str, subprocess.Popen[bytes]]
    tcp: dict[str, subprocess.Popen[bytes]]

    def vip(self, port: int) -> str:
        return f"{self.topo.vip}:{port}"

    def reals(self, port: int, *flags: str) -> list[tuple[str, ...]]:
        """(RIP:PORT, -m, flags…) for every real, as Lbxdp.service wants them."""
        return [(f"{r.ip}:{port}", "-m", *flags) for r in self.topo.reals]

    def rip(self, name: str, port: int) -> str:
        return f"{self.topo.real(name).ip}:{port}"

    def restart_http(self, name: str) -> None:
        self.http.update(self.topo.start_http_servers(port=HTTP_PORT, reals=[name], fail_files=True))


@contextmanager
def lab(attach_args: tuple[str, ...] = (), **options: Any) -> Iterator[Lab]:
    """A two-arm topology with three reals running HTTP and TCP servers and lbxdp attached;
    detached and torn down on exit, whatever happened."""
    options.setdefault("reals", 3)
    with two_arm(**options) as topo:
        http = topo.start_http_servers(port=HTTP_PORT, fail_files=True)
        tcp = topo.start_tcp_servers(port=TCP_PORT)
        lbxdp = Lbxdp(topo)
        names = [i.name for i in topo.lb_ifaces]
        lbxdp("attach", *names, *attach_args, timeout=90.0)
        try:
            yield Lab(topo, lbxdp, http, tcp)
        finally:
            lbxdp("detach", check=False)


# -- what lbxdp reports ---------------------------------------------------------------------------


def health_states(lbxdp: Lbxdp, service: str) -> dict[str, tuple[str, str]]:
    """The "Health checks:" rows of `-L -n -t SERVICE`: RIP:PORT → ("UP"|"DOWN", last result)."""
    out = lbxdp("-L", "-n", "-t", service).stdout
    _, found, section = out.partition("Health checks:\n")
    assert found, f"no health section in -L -n:\n{out}"
    rows = {}
    for line in section.splitlines():
        parts = line.split(None, 3)
        if len(parts) >= 3 and parts[0] == "->":
            rows[parts[1]] = (parts[2], parts[3] if len(parts) > 3 else "")
    return rows


def status_json(lbxdp: Lbxdp) -> dict[str, Any]:
    return json.loads(lbxdp("status", "--json").stdout)  # type: ignore[no-any-return]


def timed(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.05) -> float:
    """Seconds until `predicate` is truthy (bounded by `timeout`, else AssertionError)."""
    start = time.monotonic()
    deadline = start + timeout
    last: BaseException | None = None
    while True:
        try:
            if predicate():
                return time.monotonic() - start
        except Exception as exc:  # noqa: BLE001 - "not yet"
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not true after {timeout:.1f} s (last error: {last!r})")
        time.sleep(interval)


# -- sustained traffic on held connections --------------------------------------------------------


@dataclass
class Talker:
    """A background thread that keeps every held connection exchanging lines (one line each per
    round, a round every `pause` seconds, at most `max_rounds`), and records what went wrong and on
    which connection. `exclude()` stops talking on a connection (e.g. one whose real is deleted)."""

    conns: list[HeldConnection]
    pause: float = 0.02
    max_rounds: int = 5000
    errors: dict[int, list[str]] = field(default_factory=dict)
    rounds: int = 0
    _excluded: set[int] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Talker:
        self._thread = threading.Thread(target=self._loop, name="talker", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def exclude(self, conn: HeldConnection) -> None:
        with self._lock:
            self._excluded.add(id(conn))

    def wait_rounds(self, n: int, timeout: float = 10.0) -> None:
        """Let at least n more full rounds happen (traffic really flowed across an edit)."""
        target = self.rounds + n
        timed(lambda: self.rounds >= target or not self._thread or not self._thread.is_alive(),
              timeout, f"{n} rounds of held-connection traffic")

    def _loop(self) -> None:
        while not self._stop.is_set() and self.rounds < self.max_rounds:
            for conn in self.conns:
                with self._lock:
                    if id(conn) in self._excluded:
                        continue
                    try:
                        conn.exchange(1)
                    except (OSError, ConnectionError) as exc:
                        self.errors.setdefault(self.conns.index(conn), []).append(repr(exc))
                        self._excluded.add(id(conn))  # a broken socket stays broken
            self.rounds += 1
            self._stop.wait(self.pause)


# -- a bounded SYN flood from spoofed sources ----------------------------------------------------


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def syn_packet(src: str, sport: int, dst: str, dport: int, seq: int) -> bytes:
    """An IPv4 TCP SYN (20-byte headers, both checksums right), for a raw IP_HDRINCL socket."""
    s, d = socket.inet_aton(src), socket.inet_aton(dst)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, 0x02, 64240, 0, 0)
    csum = _checksum(s + d + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(tcp)) + tcp)
    tcp = tcp[:16] + struct.pack("!H", csum) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), seq & 0xFFFF, 0, 64, socket.IPPROTO_TCP, 0, s, d)
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    return ip + tcp


@dataclass(frozen=True)
class FloodResult:
    sent: int
    seconds: float


def syn_flood(topo: Topology, dport: int, count: int, *, sources: str, burst: int = 200,
              gap: float = 0.02, max_seconds: float = 20.0, seed: int = 5) -> FloodResult:
    """Send `count` SYNs to VIP:dport from random (address, port) pairs of the `sources` network
    (inside the testbed's 10.x space), from the client namespace through a raw socket: bursts of
    `burst` with `gap` seconds between, stopping at `max_seconds` whatever is left."""
    net = ipaddress.IPv4Network(sources)
    if not net.subnet_of(ipaddress.IPv4Network("10.0.0.0/8")):
        raise ValueError(f"spoofed sources must stay in 10.0.0.0/8, got {sources}")
    hosts = [str(h) for h in net.hosts()]
    rng = random.Random(seed)
    sock = in_netns_call(topo.client.netns,
                         lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW))
    start = time.monotonic()
    sent = 0
    try:
        while sent < count and time.monotonic() - start < max_seconds:
            for _ in range(min(burst, count - sent)):
                pkt = syn_packet(rng.choice(hosts), rng.randrange(1024, 65536), topo.vip, dport,
                                 rng.getrandbits(32))
                try:
                    sock.sendto(pkt, (topo.vip, 0))
                except BlockingIOError:  # a full qdisc: the flood is bounded anyway
                    pass
                sent += 1
            time.sleep(gap)
    finally:
        sock.close()
    return FloodResult(sent, time.monotonic() - start)

"""The soak's clients: threads in this process whose sockets live in the client's namespace.

Three kinds, every one of them recording a ConnRecord per connection (or UDP exchange):

- TCP churn: connect to the VIP, exchange one to three lines with `realserver tcp` (each answer
  starts with the real's name: that is how the record knows which real answered), close; paced;
- held TCP connections: kept open for tens of seconds, one line a second, so that they live through
  config edits and daemon SIGKILLs (XDP alone must carry them while no daemon runs);
- UDP: a new socket (a new flow) sends one to three datagrams to `realserver udp`.

Every wait is bounded and checks the stop flag at least every half second; a connect waits up to
CONNECT_TIMEOUT, long enough for the SYN retransmissions that get a new connection through a
daemon restart (1 + 2 + 4 + 8 + 16 s).
"""

from __future__ import annotations

import errno
import random
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from lb.datapath.testbed.nsenter import ns_socket
from lb.soak.plan import ServiceSpec
from lb.soak.verdict import ConnRecord, KindOfConn, Outcome

CONNECT_TIMEOUT = 40.0
REPLY_TIMEOUT = 5.0
UDP_TIMEOUT = 2.0
STEP = 0.5  # how often a wait looks at the stop flag


class _Failed(Exception):
    def __init__(self, outcome: Outcome, detail: str = "") -> None:
        super().__init__(detail)
        self.outcome = outcome
        self.detail = detail


class _Stopped(Exception):
    """The run is stopping: the connection is abandoned and not recorded."""


@dataclass
class LoadConfig:
    vip: str
    netns: str  # the client's
    churn_rate: float = 8.0  # new TCP connections per second, per churn worker
    churn_workers: int = 2  # per TCP service
    held_workers: int = 3  # per TCP service
    hold_s: tuple[float, float] = (20.0, 60.0)
    udp_rate: float = 8.0  # UDP exchanges per second, per worker
    udp_workers: int = 2


class Load:
    """Start the clients with start(), stop them with stop(); records accumulate in `records`."""

    def __init__(self, config: LoadConfig, services: tuple[ServiceSpec, ...], clock: Callable[[], float]) -> None:
        self.config = config
        self.services = services
        self.clock = clock
        self.records: list[ConnRecord] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self._stop.clear()
        c = self.config
        for spec in self.services:
            if spec.proto == "tcp":
                for i in range(c.churn_workers):
                    self._spawn(f"churn {spec.label} {i}", self._churn, spec)
                for i in range(c.held_workers):
                    self._spawn(f"held {spec.label} {i}", self._held, spec)
            else:
                for i in range(c.udp_workers):
                    self._spawn(f"udp {spec.label} {i}", self._udp, spec)

    def stop(self, timeout: float = 15.0) -> list[str]:
        """Stop every client; returns the names of threads still running after `timeout` (none)."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        stuck = [t.name for t in self._threads if t.is_alive()]
        self._threads = [t for t in self._threads if t.is_alive()]
        return stuck

    def snapshot(self) -> list[ConnRecord]:
        with self._lock:
            return list(self.records)

    # -- the workers ------------------------------------------------------------------------------

    def _spawn(self, name: str, fn: Callable[[ServiceSpec], None], spec: ServiceSpec) -> None:
        thread = threading.Thread(target=self._guard, args=(fn, spec), name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _guard(self, fn: Callable[[ServiceSpec], None], spec: ServiceSpec) -> None:
        # A staggered start, so the workers do not beat in step.
        if self._stop.wait(random.uniform(0, 1.0)):
            return
        fn(spec)

    def _record(self, rec: ConnRecord) -> None:
        with self._lock:
            self.records.append(rec)

    def _churn(self, spec: ServiceSpec) -> None:
        period = 1.0 / self.config.churn_rate
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                self._tcp_once(spec, "tcp", hold=0.0, lines=random.randint(1, 3))
            except _Stopped:
                return
            self._stop.wait(max(0.0, began + period - time.monotonic()))

    def _held(self, spec: ServiceSpec) -> None:
        low, high = self.config.hold_s
        while not self._stop.is_set():
            try:
                self._tcp_once(spec, "held", hold=random.uniform(low, high), lines=1)
            except _Stopped:
                return
            self._stop.wait(0.5)  # a refused connect returns at once: no busy loop while r4 is down

    def _tcp_once(self, spec: ServiceSpec, kind: KindOfConn, hold: float, lines: int) -> None:
        started = self.clock()
        real: str | None = None
        established: float | None = None
        outcome: Outcome
        sock = ns_socket(self.config.netns, socket.AF_INET, socket.SOCK_STREAM)
        try:
            self._connect(sock, (self.config.vip, spec.port))
            reader = _LineReader(sock, self._stop)
            sent = 0
            end_hold = time.monotonic() + hold
            while True:
                for _ in range(lines):
                    sent += 1
                    name = self._exchange(sock, reader, f"{kind} {sent}")
                    if real is None:
                        real, established = name, self.clock()
                    elif name != real:
                        raise _Failed("moved", f"from {real} to {name}")
                # A held connection talks once a second until its time is up (or the run stops:
                # then it is closed as a client would, and counts as done).
                if time.monotonic() >= end_hold or self._stop.wait(min(1.0, max(0.0, end_hold - time.monotonic()))):
                    break
                lines = 1
            outcome, detail = "ok", ""
        except _Failed as failed:
            outcome, detail = failed.outcome, failed.detail
        finally:
            sock.close()
        self._record(ConnRecord(spec.label, kind, started, self.clock(), real, outcome, established, detail))

    def _connect(self, sock: socket.socket, address: tuple[str, int]) -> None:
        sock.setblocking(False)
        code = sock.connect_ex(address)
        if code not in (0, errno.EINPROGRESS):
            raise _Failed("refused" if code == errno.ECONNREFUSED else "error", errno.errorcode.get(code, str(code)))
        deadline = time.monotonic() + CONNECT_TIMEOUT
        while True:
            _, writable, _ = select.select([], [sock], [], STEP)
            if writable:
                break
            if self._stop.is_set():
                raise _Stopped
            if time.monotonic() > deadline:
                raise _Failed("connect_timeout", f"no answer to SYNs in {CONNECT_TIMEOUT:g} s")
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code == errno.ECONNREFUSED:
            raise _Failed("refused")
        if code:
            outcome: Outcome = "connect_timeout" if code == errno.ETIMEDOUT else "error"
            raise _Failed(outcome, errno.errorcode.get(code, str(code)))
        sock.setblocking(True)

    def _exchange(self, sock: socket.socket, reader: _LineReader, line: str) -> str:
        try:
            sock.settimeout(REPLY_TIMEOUT)
            sock.sendall(line.encode() + b"\n")
            reply = reader.readline(REPLY_TIMEOUT)
        except ConnectionResetError as exc:
            raise _Failed("reset", str(exc)) from None
        except BrokenPipeError as exc:
            raise _Failed("reset", str(exc)) from None
        except TimeoutError:
            raise _Failed("timeout", f"no answer to {line!r} in {REPLY_TIMEOUT:g} s") from None
        except OSError as exc:
            raise _Failed("error", f"{exc}") from None
        if reply is None:
            raise _Failed("closed", f"closed by the peer before answering {line!r}")
        name, _, echoed = reply.partition(" ")
        if echoed != line:
            raise _Failed("error", f"reply {reply!r} to {line!r}")
        return name

    def _udp(self, spec: ServiceSpec) -> None:
        period = 1.0 / self.config.udp_rate
        while not self._stop.is_set():
            began = time.monotonic()
            self._udp_once(spec, random.randint(1, 3))
            self._stop.wait(max(0.0, began + period - time.monotonic()))

    def _udp_once(self, spec: ServiceSpec, count: int) -> None:
        started = self.clock()
        real: str | None = None
        established: float | None = None
        outcome: Outcome = "ok"
        detail = ""
        sock = ns_socket(self.config.netns, socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.settimeout(UDP_TIMEOUT)
            for i in range(count):
                payload = f"udp {i}".encode()
                try:
                    sock.sendto(payload, (self.config.vip, spec.port))
                    data, _ = sock.recvfrom(4096)
                except TimeoutError:
                    outcome, detail = "timeout", f"no answer to datagram {i + 1} in {UDP_TIMEOUT:g} s"
                    break
                except OSError as exc:
                    outcome, detail = ("refused" if exc.errno == errno.ECONNREFUSED else "error"), str(exc)
                    break
                name, _, echoed = data.decode(errors="replace").partition(" ")
                if echoed != payload.decode():
                    outcome, detail = "error", f"reply {data!r}"
                    break
                if real is None:
                    real, established = name, self.clock()
                elif name != real:
                    outcome, detail = "moved", f"from {real} to {name}"
                    break
                if i + 1 < count:
                    time.sleep(0.1)
        finally:
            sock.close()
        self._record(ConnRecord(spec.label, "udp", started, self.clock(), real, outcome, established, detail))


class _LineReader:
    """Lines from a socket with one deadline per line; None when the peer closed."""

    def __init__(self, sock: socket.socket, stop: threading.Event) -> None:
        self.sock = sock
        self.stop = stop
        self.buffer = b""

    def readline(self, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            self.sock.settimeout(left)
            chunk = self.sock.recv(4096)
            if not chunk:
                return None
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode(errors="replace")

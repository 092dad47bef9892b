"""What a built topology is: hosts (one namespace each), their interfaces and addresses, and the
operations tests run on it. `build.py` makes one; `teardown()` unmakes it with teardown.py's steps.
The hosts themselves are values of their own (hosts.py), so the servers and clients started on them
need not import this module.

A Topology is a context manager: `with two_arm(reals=3) as topo: ...` always tears down, even
when the body raises (DESIGN.md, "Test topology").
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal

from pyroute2 import netns

from . import clients, decap, servers
from .hosts import Host, HostRef, Iface
from .procs import ProcessSet, python_argv, run as run_in_ns
from .teardown import guarded_step, log_problems, remove_namespace

XdpPeers = Literal["off", "gro", "pass"]


@dataclass(eq=False)
class Topology:
    """A built topology. Fields describe it; methods run things in it.

    `lb_ifaces` are the balancer interfaces lbxdp attaches to (two-arm: eth0 towards the client,
    eth1 towards the reals; one-arm: eth0 only).
    """

    kind: Literal["two_arm", "one_arm"]
    prefix: str
    net: int  # the second octet: every address is in 10.<net>.0.0/16
    vip: str
    client_subnet: str
    real_subnet: str
    hosts: dict[str, Host]
    lb_ifaces: tuple[Iface, ...]
    xdp_peers: XdpPeers
    workdir: Path
    client_aliases: tuple[str, ...] = ()  # extra client source addresses (for sh/mh tests)
    tx_checksum: bool = False  # TX checksum offload on veths (off: frames carry full checksums)
    procs: ProcessSet = field(default_factory=ProcessSet, repr=False)
    _held: list[clients.HeldConnection] = field(default_factory=list, repr=False)
    _decap_addrs: list[str] = field(default_factory=list, repr=False)
    _closed: bool = field(default=False, repr=False)

    # --- description ---------------------------------------------------------------------------

    @property
    def client(self) -> Host:
        return self.hosts["client"]

    @property
    def lb(self) -> Host:
        return self.hosts["lb"]

    @property
    def switch(self) -> Host:
        return self.hosts["sw"]

    @property
    def reals(self) -> tuple[Host, ...]:
        return tuple(h for h in self.hosts.values() if h.role == "real")

    @property
    def namespaces(self) -> tuple[str, ...]:
        return tuple(h.netns for h in self.hosts.values())

    def host(self, ref: HostRef) -> Host:
        if isinstance(ref, Host):
            return ref
        try:
            return self.hosts[ref]
        except KeyError:
            raise KeyError(f"no host {ref!r}; hosts are {', '.join(self.hosts)}") from None

    def real(self, name_or_index: str | int) -> Host:
        """A real by name ("r2") or 0-based index."""
        if isinstance(name_or_index, int):
            return self.reals[name_or_index]
        return self.host(name_or_index)

    # --- running programs ----------------------------------------------------------------------

    def run(self, host: HostRef, argv: Sequence[str], *, timeout: float = 10.0,
            check: bool = True, input: str | None = None,  # noqa: A002
            env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run argv to completion in the host's namespace; text stdout/stderr captured."""
        return run_in_ns(self.host(host).netns, argv, timeout=timeout, check=check,
                         input=input, env=env)

    def run_python(self, host: HostRef, module: str, *args: str,
                   timeout: float = 10.0, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`python -m module args…` in the host's namespace, with this interpreter."""
        return self.run(host, python_argv(module, *args), timeout=timeout, check=check)

    def spawn(self, host: HostRef, argv: Sequence[str], *, stdout: int | object = subprocess.DEVNULL,
              stderr: int | object | None = None, env: Mapping[str, str] | None = None,
              ) -> subprocess.Popen[bytes]:
        """Start argv in the background in the host's namespace; stopped at teardown.

        stderr goes to `<workdir>/<host>-<argv0>.log` unless given, so a failing test can look.
        """
        h = self.host(host)
        log = None
        if stderr is None:
            log = open(self.workdir / f"{h.name}-{Path(argv[0]).name}.log", "ab")  # noqa: SIM115 - closed below
            stderr = log
        try:
            return self.procs.spawn(h.netns, argv, stdout=stdout, stderr=stderr, env=env)
        finally:
            if log is not None:
                log.close()  # the child holds its own descriptor

    def stop(self, proc: subprocess.Popen[bytes], grace: float = 1.0) -> int | None:
        """Stop one spawned process (and its group) now, e.g. to kill a real's server."""
        return self.procs.stop(proc, grace)

    def socket(self, host: HostRef, kind: int = socket.SOCK_STREAM) -> socket.socket:
        """An IPv4 socket created inside the host's namespace, usable from this process."""
        return clients.host_socket(self.host(host).netns, kind)

    # --- servers (see servers.py) --------------------------------------------------------------

    def start_http_servers(self, port: int = 80, reals: Sequence[HostRef] | None = None,
                           fail_files: bool = False) -> dict[str, subprocess.Popen[bytes]]:
        """`lb.realserver http` on each real (identity = real name); returns once all listen.

        With `fail_files`, real X answers 500 while `fail_file(X)` exists (health-check tests)."""
        return servers.start_realservers(self, "http", port, self._reals(reals), fail_files)

    def start_tcp_servers(self, port: int = 9000, reals: Sequence[HostRef] | None = None
                          ) -> dict[str, subprocess.Popen[bytes]]:
        """`lb.realserver tcp` (line echo prefixed by the real's name, held open) on each real."""
        return servers.start_realservers(self, "tcp", port, self._reals(reals), False)

    def start_udp_servers(self, port: int = 5353, reals: Sequence[HostRef] | None = None
                          ) -> dict[str, subprocess.Popen[bytes]]:
        """`lb.realserver udp` (datagram echo prefixed by the real's name) on each real."""
        return servers.start_realservers(self, "udp", port, self._reals(reals), False)

    def start_nginx(self, real: HostRef, port: int = 80) -> subprocess.Popen[bytes]:
        """nginx on one real, answering its name in body and X-Real-Server header."""
        return servers.start_nginx(self, self.host(real), port)

    def fail_file(self, real: HostRef) -> Path:
        return self.workdir / f"{self.host(real).name}.fail"

    def _reals(self, reals: Sequence[HostRef] | None) -> tuple[Host, ...]:
        return self.reals if reals is None else tuple(self.host(r) for r in reals)

    # --- clients (see clients.py) --------------------------------------------------------------

    def curl(self, n: int, url: str | None = None, *, host: HostRef = "client",
             source: str | None = None, port: int = 80, timeout: float = 2.0,
             ) -> list[str | None]:
        """n sequential HTTP requests (one curl process, a new connection each); for each, the
        answering real's name (X-Real-Server header) or None if it failed. Default URL:
        http://VIP:port/."""
        target = url or f"http://{self.vip}:{port}/"
        return clients.curl_loop(self.host(host).netns, n, target, source=source, timeout=timeout)

    def hold(self, dst: str | None = None, port: int = 9000, *, host: HostRef = "client",
             source: str | None = None, timeout: float = 2.0) -> clients.HeldConnection:
        """Open a long-lived TCP connection to a `realserver tcp` (default dst: the VIP); closed
        at teardown if the test has not closed it."""
        conn = clients.HeldConnection.open(self.host(host).netns, dst or self.vip, port,
                                           source=source, timeout=timeout)
        self._held.append(conn)
        return conn

    def tcp_exchange(self, messages: int = 1, dst: str | None = None, port: int = 9000, *,
                     host: HostRef = "client", source: str | None = None,
                     timeout: float = 2.0) -> str:
        """Connect, exchange `messages` lines, close; the one real that answered them all."""
        with clients.HeldConnection.open(self.host(host).netns, dst or self.vip, port,
                                         source=source, timeout=timeout) as conn:
            return conn.exchange(messages)

    def udp_query(self, dst: str | None = None, port: int = 5353, payload: bytes = b"ping", *,
                  host: HostRef = "client", source: str | None = None,
                  timeout: float = 1.0) -> str | None:
        """One datagram to a `realserver udp`; the answering real's name, or None on timeout."""
        return clients.udp_query(self.host(host).netns, dst or self.vip, port, payload,
                                 source=source, timeout=timeout)

    # --- lifetime ------------------------------------------------------------------------------

    def teardown(self) -> list[str]:
        """Kill processes, close sockets, delete the namespaces; never raises. Returns problems."""
        problems: list[str] = []
        if self._closed:
            return problems
        self._closed = True
        for conn in self._held:
            guarded_step(problems, "close held connection", conn.close)
        self._held.clear()
        guarded_step(problems, "stop processes", self.procs.stop_all)
        for address in self._decap_addrs:
            guarded_step(problems, f"forget decap address {address}", decap.remove_local, address)
        for name in self.namespaces:
            remove_namespace(name, problems)
        left = [n for n in netns.listnetns() if n.startswith(self.prefix)]
        if left:
            problems.append(f"namespaces left behind: {', '.join(left)}")
        if not os.environ.get("LBX_KEEP_WORKDIR"):
            guarded_step(problems, "remove workdir", shutil.rmtree, self.workdir)
        log_problems(problems)
        return problems

    def __enter__(self) -> Topology:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.teardown()

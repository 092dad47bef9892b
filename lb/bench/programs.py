"""The XDP programs the bench runs: its own baselines (bpf/bench_*.c) and lbxdp (bpf/lb_kern.c).

lbxdp is loaded exactly as the daemon loads it, by lb.datapath.loader.load (unpinned: the maps
live as long as the bench holds them), and its maps are written with lb.datapath.maps.DatapathMaps
from a lb.tables.Tables, the project's one writer. That is still how Katran benches its hit path
(flows installed directly in the maps, no control plane), and it costs no fidelity: the program,
its tunables and the map entries are the daemon's own. Verdict reasons are lb.rewrite.verdicts.Reason.
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import socket
import struct
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lb.datapath import sources

XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT = 1, 2, 3, 4

BASELINES = {"dnat": "xdp_bench_dnat"}
VERDICT_BASELINES = {"pass": "XDP_PASS", "drop": "XDP_DROP"}  # bpf/bench_verdict.c's BENCH_VERDICT


def be32(address: str) -> int:
    """An IPv4 address as the packet carries it, read as a host u32 (what a ctypes field holds)."""
    return int(struct.unpack("=I", socket.inet_aton(str(ipaddress.IPv4Address(address))))[0])


def be16(port: int) -> int:
    return int(struct.unpack("=H", struct.pack("!H", port))[0])


def mac_bytes(mac: str) -> bytes:
    return bytes(int(b, 16) for b in mac.split(":"))


@contextmanager
def _stderr_to_file() -> Iterator[Path]:
    """Point fd 2 at a temporary file (clang writes there directly, below Python's sys.stderr)."""
    with tempfile.NamedTemporaryFile(prefix="lbx-bench-cc-", suffix=".log") as tmp:
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            yield Path(tmp.name)
        finally:
            os.dup2(saved, 2)
            os.close(saved)


class Program:
    """One bcc object and its XDP entry point."""

    def __init__(self, source: Path, func: str, cflags: list[str] | None = None) -> None:
        from bcc import BPF  # the bench imports bcc only when it runs a case that needs it

        with _stderr_to_file() as log:  # clang's warnings would tear through the progress display
            try:
                self.bpf: Any = BPF(src_file=str(source), cflags=[f"-I{source.parent}", *(cflags or [])])
            except Exception as exc:
                errors = [ln for ln in log.read_text(errors="replace").splitlines() if "error" in ln]
                raise RuntimeError(f"{source.name}: {errors[0] if errors else exc}") from exc
        self.fd = int(self.bpf.load_func(func, BPF.XDP).fd)
        self.name = func

    def percpu_sum(self, table: str, index: int) -> int:
        return int(self.bpf[table].sum(ctypes.c_int(index)).value)

    def close(self) -> None:
        self.bpf.cleanup()


class Baseline(Program):
    """A bench baseline: "pass" and "drop" are bpf/bench_verdict.c built for that verdict, "dnat"
    is bpf/bench_dnat.c."""

    def __init__(self, kind: str, cflags: list[str] | None = None) -> None:
        if kind in VERDICT_BASELINES:
            super().__init__(sources.source("bench_verdict.c"), "xdp_bench_verdict",
                             [f"-DBENCH_VERDICT={VERDICT_BASELINES[kind]}", *(cflags or [])])
        else:
            super().__init__(sources.source(f"bench_{kind}.c"), BASELINES[kind], cflags)
        self.kind = kind

    def verdicts(self, verdict: int) -> int:
        return self.percpu_sum("verdicts", verdict)

    def add_dnat(self, saddr: str, daddr: str, sport: int, dport: int, proto: int,
                 to_addr: str, to_port: int, ifindex: int, smac: str, dmac: str) -> None:
        table = self.bpf["dnat_flows"]
        key = table.Key(be32(saddr), be32(daddr), be16(sport), be16(dport), proto)
        leaf = table.Leaf()
        leaf.daddr, leaf.dport, leaf.ifindex = be32(to_addr), be16(to_port), ifindex
        ctypes.memmove(ctypes.addressof(leaf) + type(leaf).smac.offset, mac_bytes(smac), 6)
        ctypes.memmove(ctypes.addressof(leaf) + type(leaf).dmac.offset, mac_bytes(dmac), 6)
        table[key] = leaf


class Lbxdp:
    """bpf/lb_kern.c as lb.datapath.loader.load() builds it, with its DatapathMaps (`maps`)."""

    def __init__(self, max_flows: int | None = None) -> None:
        from lb.datapath.loader import Tunables, load

        tunables = Tunables() if max_flows is None else Tunables(max_flows=max_flows)
        with _stderr_to_file() as log:  # clang's warnings would tear through the progress display
            try:
                self.datapath = load(tunables, pin=False)
            except Exception as exc:
                errors = [ln for ln in log.read_text(errors="replace").splitlines() if "error" in ln]
                raise RuntimeError(f"lb_kern.c: {errors[0] if errors else exc}") from exc
        self.fd = self.datapath.prog_fd
        self.maps = self.datapath.maps
        self.name = "xdp_lb"

    def reason_count(self, reason: Any) -> int:
        """Packets counted under `reason` (an lb.rewrite.verdicts.Reason), summed over CPUs."""
        return int(self.maps.reason_counts()[reason])

    def memlock(self, *names: str) -> int:
        """The kernel's memory accounting of the named maps (the daemon's own, same tunables)."""
        return sum(memlock_bytes(int(self.datapath.bpf[n.encode()].map_fd)) for n in names)

    def close(self) -> None:
        self.datapath.close()


def memlock_bytes(map_fd: int) -> int:
    """The kernel's memory accounting for a map (the `memlock:` line of /proc/self/fdinfo)."""
    with open(f"/proc/self/fdinfo/{map_fd}") as handle:
        for line in handle:
            if line.startswith("memlock:"):
                return int(line.split()[1])
    raise LookupError(f"fd {map_fd} has no memlock line (not a BPF map?)")


class Registry:
    """Every program of a bench run, compiled once (bcc takes seconds per object) and shared by the
    cases; counters are read as differences, so what an earlier case left in them does not matter.

    Roles: "pass", "drop", "dnat", "gen" (the UDP traffic generator), "syn" (the SYN generator),
    "lbxdp", "lbxdp-<anything>"
    (another lbxdp object with maps of its own), and "sink" (a second drop object whose counter is
    what reached the receivers).
    """

    def __init__(self) -> None:
        self._progs: dict[str, Program | Lbxdp] = {}
        self._errors: dict[str, str] = {}

    def get(self, role: str) -> Any:
        if role in self._errors:
            raise RuntimeError(self._errors[role])
        if role not in self._progs:
            try:
                if role.startswith("lbxdp"):
                    self._progs[role] = Lbxdp()
                elif role == "gen":
                    self._progs[role] = Program(sources.source("bench_gen.c"), "xdp_bench_gen")
                elif role == "syn":
                    self._progs[role] = Program(sources.source("bench_syn.c"), "xdp_bench_syn")
                else:
                    self._progs[role] = Baseline("drop" if role == "sink" else role)
            except Exception as exc:  # a work-in-progress program may not compile
                first = (str(exc).splitlines() or [type(exc).__name__])[0][:100]
                self._errors[role] = f"{role} did not load: {first}"
                raise RuntimeError(self._errors[role]) from exc
        return self._progs[role]

    def close(self) -> None:
        for prog in self._progs.values():
            try:
                prog.close()
            except Exception:  # noqa: BLE001 (teardown goes on)
                pass
        self._progs.clear()

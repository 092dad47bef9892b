"""The XDP programs the bench runs: its own baselines (bpf/bench_*.c) and lbxdp (bpf/lb_kern.c).

lbxdp is compiled here with bcc straight from bpf/lb_kern.c and its maps are filled through the
ctypes Key/Leaf types bcc generates from bpf/lb_structs.h, so the bench depends on the C program and
its field names only, not on a Python loader's interface. That is how Katran benches its hit path:
flows installed directly in the maps, no control plane. Verdict reasons are read from the
`lb_reason` enum in bpf/lb_consts.h rather than copied.
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import tempfile
import re
import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

BPF_DIR = Path(__file__).resolve().parents[2] / "bpf"
XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT = 1, 2, 3, 4
FWD_MASQ, FWD_ROUTE, FWD_TUNNEL = 1, 2, 3

BASELINES = {"pass": "xdp_bench_pass", "drop": "xdp_bench_drop", "dnat": "xdp_bench_dnat"}


def be32(address: str) -> int:
    """An IPv4 address as the packet carries it, read as a host u32 (what a ctypes field holds)."""
    return int(struct.unpack("=I", socket.inet_aton(str(ipaddress.IPv4Address(address))))[0])


def be16(port: int) -> int:
    return int(struct.unpack("=H", struct.pack("!H", port))[0])


def mac_bytes(mac: str) -> bytes:
    return bytes(int(b, 16) for b in mac.split(":"))


def enum_values(header: str, enum: str) -> dict[str, int]:
    """NAME → value of a C enum with explicit values, e.g. `lb_reason` in bpf/lb_consts.h."""
    body = re.search(r"enum\s+" + enum + r"\s*\{(.*?)\};", header, re.S)
    if body is None:
        raise LookupError(f"no enum {enum}")
    return {m.group(1): int(m.group(2), 0)
            for m in re.finditer(r"^\s*([A-Z_0-9]+)\s*=\s*(\w+)\s*,", body.group(1), re.M)}


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
                self.bpf: Any = BPF(src_file=str(source), cflags=[f"-I{BPF_DIR}", *(cflags or [])])
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
    def __init__(self, kind: str, cflags: list[str] | None = None) -> None:
        super().__init__(BPF_DIR / f"bench_{kind}.c", BASELINES[kind], cflags)
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


class Lbxdp(Program):
    """bpf/lb_kern.c with maps filled directly (services, reals, flows, reverse, config, tx_ports)."""

    def __init__(self, cflags: list[str] | None = None) -> None:
        super().__init__(BPF_DIR / "lb_kern.c", "xdp_lb", cflags)

    @cached_property
    def reasons(self) -> dict[str, int]:
        return enum_values((BPF_DIR / "lb_consts.h").read_text(), "lb_reason")

    def reason_count(self, name: str) -> int:
        return self.percpu_sum("reason_counts", self.reasons[name])

    def all_reasons(self) -> dict[str, int]:
        return {n: self.reason_count(n) for n, v in self.reasons.items() if n != "REASON_MAX"}

    def _flow_key(self, table: Any, saddr: str, daddr: str, sport: int, dport: int, proto: int) -> Any:
        return table.Key(be32(saddr), be32(daddr), be16(sport), be16(dport), proto)

    def add_service(self, vip: str, port: int, proto: int, service_id: int) -> None:
        t = self.bpf["services"]
        t[t.Key(be32(vip), be16(port), proto)] = t.Leaf(service_id, 0)

    def set_real(self, real_id: int, addr: str, port: int, forwarding: int) -> None:
        t = self.bpf["reals"]
        t[t.Key(real_id)] = t.Leaf(be32(addr), be16(port), forwarding)

    def add_flow(self, saddr: str, daddr: str, sport: int, dport: int, proto: int,
                 real_id: int, service_id: int) -> None:
        t = self.bpf["flows"]
        leaf = t.Leaf()
        leaf.real_id, leaf.service_id = real_id, service_id
        t[self._flow_key(t, saddr, daddr, sport, dport, proto)] = leaf

    def add_flows(self, entries: list[tuple[str, str, int, int, int, int, int]]) -> None:
        """Many flows in one batch update where bcc offers it (1M entries one by one take minutes)."""
        t = self.bpf["flows"]
        keys = (t.Key * len(entries))()
        leaves = (t.Leaf * len(entries))()
        for i, (sa, da, sp, dp, proto, real_id, sid) in enumerate(entries):
            keys[i] = self._flow_key(t, sa, da, sp, dp, proto)
            leaves[i].real_id, leaves[i].service_id = real_id, sid
        t.items_update_batch(keys, leaves)

    def add_reverse(self, saddr: str, daddr: str, sport: int, dport: int, proto: int,
                    vip: str, vport: int, real_id: int, service_id: int) -> None:
        t = self.bpf["reverse"]
        leaf = t.Leaf()
        leaf.vip, leaf.vport, leaf.real_id, leaf.service_id = be32(vip), be16(vport), real_id, service_id
        t[self._flow_key(t, saddr, daddr, sport, dport, proto)] = leaf

    def set_tunnel_source(self, address: str) -> None:
        t = self.bpf["config"]
        t[t.Key(0)] = t.Leaf(be32(address), 0)

    def add_tx_port(self, ifindex: int) -> None:
        self.bpf["tx_ports"][ctypes.c_int(ifindex)] = ctypes.c_int(ifindex)

    def map_fd(self, name: str) -> int:
        return int(self.bpf[name].map_fd)


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
        self._progs: dict[str, Program] = {}
        self._errors: dict[str, str] = {}

    def get(self, role: str) -> Program:
        if role in self._errors:
            raise RuntimeError(self._errors[role])
        if role not in self._progs:
            try:
                if role.startswith("lbxdp"):
                    self._progs[role] = Lbxdp()
                elif role == "gen":
                    self._progs[role] = Program(BPF_DIR / "bench_gen.c", "xdp_bench_gen")
                elif role == "syn":
                    self._progs[role] = Program(BPF_DIR / "bench_syn.c", "xdp_bench_syn")
                else:
                    self._progs[role] = Baseline("drop" if role == "sink" else role)
            except Exception as exc:  # noqa: BLE001 (a work-in-progress program may not compile)
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

"""Case 5, scale: flow-table memory at 1M flows, Maglev build time, time to apply 1000 services.

Memory is the kernel's own accounting of the two flow maps (`flows` and `reverse`, LRU hashes,
preallocated, so the figure is what 1M flows cost whether or not they are filled), read from the
`memlock:` line of the maps' fdinfo. Times are in-process wall clock after a warm-up, medians of
the interleaved runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from ipaddress import IPv4Address

from lb.bench.results import Row, measured, not_measured

MILLION = 1_048_576  # MAX_FLOWS is a power of two here, as Katran sizes its LRU


def flow_table_memory() -> Row:
    from lb.bench.programs import Lbxdp, memlock_bytes

    name, unit = "flow table at 1M flows", "MB"
    try:
        lbx = Lbxdp([f"-DMAX_FLOWS={MILLION}"])
    except Exception as exc:  # noqa: BLE001
        return not_measured("scale", name, unit, f"lbxdp did not load: {str(exc).splitlines()[0][:80]}",
                            higher_is_better=False)
    try:
        total = sum(memlock_bytes(lbx.map_fd(m)) for m in ("flows", "reverse"))
    finally:
        lbx.close()
    return measured("scale", name, unit, [total / 2**20], higher_is_better=False,
                    check=f"memlock of flows + reverse, MAX_FLOWS={MILLION} each (preallocated LRU)")


def _maglev_once(reals: int) -> float:
    from lb.model import RealKey
    from lb.sched.base import Destination
    from lb.sched.mh import DEFAULT_M, MaglevHashing

    dests = [Destination(RealKey(IPv4Address(0x0A_02_00_00 + i), 80)) for i in range(reals)]
    sched = MaglevHashing(m=DEFAULT_M)
    start = time.perf_counter()
    sched.update(dests)
    return (time.perf_counter() - start) * 1000


def _services_once(count: int) -> float:
    from lb.config.ipvsadm import parse_command
    from lb.config.table import ServiceTable

    table = ServiceTable()
    start = time.perf_counter()
    for i in range(count):
        vip = IPv4Address(0x0A_01_00_00 + i + 1)
        table.apply(parse_command(["-A", "-t", f"{vip}:80", "-s", "wlc"]))
        table.apply(parse_command(["-a", "-t", f"{vip}:80", "-r", f"10.2.{i // 250}.{i % 250 + 1}:80", "-m"]))
    return (time.perf_counter() - start) * 1000


def run(runs: int, tick: Callable[[str], None], quick: bool = False) -> list[Row]:
    """With `quick`, the service table is timed once: one pass takes 10-20 s on this VM."""
    rows: list[Row] = []
    tick("scale: flow table memory at 1M flows")
    rows.append(flow_table_memory())
    _maglev_once(10)  # warm-up: imports and first-call costs out of the figure
    _services_once(5)
    maglev, services = [], []
    for _ in range(runs):
        tick("scale: Maglev build, M=65537, 1000 reals")
        maglev.append(_maglev_once(1000))
        if not (quick and services):
            tick("scale: apply 1000 services")
            services.append(_services_once(1000))
    rows.append(measured("scale", "Maglev build", "ms", maglev, higher_is_better=False,
                         check="lb.sched.mh.MaglevHashing.update, M=65537, 1000 reals of weight 1"))
    rows.append(measured("scale", "apply 1000 services (in process)", "ms", services,
                         higher_is_better=False,
                         check="parse_command + ServiceTable.apply: 1000 × (-A … -s wlc, -a … -m)"))
    rows.append(not_measured("scale", "apply 1000 services (through the daemon)", "ms",
                             "the daemon's control socket is not part of this run yet",
                             higher_is_better=False))
    rows.append(not_measured("scale", "daemon RSS", "MB",
                             "`lbxdp attach` (lb.daemon) is not wired into the bench yet",
                             higher_is_better=False))
    return rows

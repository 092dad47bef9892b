"""Case 5, scale: flow-table memory at 1M flows, Maglev build time, time to apply 1000 services.

Memory is the kernel's own accounting of the two flow maps (`flows` and `reverse`, LRU hashes,
preallocated, so the figure is what 1M flows cost whether or not they are filled), read from the
`memlock:` line of the maps' fdinfo. Times are in-process wall clock after a warm-up, medians of
the interleaved runs; the daemon's figures come from the live daemon of lb.bench.live.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from ipaddress import IPv4Address
from typing import Any

from lb.bench.results import Row, measured, not_measured

MILLION = 1_048_576  # MAX_FLOWS is a power of two here, as Katran sizes its LRU


def flow_table_memory(live: Any | None = None) -> Row:
    """From the live daemon's maps when there is one (no extra compile), else from a program
    compiled here with MAX_FLOWS=1M."""
    from lb.bench.programs import Lbxdp

    name, unit = "flow table at 1M flows", "MB"
    if live is not None:
        total, maps = live.flow_maps_memlock()
        if maps == 2:
            return measured("scale", name, unit, [total / 2**20], higher_is_better=False,
                            check=f"memlock of the live daemon's flows + reverse maps, {MILLION} entries "
                                  f"each (preallocated LRU), {live.status().get('flows', 0)} flows in")
    try:
        lbx = Lbxdp(max_flows=MILLION)
    except Exception as exc:  # noqa: BLE001
        return not_measured("scale", name, unit, f"lbxdp did not load: {str(exc).splitlines()[0][:80]}",
                            higher_is_better=False)
    try:
        total = lbx.memlock("flows", "reverse")
    finally:
        lbx.close()
    return measured("scale", name, unit, [total / 2**20], higher_is_better=False,
                    check=f"memlock of flows + reverse, MAX_FLOWS={MILLION} each (preallocated LRU)")


def _maglev_builds(reals: int, builds: int) -> list[float]:
    """ms per MaglevHashing.update of `reals` fresh destinations, after one warm-up build in this
    process (imports, numpy's first calls and allocator growth are not the build's cost)."""
    from lb.model import RealKey
    from lb.sched.base import Destination
    from lb.sched.mh import DEFAULT_M, MaglevHashing

    dests = [Destination(RealKey(IPv4Address(0x0A_02_00_00 + i), 80)) for i in range(reals)]
    MaglevHashing(m=DEFAULT_M).update(dests)  # warm-up
    times = []
    for _ in range(builds):
        sched = MaglevHashing(m=DEFAULT_M)
        start = time.perf_counter()
        sched.update(dests)
        times.append((time.perf_counter() - start) * 1000)
    return times


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


def rules_file(net: int, reals: list[str], count: int = 1000) -> str:
    """ipvsadm-save text of `count` masquerading wlc services, one real each, VIPs in 10.<net>.200+.x."""
    lines = []
    for i in range(count):
        vip = f"10.{net}.{200 + i // 250}.{i % 250 + 1}:80"
        lines.append(f"-A -t {vip} -s wlc")
        lines.append(f"-a -t {vip} -r {reals[i % len(reals)]}:80 -m -w 1")
    return "\n".join(lines) + "\n"


def run(runs: int, tick: Callable[[str], None], quick: bool = False, live: Any | None = None,
        why_not: str = "") -> list[Row]:
    """In-process figures, then, with `live` (lb.bench.live), the daemon's: its flow maps' memory
    at 1M entries, its RSS after the new-flows case, and `lbxdp -R` of 1000 services."""
    rows: list[Row] = []
    tick("scale: flow table memory at 1M flows")
    rows.append(flow_table_memory(live))
    builds = 3 if quick else 5
    _services_once(5)  # warm-up
    maglev: list[float] = []
    services: list[float] = []
    for _ in range(runs):
        tick(f"scale: Maglev build, M=65537, 1000 reals (median of {builds})")
        maglev.append(statistics.median(_maglev_builds(1000, builds)))
        tick("scale: apply 1000 services in process")
        services.append(_services_once(1000))
    rows.append(measured("scale", "Maglev build", "ms", maglev, higher_is_better=False,
                         check=f"lb.sched.mh.MaglevHashing.update, M=65537, 1000 reals of weight 1; "
                               f"each run the median of {builds} builds after a warm-up build"))
    rows.append(measured("scale", "apply 1000 services (in process)", "ms", services,
                         higher_is_better=False,
                         check="parse_command + ServiceTable.apply: 1000 × (-A … -s wlc, -a … -m)"))
    rows += daemon_rows(live, tick, why_not)
    return rows


def daemon_rows(live: Any | None, tick: Callable[[str], None], why_not: str) -> list[Row]:
    rss, apply = ("daemon RSS", "MB"), ("apply 1000 services (lbxdp -R, live daemon)", "ms")
    if live is None:
        why = why_not or "the live daemon did not start"
        return [not_measured("scale", *rss, why, higher_is_better=False),
                not_measured("scale", *apply, why, higher_is_better=False)]
    status = live.status()
    rows = [measured("scale", *rss, [live.rss_bytes() / 2**20], higher_is_better=False,
                     check=f"VmRSS of the daemon holding {status.get('flows', 0)} flows "
                           f"(after the new-flows case), table of {live_max_flows()} entries")]
    tick("scale: lbxdp -R of 1000 services into the live daemon")
    text = rules_file(live.topo.net, [r.ip for r in live.topo.reals])
    start = time.monotonic()
    try:
        live.lbxdp("-R", stdin=text, timeout=300)
    except RuntimeError as exc:
        rows.append(not_measured("scale", *apply, str(exc)[:120], higher_is_better=False))
        return rows
    took = (time.monotonic() - start) * 1000
    services = live.status().get("services", 0)
    rows.append(measured("scale", *apply, [took], higher_is_better=False,
                         check=f"wall clock of `lbxdp -R < rules` (CLI start-up included); the daemon "
                               f"then held {services} services; RSS after: {live.rss_bytes() / 2**20:.0f} MB"))
    return rows


def live_max_flows() -> int:
    from lb.bench.live import MAX_FLOWS

    return MAX_FLOWS

"""examples/plugin_scheduler/pyrr.py, the plugin round robin the bench's `new flows/s through NFQUEUE
(plugin rr)` row and tests/e2e/test_daemon_plugin.py use: it loads from the bench's spec as a plugin
(not a built-in, not decided in XDP) and rotates exactly, skipping unavailable reals."""

from __future__ import annotations

from ipaddress import IPv4Address

from lb.bench.live import PLUGIN_SCHED, PLUGIN_SPEC
from lb.model import FlowKey, Protocol, RealKey
from lb.sched import builtin_schedulers, get_scheduler, load_plugin
from lb.sched.base import Destination
from lb.sched.xdpkind import XdpKind

FLOW = FlowKey(Protocol.TCP, IPv4Address("10.0.1.2"), 1234, IPv4Address("10.0.0.100"), 80)


def _dests(n: int) -> list[Destination]:
    return [Destination(RealKey(IPv4Address(f"10.0.2.{i}"), 80)) for i in range(1, n + 1)]


def test_the_bench_spec_loads_a_plugin_the_datapath_cannot_run() -> None:
    cls = load_plugin(PLUGIN_SPEC)
    assert cls.name == PLUGIN_SCHED
    assert cls not in builtin_schedulers() and cls.xdp_kind is XdpKind.DAEMON


def test_rotation_is_exact_and_skips_unavailable_reals() -> None:
    load_plugin(PLUGIN_SPEC)
    sched = get_scheduler(PLUGIN_SCHED)
    dests = _dests(3)
    sched.update(dests)
    picks = [sched.schedule(FLOW, dests) for _ in range(7)]
    assert [d.key.address.packed[-1] if d else None for d in picks] == [1, 2, 3, 1, 2, 3, 1]
    dests[1].weight = 0
    sched.update(dests)  # starts over from the first real
    picks = [sched.schedule(FLOW, dests) for _ in range(4)]
    assert [d.key.address.packed[-1] if d else None for d in picks] == [1, 3, 1, 3]
    for d in dests:
        d.healthy = False
    assert sched.schedule(FLOW, dests) is None

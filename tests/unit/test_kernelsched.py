"""lb.daemon.kernelsched: which services XDP decides, their rows and entries, the rr/wrr cursor, pressure."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from lb.balancer.engine import Balancer
from lb.daemon.kernelsched import (
    NOT_IN_XDP_PLUGIN,
    NOT_IN_XDP_ROWS,
    NOT_IN_XDP_SWITCH,
    NOT_IN_XDP_THRESHOLDS,
    KernelSched,
    enabled_by_env,
    row_of,
    why_not,
)
from lb.model import FlowKey, Forwarding, Protocol, RealKey, RealServer, Service, ServiceKey, VirtualService
from lb.sched.base import Scheduler
from lb.sched.registry import register
from lb.sched.xdpkind import BUCKETS, WALK_MAX, XdpKind
from lb.tables import RING_SIZE, SVC_F_DROP_MIDFLOW_MISS, SVC_F_FALLBACK, SVC_F_HASH_PORT, RealSched, ServiceEntry


class FakeMaps:
    max_hashed_services = 4
    max_sched_rows = 4

    def __init__(self) -> None:
        self.rings: dict[int, list[int]] = {}
        self.seqs: dict[int, list[int]] = {}
        self.walks: dict[int, list[int]] = {}
        self.cursors: dict[int, int] = {}
        self.services: dict[ServiceKey, ServiceEntry] = {}
        self.real_sched: dict[int, RealSched] = {}
        self.ring_writes = 0
        self.buckets: dict[int, list[int]] = {}
        self.bucket_writes = 0

    def set_ring(self, row: int, ids: list[int]) -> None:
        assert len(ids) == RING_SIZE
        self.rings[row] = list(ids)
        self.ring_writes += 1

    def clear_ring(self, row: int) -> None:
        self.set_ring(row, [0] * RING_SIZE)

    def set_seq(self, row: int, ids: list[int]) -> None:
        self.seqs[row] = list(ids)

    def set_cursor(self, row: int, position: int) -> None:
        self.cursors[row] = position

    def read_cursor(self, row: int) -> int:
        return self.cursors.get(row, 0)

    def set_walk(self, row: int, ids: list[int]) -> None:
        assert len(ids) <= WALK_MAX
        self.walks[row] = list(ids)

    def set_buckets(self, row: int, ids: list[int]) -> None:
        assert len(ids) == BUCKETS
        self.buckets[row] = list(ids)
        self.bucket_writes += 1

    def set_real_sched(self, real_id: int, sched: RealSched) -> None:
        self.real_sched[real_id] = sched

    def set_service(self, key: ServiceKey, entry: ServiceEntry) -> None:
        self.services[key] = entry

    budget = [(0, 0), (0, 0)]  # noqa: RUF012 - replaced, never mutated; two CPUs: (created, allowed)

    def read_hash_budget(self) -> list[tuple[int, int]]:
        return list(self.budget)

    def grant_hash_budget(self, allowed: list[int]) -> None:
        self.budget = [(created, limit) for (created, _), limit in zip(self.budget, allowed, strict=True)]


@register
class PluginPick(Scheduler):
    """A scheduler with no XDP form, as every plugin is unless it says otherwise."""

    name = "test-kernelsched-plugin"

    def schedule(self, flow, dests):  # type: ignore[no-untyped-def]
        return dests[0] if dests else None


def _key(port: int) -> ServiceKey:
    return ServiceKey(Protocol.TCP, IPv4Address("10.0.0.100"), port)


def _vs(port: int, sched: str = "mh", flags: frozenset[str] = frozenset(), persistence: int | None = None,
        upper: int = 0, weights: tuple[int, ...] = (1, 1, 1)) -> VirtualService:
    service = Service(_key(port), scheduler=sched, sched_flags=flags, persistence=persistence)
    reals = {}
    for i, w in enumerate(weights):
        rkey = RealKey(IPv4Address(f"10.1.0.{20 + i}"), 8080)
        reals[rkey] = RealServer(rkey.address, rkey.port, Forwarding.MASQ, w, upper_threshold=upper)
    return VirtualService(service, reals)


def _setup(*vss: VirtualService) -> tuple[Balancer, FakeMaps, KernelSched]:
    balancer = Balancer()
    maps = FakeMaps()
    sched = KernelSched(maps)  # type: ignore[arg-type]
    balancer.hooks = sched
    balancer.sync(vss)
    sched.sync(balancer.services, rewrite=True)
    return balancer, maps, sched


def _flow(i: int, port: int = 82) -> FlowKey:
    return FlowKey(Protocol.TCP, IPv4Address(f"10.3.0.{i % 250 + 1}"), 40000 + i, IPv4Address("10.0.0.100"), port)


def test_services_xdp_can_decide_get_their_kind_and_a_row() -> None:
    balancer, maps, sched = _setup(
        _vs(80), _vs(81, flags=frozenset({"mh-port"})), _vs(82, sched="rr"), _vs(83, upper=10),
        _vs(84, persistence=300), _vs(85, sched="test-kernelsched-plugin"),
    )
    entries = {key: maps.services[key] for key in map(_key, range(80, 86))}
    assert set(sched.rows) == {_key(80), _key(81), _key(82), _key(84)}  # persistence is no reason
    assert [entries[_key(p)].sched for p in range(80, 86)] == [
        XdpKind.MH, XdpKind.MH, XdpKind.SEQ, XdpKind.DAEMON, XdpKind.MH, XdpKind.DAEMON]
    assert not entries[_key(80)].flags & SVC_F_HASH_PORT and entries[_key(81)].flags & SVC_F_HASH_PORT
    assert entries[_key(80)].row != entries[_key(81)].row
    assert entries[_key(84)].persist_timeout == 300 and entries[_key(84)].persist_mask == 0xFFFFFFFF
    assert [why_not(balancer.services[_key(p)]) for p in range(80, 86)] == [
        None, None, None, NOT_IN_XDP_THRESHOLDS, None, NOT_IN_XDP_PLUGIN]
    assert sched.reasons == {_key(83): NOT_IN_XDP_THRESHOLDS, _key(85): NOT_IN_XDP_PLUGIN}


def test_the_ring_is_the_maglev_table_in_real_ids() -> None:
    balancer, maps, sched = _setup(_vs(80, weights=(1, 2, 3)))
    state = balancer.services[_key(80)]
    ids = [r.real_id for r in state.reals.values()]
    ring = maps.rings[sched.rows[_key(80)][1]]
    assert ring == [ids[i] for i in state.scheduler.table]  # type: ignore[attr-defined]
    assert {ring.count(i) for i in ids} != {RING_SIZE // 3}  # weights shape it: not an even split


def test_an_unavailable_real_reads_0_and_rings_are_rewritten_only_when_changed() -> None:
    balancer, maps, sched = _setup(_vs(80))
    state = balancer.services[_key(80)]
    row = sched.rows[_key(80)][1]
    writes = maps.ring_writes
    sched.sync(balancer.services)
    assert maps.ring_writes == writes  # nothing changed, nothing written
    down = list(state.reals)[1]
    balancer.set_health(_key(80), down, False)
    sched.sync(balancer.services)
    down_id = state.reals[down].real_id
    assert maps.ring_writes == writes + 1 and down_id not in maps.rings[row]
    assert maps.rings[row].count(0) > RING_SIZE // 4  # its third of the slots: Python decides
    assert row_of(state) == maps.rings[row]
    assert maps.real_sched[down_id] == RealSched(1, False)


def test_the_rr_cycle_and_cursor_are_the_schedulers_and_python_continues_where_xdp_stopped() -> None:
    balancer, maps, sched = _setup(_vs(82, sched="wrr", weights=(3, 2, 1)))
    state = balancer.services[_key(82)]
    ids = [r.real_id for r in state.reals.values()]
    row = sched.rows[_key(82)][1]
    a, b, c = ids
    assert maps.seqs[row] == [a, a, b, a, b, c] and maps.cursors[row] == 0
    maps.cursors[row] = 8  # XDP took eight flows: positions 0..7, the next is 8 % 6 = 2 (b)
    placed = [balancer.place(_flow(i), 0.0).real_id for i in range(3)]
    assert placed == [b, a, b] and maps.cursors[row] == 5  # and XDP goes on at position 5 (c)


def test_a_health_change_rebuilds_the_cycle_after_the_last_real_chosen() -> None:
    balancer, maps, sched = _setup(_vs(82, sched="rr", weights=(1, 1, 1, 1)))
    state = balancer.services[_key(82)]
    ids = [r.real_id for r in state.reals.values()]
    row = sched.rows[_key(82)][1]
    maps.cursors[row] = 5  # XDP's last flow went to position 4 % 4 = 0 (the first real)
    balancer.set_health(_key(82), list(state.reals)[1], False)
    sched.sync(balancer.services)
    assert maps.seqs[row] == [ids[0], ids[2], ids[3]] and maps.cursors[row] == 1  # next: the third real


def test_a_service_that_stops_being_eligible_loses_its_row() -> None:
    balancer, maps, sched = _setup(_vs(80))
    row = sched.rows[_key(80)][1]
    balancer.sync([_vs(80, sched="test-kernelsched-plugin")])
    sched.sync(balancer.services)
    assert sched.rows == {} and maps.services[_key(80)].sched is XdpKind.DAEMON and set(maps.rings[row]) == {0}


def test_pressure_sends_every_service_to_the_daemon_and_room_brings_them_back() -> None:
    balancer, maps, sched = _setup(_vs(80), _vs(81, sched="rr"))
    sched.set_paused(True, balancer.services)
    assert all(entry.sched is XdpKind.DAEMON for entry in maps.services.values())
    sched.set_paused(False, balancer.services)
    assert [e.sched for e in maps.services.values()] == [XdpKind.MH, XdpKind.SEQ]


def test_more_services_than_rows_leave_the_rest_to_the_daemon() -> None:
    _, maps, sched = _setup(*(_vs(80 + i, sched="rr") for i in range(6)))
    assert len(sched.rows) == 4
    assert sum(1 for e in maps.services.values() if e.in_xdp) == 4
    assert list(sched.reasons.values()) == [NOT_IN_XDP_ROWS] * 2


def test_the_budget_is_the_room_left_at_the_last_sweep_split_over_cpus() -> None:
    _, maps, sched = _setup(_vs(80))
    maps.budget = [(10, 0), (4, 0)]
    sched.note_sweep()
    sched.grant(100)
    assert maps.budget == [(10, 60), (4, 54)]
    maps.budget = [(60, 60), (20, 54)]  # CPU 0 spent its share since the sweep
    sched.grant(100)  # a tick without a sweep grants nothing new
    assert maps.budget == [(60, 60), (20, 54)]
    sched.note_sweep()
    sched.grant(0)  # the table is at its limit
    assert maps.budget == [(60, 60), (20, 20)]
    sched.grant(1)  # less room than CPUs: one each, the limit's margin absorbs it
    assert maps.budget == [(60, 61), (20, 21)]


def test_switched_off_every_service_is_the_daemons() -> None:
    balancer = Balancer()
    balancer.sync([_vs(80), _vs(81, sched="rr")])
    maps = FakeMaps()
    sched = KernelSched(maps, enabled=False)  # type: ignore[arg-type]
    sched.sync(balancer.services, rewrite=True)
    assert maps.rings == {} and maps.seqs == {} and all(not e.in_xdp for e in maps.services.values())
    assert set(sched.reasons.values()) == {NOT_IN_XDP_SWITCH}


@pytest.mark.parametrize("value, on", [(None, True), ("1", True), ("0", False), ("off", False), ("no", False)])
def test_environment_switch(value: str | None, on: bool) -> None:
    assert enabled_by_env({} if value is None else {"LBXDP_KERNEL_HASH": value}) is on


def test_the_drop_bit_is_the_services_whoever_decides() -> None:
    """SVC_F_DROP_MIDFLOW_MISS is the service's (rr: set; mh: not), whatever KernelSched writes."""
    balancer, maps, sched = _setup(_vs(80), _vs(82, sched="rr"))
    mh, rr = _key(80), _key(82)
    assert maps.services[rr].flags == SVC_F_DROP_MIDFLOW_MISS and maps.services[rr].in_xdp
    assert maps.services[mh].in_xdp and not maps.services[mh].flags & SVC_F_DROP_MIDFLOW_MISS
    sched.set_paused(True, balancer.services)
    assert (maps.services[mh].flags, maps.services[rr].flags) == (0, SVC_F_DROP_MIDFLOW_MISS)
    sched.set_paused(False, balancer.services)
    # mh → wrr → mh, as `-E` does it: the bit comes with wrr and goes with mh, the kind follows
    balancer.sync([_vs(80, sched="wrr"), _vs(82, sched="rr")])
    sched.sync(balancer.services, rewrite=True)
    assert maps.services[mh].flags == SVC_F_DROP_MIDFLOW_MISS and maps.services[mh].sched is XdpKind.SEQ
    balancer.sync([_vs(80), _vs(82, sched="rr")])
    sched.sync(balancer.services, rewrite=True)
    assert maps.services[mh].flags == 0 and maps.services[mh].sched is XdpKind.MH


def test_sh_and_dh_get_a_bucket_table_and_health_changes_only_real_sched() -> None:
    balancer, maps, sched = _setup(_vs(80, sched="sh", flags=frozenset({"sh-fallback", "sh-port"}), weights=(1, 2, 0)),
                                   _vs(81, sched="dh"))
    sh, dh = maps.services[_key(80)], maps.services[_key(81)]
    assert (sh.sched, dh.sched) == (XdpKind.SH, XdpKind.DH) and sh.row != dh.row
    assert sh.flags & SVC_F_HASH_PORT and sh.flags & SVC_F_FALLBACK and not dh.flags & (SVC_F_HASH_PORT | SVC_F_FALLBACK)
    state = balancer.services[_key(80)]
    ids = [r.real_id for r in state.reals.values()]
    assert maps.buckets[sh.row] == [ids[i] for i in state.scheduler.table]  # type: ignore[attr-defined]
    assert maps.buckets[sh.row][:4] == [ids[0], ids[1], ids[1], ids[2]]  # the quiescent real keeps a bucket
    assert maps.real_sched[ids[2]] == RealSched(0, False)
    writes = maps.bucket_writes
    down = next(iter(state.reals))
    balancer.set_health(_key(80), down, False)
    sched.sync(balancer.services)
    assert maps.bucket_writes == writes  # the row names the real still: XDP reads availability
    assert maps.real_sched[ids[0]] == RealSched(1, False)


def test_an_mh_fallback_ring_keeps_an_unavailable_real() -> None:
    balancer, maps, sched = _setup(_vs(80, flags=frozenset({"mh-fallback"})))
    state = balancer.services[_key(80)]
    row = sched.rows[_key(80)][1]
    writes = maps.ring_writes
    down = list(state.reals)[1]
    balancer.set_health(_key(80), down, False)
    sched.sync(balancer.services)
    assert maps.ring_writes == writes and state.reals[down].real_id in maps.rings[row]
    assert maps.services[_key(80)].flags & SVC_F_FALLBACK


def test_a_service_past_a_maps_bound_says_which_bound_and_stays_with_the_daemon() -> None:
    weights = (4096, 1)  # wrr's cycle is Σ weight / gcd = 4097 positions: one more than SEQ_MAX
    balancer, maps, sched = _setup(_vs(82, sched="wrr", weights=weights), _vs(83, sched="wlc", weights=(1,) * 65))
    assert sched.reasons == {_key(82): "past XDP's bound: cycle longer than 4096 (SEQ_MAX)",
                             _key(83): "past XDP's bound: more than 64 reals (WALK_MAX)"}
    assert not maps.services[_key(82)].in_xdp and not maps.services[_key(83)].in_xdp
    balancer.sync([_vs(82, sched="wrr", weights=(4095, 1)), _vs(83, sched="wlc", weights=(1,) * 64)])
    sched.sync(balancer.services)
    assert sched.reasons == {} and maps.services[_key(82)].in_xdp and maps.services[_key(83)].in_xdp

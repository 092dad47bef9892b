"""lb.daemon.kernelhash: which services XDP schedules itself, their rings and flags, pressure."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from lb.balancer.engine import Balancer
from lb.daemon.kernelhash import KernelHashing, eligible, enabled_by_env, ring_of
from lb.model import Forwarding, Protocol, RealKey, RealServer, Service, ServiceKey, VirtualService
from lb.tables import (
    RING_SIZE,
    SVC_F_DROP_MIDFLOW_MISS,
    SVC_F_HASH_IN_KERNEL,
    SVC_F_HASH_PORT,
    ServiceEntry,
    ring_row,
    service_flags,
)


class FakeMaps:
    def __init__(self) -> None:
        self.rings: dict[int, list[int]] = {}
        self.services: dict[ServiceKey, ServiceEntry] = {}
        self.ring_writes = 0

    def set_ring(self, row: int, ids: list[int]) -> None:
        assert len(ids) == RING_SIZE
        self.rings[row] = list(ids)
        self.ring_writes += 1

    def clear_ring(self, row: int) -> None:
        self.set_ring(row, [0] * RING_SIZE)

    def set_service(self, key: ServiceKey, entry: ServiceEntry) -> None:
        self.services[key] = entry

    budget = [(0, 0), (0, 0)]  # noqa: RUF012 - replaced, never mutated; two CPUs: (created, allowed)

    def read_hash_budget(self) -> list[tuple[int, int]]:
        return list(self.budget)

    def grant_hash_budget(self, allowed: list[int]) -> None:
        self.budget = [(created, limit) for (created, _), limit in zip(self.budget, allowed, strict=True)]


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


def _setup(*vss: VirtualService, rows: int = 4) -> tuple[Balancer, FakeMaps, KernelHashing]:
    balancer = Balancer()
    balancer.sync(vss)
    maps = FakeMaps()
    hashing = KernelHashing(maps, rows)  # type: ignore[arg-type]
    hashing.sync(balancer.services, flags_reset=True)
    return balancer, maps, hashing


def test_only_plain_mh_services_get_a_ring_and_the_bit() -> None:
    balancer, maps, hashing = _setup(
        _vs(80), _vs(81, flags=frozenset({"mh-port"})), _vs(82, sched="rr"), _vs(83, upper=10),
        _vs(84, persistence=300),
    )
    assert set(hashing.rows) == {_key(80), _key(81)}
    flags = {key: maps.services[key].flags for key in map(_key, range(80, 85)) if key in maps.services}
    assert flags[_key(80)] & (SVC_F_HASH_IN_KERNEL | SVC_F_HASH_PORT) == SVC_F_HASH_IN_KERNEL
    assert flags[_key(81)] & SVC_F_HASH_PORT
    assert ring_row(flags[_key(80)]) != ring_row(flags[_key(81)])
    assert all(flags.get(_key(p), 0) == 0 for p in (82, 83, 84))
    assert [eligible(balancer.services[_key(p)]) for p in range(80, 85)] == [True, True, False, False, False]


def test_the_ring_is_the_maglev_table_in_real_ids() -> None:
    balancer, maps, hashing = _setup(_vs(80, weights=(1, 2, 3)))
    state = balancer.services[_key(80)]
    ids = [r.real_id for r in state.reals.values()]
    ring = maps.rings[hashing.rows[_key(80)]]
    assert ring == [ids[i] for i in state.scheduler.table]  # type: ignore[attr-defined]
    assert {ring.count(i) for i in ids} != {RING_SIZE // 3}  # weights shape it: not an even split


def test_an_unavailable_real_reads_0_and_rings_are_rewritten_only_when_changed() -> None:
    balancer, maps, hashing = _setup(_vs(80))
    state = balancer.services[_key(80)]
    row = hashing.rows[_key(80)]
    writes = maps.ring_writes
    hashing.sync(balancer.services)
    assert maps.ring_writes == writes  # nothing changed, nothing written
    down = list(state.reals)[1]
    balancer.set_health(_key(80), down, False)
    hashing.sync(balancer.services)
    down_id = state.reals[down].real_id
    assert maps.ring_writes == writes + 1 and down_id not in maps.rings[row]
    assert maps.rings[row].count(0) > RING_SIZE // 4  # its third of the slots: Python decides
    assert ring_of(state) == maps.rings[row]


def test_a_service_that_stops_being_eligible_loses_bit_and_row() -> None:
    balancer, maps, hashing = _setup(_vs(80))
    row = hashing.rows[_key(80)]
    balancer.sync([_vs(80, sched="wrr")])
    hashing.sync(balancer.services)
    assert hashing.rows == {} and maps.services[_key(80)].flags == 0 and set(maps.rings[row]) == {0}


def test_pressure_clears_every_bit_and_room_restores_it() -> None:
    balancer, maps, hashing = _setup(_vs(80), _vs(81))
    hashing.set_paused(True, balancer.services)
    assert all(entry.flags == 0 for entry in maps.services.values())
    hashing.set_paused(False, balancer.services)
    assert all(entry.flags & SVC_F_HASH_IN_KERNEL for entry in maps.services.values())


def test_more_services_than_rows_leave_the_rest_to_python() -> None:
    _, maps, hashing = _setup(_vs(80), _vs(81), _vs(82), rows=2)
    assert len(hashing.rows) == 2
    assert sum(1 for e in maps.services.values() if e.flags & SVC_F_HASH_IN_KERNEL) == 2


def test_the_budget_is_the_room_left_at_the_last_sweep_split_over_cpus() -> None:
    _, maps, hashing = _setup(_vs(80))
    maps.budget = [(10, 0), (4, 0)]
    hashing.note_sweep()
    hashing.grant(100)
    assert maps.budget == [(10, 60), (4, 54)]
    maps.budget = [(60, 60), (20, 54)]  # CPU 0 spent its share since the sweep
    hashing.grant(100)  # a tick without a sweep grants nothing new
    assert maps.budget == [(60, 60), (20, 54)]
    hashing.note_sweep()
    hashing.grant(0)  # the table is at its limit
    assert maps.budget == [(60, 60), (20, 20)]
    hashing.grant(1)  # less room than CPUs: one each, the limit's margin absorbs it
    assert maps.budget == [(60, 61), (20, 21)]


def test_disabled_does_nothing() -> None:
    balancer = Balancer()
    balancer.sync([_vs(80)])
    maps = FakeMaps()
    KernelHashing(maps, 4, enabled=False).sync(balancer.services, flags_reset=True)  # type: ignore[arg-type]
    assert maps.rings == {} and all(e.flags == 0 for e in maps.services.values())


@pytest.mark.parametrize("value, on", [(None, True), ("1", True), ("0", False), ("off", False), ("no", False)])
def test_environment_switch(value: str | None, on: bool) -> None:
    assert enabled_by_env({} if value is None else {"LBXDP_KERNEL_HASH": value}) is on


def _resync(balancer: Balancer, maps: FakeMaps, hashing: KernelHashing) -> None:
    """What Daemon._resync does: every service's plain flags (service_flags()), then the hashing's."""
    for key, state in balancer.services.items():
        maps.set_service(key, ServiceEntry(state.service_id, service_flags(state.scheduler)))
    hashing.sync(balancer.services, flags_reset=True)


def test_the_drop_bit_survives_every_write_of_the_hashing() -> None:
    """SVC_F_DROP_MIDFLOW_MISS is the service's (rr: set; mh: not), whatever the hashing writes."""
    balancer = Balancer()
    balancer.sync([_vs(80), _vs(82, sched="rr")])
    maps = FakeMaps()
    hashing = KernelHashing(maps, 4)  # type: ignore[arg-type]
    _resync(balancer, maps, hashing)
    mh, rr = _key(80), _key(82)
    assert maps.services[rr].flags == SVC_F_DROP_MIDFLOW_MISS
    assert maps.services[mh].flags & SVC_F_HASH_IN_KERNEL and not maps.services[mh].flags & SVC_F_DROP_MIDFLOW_MISS
    hashing.set_paused(True, balancer.services)
    assert (maps.services[mh].flags, maps.services[rr].flags) == (0, SVC_F_DROP_MIDFLOW_MISS)
    hashing.set_paused(False, balancer.services)
    assert maps.services[rr].flags == SVC_F_DROP_MIDFLOW_MISS
    # mh → wrr → mh, as `-E` does it: the bit comes with wrr and goes with mh, the row the other way
    balancer.sync([_vs(80, sched="wrr"), _vs(82, sched="rr")])
    _resync(balancer, maps, hashing)
    assert maps.services[mh].flags == SVC_F_DROP_MIDFLOW_MISS and hashing.rows == {}
    balancer.sync([_vs(80), _vs(82, sched="rr")])
    _resync(balancer, maps, hashing)
    assert maps.services[mh].flags & (SVC_F_HASH_IN_KERNEL | SVC_F_DROP_MIDFLOW_MISS) == SVC_F_HASH_IN_KERNEL
    # a health transition rewrites rings and flags without a resync: the rr bit stays
    state = balancer.services[mh]
    balancer.set_health(mh, next(iter(state.reals)), False)
    hashing.sync(balancer.services)
    assert maps.services[rr].flags == SVC_F_DROP_MIDFLOW_MISS

"""The disruption baselines: rendezvous moves only what it must; modulo moves nearly everything."""

from __future__ import annotations

from collections import Counter

import pytest

from lb.experiments.baselines import ModuloScheduler, RendezvousScheduler
from lb.experiments.context import make_reals
from lb.experiments.workload import distinct_keys

FLOWS = distinct_keys(4000, 2)


def _map(sched, dests):
    sched.update(dests)
    return [sched.schedule(f, dests).key for f in FLOWS]


def test_rendezvous_removal_moves_exactly_the_removed_reals_flows() -> None:
    base = make_reals([1] * 10)
    before = _map(RendezvousScheduler(), base)
    after = _map(RendezvousScheduler(), base[:3] + base[4:])
    moved = {i for i, (a, b) in enumerate(zip(before, after)) if a != b}
    assert moved == {i for i, k in enumerate(before) if k == base[3].key}


def test_rendezvous_addition_moves_flows_only_to_the_new_real() -> None:
    base = make_reals([1] * 10)
    grown = base + make_reals([1], first=10)
    before, after = _map(RendezvousScheduler(), base), _map(RendezvousScheduler(), grown)
    assert {b for a, b in zip(before, after) if a != b} == {grown[-1].key}


def test_rendezvous_follows_weights() -> None:
    dests = make_reals([1, 3])
    counts = Counter(_map(RendezvousScheduler(), dests))
    assert counts[dests[1].key] / len(FLOWS) == pytest.approx(0.75, abs=0.03)


def test_modulo_is_balanced_but_remaps_most_flows() -> None:
    base = make_reals([1] * 10)
    before = _map(ModuloScheduler(), base)
    assert max(Counter(before).values()) / (len(FLOWS) / 10) < 1.15
    after = _map(ModuloScheduler(), base[1:])
    assert sum(a != b for a, b in zip(before, after)) / len(FLOWS) > 0.8


@pytest.mark.parametrize("cls", [RendezvousScheduler, ModuloScheduler])
def test_no_available_real_gives_none(cls) -> None:
    dests = make_reals([1, 1])
    for d in dests:
        d.healthy = False
    sched = cls()
    sched.update(dests)
    assert sched.schedule(FLOWS[0], dests) is None

"""Hash baselines for the disruption study; not product schedulers, so they live here, not in lb/sched.

- `RendezvousScheduler`: highest-random-weight hashing (Thaler & Ravishankar, "Using name-based
  mappings to increase hit rates", IEEE/ACM ToN 1998). Each flow scores every real and takes the
  best; removing a real moves only that real's flows, the ideal Maglev trades a little of for O(1)
  lookups. Weights use the logarithmic method (score = −w / ln u, u uniform in (0,1)), which gives
  each real a w/Σw share (Schindelhauer & Schomaker, "Weighted distributed hash tables", SPAA 2005).
- `ModuloScheduler`: hash mod N, the naive scheme whose wholesale remapping on any change motivates
  consistent hashing (Karger et al., STOC 1997).

Both hash the client (address, port) with lb.sched.hashing's 32-bit functions, so runs are
reproducible across processes (Python's own hash() is salted per process).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

from lb.model import FlowKey
from lb.sched.base import Destination, Scheduler
from lb.sched.hashing import MASK32, fmix32, fold

_TWO32 = float(1 << 32)


def flow_hash(flow: FlowKey) -> int:
    """A 32-bit hash of the client (address, port)."""
    return fmix32(fmix32(int(flow.saddr)) ^ flow.sport)


def _real_hash(dest: Destination) -> int:
    return fmix32(fold(dest.key.address, dest.key.port) ^ 0x9E3779B9)


class RendezvousScheduler(Scheduler):
    """Weighted rendezvous (HRW) hashing over the available reals."""

    name: ClassVar[str] = "rendezvous"

    def __init__(self, flags: frozenset[str] = frozenset()) -> None:
        super().__init__(flags)
        self._seeds: list[tuple[Destination, int]] = []

    def update(self, dests: Sequence[Destination]) -> None:
        self._seeds = [(dest, _real_hash(dest)) for dest in dests]

    def schedule(self, flow: FlowKey, dests: Sequence[Destination]) -> Destination | None:
        key = flow_hash(flow)
        best: Destination | None = None
        best_score = -math.inf
        log = math.log
        for dest, seed in self._seeds:
            if not dest.available:
                continue
            # fmix32(key ^ seed), inlined: this loop is the disruption study's hot spot.
            h = key ^ seed
            h ^= h >> 16
            h = (h * 0x85EBCA6B) & MASK32
            h ^= h >> 13
            h = (h * 0xC2B2AE35) & MASK32
            h ^= h >> 16
            score = -dest.weight / log((h + 0.5) / _TWO32)  # u in (0, 1), so ln u < 0
            if score > best_score:
                best, best_score = dest, score
        return best


class ModuloScheduler(Scheduler):
    """hash(flow) mod (number of available reals): balanced, but any change remaps almost everything."""

    name: ClassVar[str] = "modulo"

    def schedule(self, flow: FlowKey, dests: Sequence[Destination]) -> Destination | None:
        live = [dest for dest in dests if dest.available]
        if not live:
            return None
        return live[flow_hash(flow) % len(live)]


BASELINES: dict[str, type[Scheduler]] = {cls.name: cls for cls in (RendezvousScheduler, ModuloScheduler)}

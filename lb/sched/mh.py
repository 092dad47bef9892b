"""Maglev hashing: a large lookup table that changes little when a real comes or goes.

The table (Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load Balancer",
NSDI 2016, §3.4) has a prime number M of slots. Each real has a permutation of the slots,
`offset + j * skip (mod M)`; in turns, each real claims the next slot of its permutation that is
still free, until the table is full. Follows net/netfilter/ipvs/ip_vs_mh.c:

- A real's permutation comes from its address and port, `v = ntohl(addr) + port`:
  `offset = mh_hash(v, MH_SEED1) % M`, `skip = mh_hash(v, MH_SEED2) % (M - 1) + 1`
  (lb.sched.hashing: `mh_hash(v, seed) = fmix32(v ^ seed)`, where the kernel uses hsiphash).
- Weights by turns: a real of weight w claims `(w / g) >> rshift` slots in a row per round (at
  least one), g the gcd of the positive weights and rshift the shift that keeps the largest turn
  count under 2**6 (ip_vs_mh_shift_weight()). The weight used is the last non-zero one
  (`last_weight` in ip_vs_ctl.c), so quiescing a real with weight 0 keeps the table unchanged and
  its flows get None (or a fallback) instead of moving everyone else.
- Lookup: slot `mh_hash(ntohl(saddr) + sport, MH_SEED1) % M`, sport only with `mh-port`.
  An unavailable real gives None, unless `mh-fallback`: then for i = 0 … M-1 the slot
  `mh_hash(v + ((ihash + i) mod M), MH_SEED1) % M` is tried (ip_vs_mh_get_fallback()).

`table` holds, per slot, the index of its real in the sequence last given to update() (-1 when
there is none); that array is what an XDP program needs to schedule without user space.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from math import gcd

from lb.model import FlowKey, RealKey
from lb.sched.base import Destination, Scheduler
from lb.sched.hashing import MH_SEED1, MH_SEED2, fold, mh_hash
from lb.sched.registry import register
from lb.sched.xdpkind import XdpKind

DEFAULT_M = 65537
TAB_BITS = 6  # ip_vs_mh.c: IP_VS_MH_TAB_BITS = CONFIG_IP_VS_MH_TAB_INDEX (12) / 2
EMPTY = -1


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    f = 3
    while f * f <= n:
        if n % f == 0:
            return False
        f += 2
    return True


def permutation(key: RealKey, m: int) -> tuple[int, int]:
    """(offset, skip) of a real's preference list in a table of m slots."""
    v = fold(key.address, key.port)
    return mh_hash(v, MH_SEED1) % m, mh_hash(v, MH_SEED2) % (m - 1) + 1


def turns_for(weights: Sequence[int]) -> list[int]:
    """Slots each real claims per round: ip_vs_mh_gcd_weight() / ip_vs_mh_shift_weight()."""
    g = 0
    for w in weights:
        if w > 0:
            g = gcd(g, w)
    if g < 1:
        return [0] * len(weights)
    shift = max(0, (max(weights) // g).bit_length() - TAB_BITS)
    return [((w // g) >> shift) or (1 if w != 0 else 0) for w in weights]


def populate(perms: Sequence[tuple[int, int]], turns: Sequence[int], m: int) -> list[int]:
    """ip_vs_mh_populate(): the owner index of every slot (EMPTY everywhere if nobody has turns).

    Reals claim in list order, each `turns` slots in a row, round after round. Probing slot by
    slot costs about M·ln M steps in all, most of them spent on the last few hundred free slots,
    so those are claimed from the free list instead: a real's next free slot from c is the free f
    with the smallest position ((f - c) · skip⁻¹) mod M in its permutation, which numpy finds in
    one pass. Both ways give the same table.
    """
    table = [EMPTY] * m
    if not any(t > 0 for t in turns):
        return table
    nxt = [p[0] for p in perms]
    skips = [p[1] for p in perms]
    taken = bytearray(m)
    order = _turn_order(turns)
    head = m - min(TAIL_SLOTS, m)
    for _ in range(head):
        i = next(order)
        c = nxt[i]
        s = skips[i]
        while taken[c]:
            c += s
            if c >= m:
                c -= m
        taken[c] = 1
        table[c] = i
        nxt[i] = c
    if head < m:
        _populate_tail(table, taken, nxt, skips, order, m)
    return table


TAIL_SLOTS = 256  # measured: below this many free slots a numpy claim beats probing


def _turn_order(turns: Sequence[int]) -> Iterator[int]:
    """Real indices in claiming order: each real `turns` times in a row, in list order, forever."""
    rnd = [i for i, t in enumerate(turns) for _ in range(t)]
    while True:
        yield from rnd


def _populate_tail(
    table: list[int], taken: bytearray, nxt: list[int], skips: list[int], order: Iterator[int], m: int
) -> None:
    import numpy as np  # only here, and only for big tables' last slots

    free = np.flatnonzero(np.frombuffer(bytes(taken), dtype=np.uint8) == 0).astype(np.int64)
    inverses: dict[int, int] = {}
    for nfree in range(len(free), 0, -1):
        i = next(order)
        s = skips[i]
        inv = inverses.get(s)
        if inv is None:
            inv = inverses[s] = pow(s, -1, m)
        k = int((((free[:nfree] - nxt[i]) * inv) % m).argmin())
        c = int(free[k])
        free[k] = free[nfree - 1]
        table[c] = i
        nxt[i] = c


@register
class MaglevHashing(Scheduler):
    name = "mh"
    flag_bits = ("mh-fallback", "mh-port")  # IP_VS_SVC_F_SCHED_MH_FALLBACK, _MH_PORT
    flags_allowed = frozenset(flag_bits)
    fallback_flag = "mh-fallback"
    port_flag = "mh-port"
    hashes = True
    rederives_midflow = True  # the slot of a packet's client is the slot of its connection
    xdp_kind = XdpKind.MH  # from its table, as a ring in hash_rings (lb.daemon.kernelsched)

    def __init__(self, flags: frozenset[str] = frozenset(), m: int = DEFAULT_M) -> None:
        super().__init__(flags)
        if not is_prime(m):
            raise ValueError(f"Maglev table size {m} is not a prime")
        self.m = m
        self.table: list[int] = [EMPTY] * m
        self._last_weight: dict[RealKey, int] = {}

    def update(self, dests: Sequence[Destination]) -> None:
        if len(dests) > self.m:
            raise ValueError(f"{len(dests)} reals do not fit a Maglev table of {self.m} slots")
        last = {}
        for d in dests:
            # ip_vs_ctl.c keeps the last non-zero weight (a new real starts with its own).
            prev = self._last_weight.get(d.key)
            last[d.key] = d.weight if d.weight != 0 or prev is None else prev
        self._last_weight = last
        weights = [last[d.key] for d in dests]
        self.table = populate([permutation(d.key, self.m) for d in dests], turns_for(weights), self.m)

    def xdp_row(self, dests: Sequence[Destination], ids: Sequence[int]) -> list[int] | None:
        """The ring XDP reads: slot → the id of the real the table names there when that real is
        available, else 0 (unavailable, or a slot nobody claimed: the daemon decides, and drops).
        With mh-fallback every claimed slot names its real, whatever its availability: XDP reads that
        from real_sched and walks on past an unavailable one (pick_mh() in bpf/lb_kern.c). Only a
        table of the ring's size fits hash_rings."""
        if self.m != DEFAULT_M:
            return None
        walks = self.fallback_flag in self.flags
        named = [rid if walks or d.available else 0 for d, rid in zip(dests, ids, strict=True)]
        named.append(0)  # table entries are -1 (EMPTY) where nobody claimed the slot: index -1 reads this 0
        return [named[i] for i in self.table]

    def slot(self, flow: FlowKey, offset: int = 0) -> int:
        """The table slot a flow hashes to (ip_vs_mh_hashkey() with hash1)."""
        v = fold(flow.saddr, flow.sport if self.port_flag in self.flags else 0)
        return mh_hash((v + offset) & 0xFFFFFFFF, MH_SEED1) % self.m

    def schedule(self, flow: FlowKey, dests: Sequence[Destination]) -> Destination | None:
        ihash = self.slot(flow)
        dest = self._at(ihash, dests)
        if dest is None or dest.available:
            return dest
        if self.fallback_flag not in self.flags or not any(d.available for d in dests):
            return None  # the kernel's walk would find nothing either
        for offset in range(self.m):
            dest = self._at(self.slot(flow, (ihash + offset) % self.m), dests)
            if dest is None:
                return None
            if dest.available:
                return dest
        return None

    def _at(self, slot: int, dests: Sequence[Destination]) -> Destination | None:
        i = self.table[slot]
        return dests[i] if 0 <= i < len(dests) else None

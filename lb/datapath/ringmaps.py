"""Maglev in XDP: the `hash_rings` (one ring of RING_SIZE slots per hashed service), each CPU's
`hash_budget` of flows XDP may create, and `hash_conns`, the flows XDP scheduled per real."""

from __future__ import annotations

import array
import ctypes
import os

from lb.datapath import structs as S
from lb.datapath.mapaccess import MapAccess, MapError
from lb.tables import RING_SIZE

NO_LIMIT = 2**64 - 1  # hash_budget.allowed of a Tables without a budget


class RingMaps(MapAccess):
    """Rings, budgets and XDP's Conns."""

    def set_ring(self, row: int, real_ids: list[int]) -> None:
        """Fill Maglev ring `row` of hash_rings: slot → real id, 0 where the first-packet path decides.
        A ring is one map value (struct mh_ring), so this is one update: 1.4 ms here, most of it
        turning the list into an array (an array map of RING_SIZE entries a ring took 30 ms with
        BPF_MAP_UPDATE_BATCH, 0.4 s entry by entry, and twice the memory)."""
        self._check_row(row)
        if len(real_ids) != RING_SIZE:
            raise MapError(f"a ring has {RING_SIZE} slots, not {len(real_ids)}")
        value = S.MhRingC.from_buffer(array.array("I", real_ids))
        self._update("hash_rings", ctypes.c_uint32(row), value)

    def clear_ring(self, row: int) -> None:
        """Every slot of `row` 0: no flow of it is scheduled in XDP any more."""
        self.set_ring(row, [0] * RING_SIZE)

    def read_ring(self, row: int) -> list[int]:
        """Ring `row` of hash_rings, slot by slot."""
        self._check_row(row)
        value = self._lookup("hash_rings", ctypes.c_uint32(row))
        if value is None:
            raise MapError(f"hash_rings: lookup of row {row} failed: {os.strerror(ctypes.get_errno())}")
        return list(value.real_ids)

    def _check_row(self, row: int) -> None:
        if not 0 <= row < self.max_hashed_services:
            raise MapError(f"ring row {row} does not fit hash_rings (MAX_HASHED_SERVICES={self.max_hashed_services})")

    def read_hash_budget(self) -> list[tuple[int, int]]:
        """(created, allowed) of each CPU's hash_budget: flows it created in XDP, and its limit."""
        return [(c.created, c.allowed) for c in self._percpu("hash_budget", 0)]

    def grant_hash_budget(self, allowed: list[int], reset: bool = False) -> None:
        """Let CPU i create flows in XDP while its count is below allowed[i]. The counts are kept
        (`reset`: zeroed); one XDP may add between the read and the write is lost, which only
        grants that many flows more."""
        values = (S.HashBudgetC * self._ncpus)()
        current = [(0, 0)] * self._ncpus if reset else self.read_hash_budget()
        for i, ((created, _), limit) in enumerate(zip(current, allowed, strict=True)):
            values[i].created, values[i].allowed = created, limit
        self._update("hash_budget", ctypes.c_uint32(0), values)

    def hash_conns(self, real_ids: range | list[int]) -> dict[int, int]:
        """Flows XDP scheduled itself, per real id (summed over CPUs): part of ipvsadm's Conns."""
        return {rid: sum(self._percpu("hash_conns", rid)) for rid in real_ids}

    def reset_hash_conns(self, real_ids: range | list[int]) -> None:
        for rid in real_ids:
            self._set_percpu("hash_conns", rid, ctypes.c_uint64)

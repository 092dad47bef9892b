"""The per-CPU counters XDP keeps: packets per verdict reason (`reason_counts`) and traffic per
real (`real_counts`), summed over CPUs when read."""

from __future__ import annotations

import ctypes
from collections.abc import Iterable, Mapping, Sequence

from lb.datapath import structs as S
from lb.datapath.mapaccess import MapAccess, MapError
from lb.rewrite.verdicts import Reason
from lb.tables import Traffic


class CounterMaps(MapAccess):
    """Reason and traffic counters: read, summed, zeroed."""

    def reason_counts(self) -> dict[Reason, int]:
        """Packets per verdict reason, summed over CPUs (every reason, zeros included). A reason
        past the map's end reads 0: a map pinned by an older program (a smaller REASON_MAX) is
        adopted as it is, and XDP skips a reason it has no slot for."""
        counts: dict[Reason, int] = {}
        for reason in Reason:
            try:
                counts[reason] = sum(self._percpu("reason_counts", int(reason)))
            except MapError:
                counts[reason] = 0
        return counts

    def service_traffic(self, reals_of: Mapping[int, Iterable[int]]) -> dict[int, Traffic]:
        """Per-service totals, `reals_of` mapping each service id to its real ids: XDP counts per real
        only (one counter update per packet), and a real id belongs to one service."""
        return {sid: sum(self.real_traffic(list(rids)).values(), Traffic()) for sid, rids in reals_of.items()}

    def real_traffic(self, real_ids: range | list[int]) -> dict[int, Traffic]:
        return {rid: self._traffic("real_counts", rid) for rid in real_ids}

    def reset_counters(self, service_ids: Sequence[int] = (), real_ids: Sequence[int] = ()) -> None:
        """Zero the reason counters and the given reals' traffic counters. `service_ids` is accepted for
        the callers' sake and needs nothing: a service's traffic is the sum of its reals'."""
        del service_ids
        for reason in Reason:
            self._set_percpu("reason_counts", int(reason), ctypes.c_uint64)
        for rid in real_ids:
            self._set_percpu("real_counts", rid, S.TrafficCounterC)
            self._set_percpu("hash_conns", rid, ctypes.c_uint64)

"""The maps XDP schedules first packets from, besides the Maglev rings (ringmaps): rr/wrr cycles and
their cursors, sh/dh buckets, least-connection walks, each real's weight and availability, each real's
connection counts, and persistence templates. One row per service of a kind (lb.daemon.kernelsched
hands the rows out); a row is one map value, written with one update."""

from __future__ import annotations

import ctypes
from collections.abc import Iterable
from ipaddress import IPv4Address
from typing import Any

from lb.datapath import structs as S
from lb.datapath.mapaccess import MapAccess, MapError
from lb.tables import RealSched


class SchedMaps(MapAccess):
    """sched_seqs, sched_cursors, bucket_tables, sched_dests, real_sched, real_conns, templates."""

    max_sched_rows = 256  # MAX_SCHED_ROWS (the loader sets its Tunables' figure)

    @property
    def rows_written(self) -> set[int]:
        """Rows of sched_seqs, sched_cursors and sched_dests this handle wrote (DatapathMaps.write()
        clears them)."""
        rows: set[int] = self.__dict__.setdefault("_rows_written", set())
        return rows

    @property
    def reals_written(self) -> set[int]:
        """Real ids whose real_sched or real_conns entry this handle wrote."""
        reals: set[int] = self.__dict__.setdefault("_reals_written", set())
        return reals

    # -- rr, wrr ---------------------------------------------------------------------------------

    def set_seq(self, row: int, real_ids: list[int]) -> None:
        """Row `row` of sched_seqs: one rr/wrr cycle of real ids (len 0: XDP leaves it to the daemon)."""
        self._check_sched_row(row)
        if len(real_ids) > S.SEQ_MAX:
            raise MapError(f"a cycle of {len(real_ids)} reals does not fit sched_seqs (SEQ_MAX={S.SEQ_MAX})")
        self.rows_written.add(row)
        value = S.SchedSeqC(len(real_ids))
        value.real_ids[: len(real_ids)] = real_ids
        self._update("sched_seqs", ctypes.c_uint32(row), value)

    def read_seq(self, row: int) -> list[int]:
        value = self._row("sched_seqs", row)
        return list(value.real_ids[: min(value.len, S.SEQ_MAX)])

    def set_cursor(self, row: int, position: int) -> None:
        """Where XDP's next new flow of the cycle in `row` goes (it adds 1 per flow, atomically)."""
        self._check_sched_row(row)
        self.rows_written.add(row)
        self._update("sched_cursors", ctypes.c_uint32(row), ctypes.c_uint64(position))

    def read_cursor(self, row: int) -> int:
        return int(self._row("sched_cursors", row).value)

    # -- sh, dh ----------------------------------------------------------------------------------

    def set_buckets(self, row: int, real_ids: list[int]) -> None:
        self._check_sched_row(row)
        if len(real_ids) != S.BUCKETS:
            raise MapError(f"a bucket table has {S.BUCKETS} buckets, not {len(real_ids)}")
        value = S.BucketTableC()
        value.real_ids[:] = real_ids
        self._update("bucket_tables", ctypes.c_uint32(row), value)

    def read_buckets(self, row: int) -> list[int]:
        return list(self._row("bucket_tables", row).real_ids)

    # -- lc, wlc, sed, nq, fo, ovf ---------------------------------------------------------------

    def set_walk(self, row: int, real_ids: list[int]) -> None:
        self._check_sched_row(row)
        if len(real_ids) > S.WALK_MAX:
            raise MapError(f"{len(real_ids)} reals do not fit sched_dests (WALK_MAX={S.WALK_MAX})")
        self.rows_written.add(row)
        value = S.SchedDestsC(len(real_ids))
        value.real_ids[: len(real_ids)] = real_ids
        self._update("sched_dests", ctypes.c_uint32(row), value)

    def read_walk(self, row: int) -> list[int]:
        value = self._row("sched_dests", row)
        return list(value.real_ids[: min(value.count, S.WALK_MAX)])

    # -- per real --------------------------------------------------------------------------------

    def set_real_sched(self, real_id: int, sched: RealSched) -> None:
        self.reals_written.add(real_id)
        value = S.RealSchedC(sched.weight, S.REAL_F_AVAILABLE if sched.available else 0)
        self._update("real_sched", ctypes.c_uint32(real_id), value)

    def read_real_sched(self, real_id: int) -> RealSched:
        value = self._row("real_sched", real_id)
        return RealSched(value.weight, bool(value.flags & S.REAL_F_AVAILABLE))

    def set_conns(self, real_id: int, active: int, inactive: int) -> None:
        self.reals_written.add(real_id)
        self._update("real_conns", ctypes.c_uint32(real_id), S.RealConnsC(active, inactive))

    def add_conns(self, real_id: int, active: int, inactive: int) -> None:
        """Add to a real's counts from user space (a flow the first-packet path installed or replaced).
        A read and a write, not XDP's atomic add: an add XDP makes in between is lost, until the next
        sweep rewrites the entry (docs/schedulers.md, "Counting")."""
        value = self._lookup("real_conns", ctypes.c_uint32(real_id))
        if value is None:  # a real id past the map: nothing XDP could read either
            return
        self.reals_written.add(real_id)
        self._update("real_conns", ctypes.c_uint32(real_id),
                     S.RealConnsC(value.active + active, value.inactive + inactive))

    def read_conns(self, real_ids: Iterable[int]) -> dict[int, tuple[int, int]]:
        """(active, inactive) per real id as XDP and the sweep left them (negative read as 0)."""
        out = {}
        for rid in real_ids:
            value = self._row("real_conns", rid)
            out[rid] = (max(0, value.active), max(0, value.inactive))
        return out

    # -- persistence -----------------------------------------------------------------------------

    def set_template(self, service_id: int, client_net: IPv4Address, real_id: int, expires_ns: int) -> None:
        key = S.TemplateKeyC(service_id, S.be32(client_net))
        self._update("templates", key, S.PersistTemplateC(expires_ns, real_id, 0))

    def get_template(self, service_id: int, client_net: IPv4Address) -> tuple[int, int] | None:
        """(expires_ns, real id) of one template, None when there is none."""
        value = self._lookup("templates", S.TemplateKeyC(service_id, S.be32(client_net)))
        return None if value is None else (value.expires_ns, value.real_id)

    def read_templates(self) -> dict[tuple[int, int], tuple[int, int]]:
        """(service id, client network as a host-order int) → (expires_ns, real id)."""
        return {
            (k.service_id, int(S.address(k.client_net))): (v.expires_ns, v.real_id) for k, v in self._items("templates")
        }

    def delete_template(self, service_id: int, client_net: IPv4Address) -> None:
        self._delete("templates", S.TemplateKeyC(service_id, S.be32(client_net)))

    def _row(self, name: str, index: int) -> Any:
        value = self._lookup(name, ctypes.c_uint32(index))
        if value is None:
            raise MapError(f"{name}: no entry {index}")
        return value

    def _check_sched_row(self, row: int) -> None:
        if not 0 <= row < self.max_sched_rows:
            raise MapError(f"row {row} does not fit the scheduler maps (MAX_SCHED_ROWS={self.max_sched_rows})")

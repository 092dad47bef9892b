"""Source hashing: a client address (optionally with its port) always maps to the same real.

Follows net/netfilter/ipvs/ip_vs_sh.c:

- The table has 256 buckets, filled in list order, each real taking `weight` consecutive buckets
  (a quiescent real still takes one, as ip_vs_sh_reassign()'s `++d_count >= weight` does), round
  after round until the table is full. It is rebuilt on every update().
- A flow's bucket is `hash_32(ntohl(saddr) + sport, 8)`, the port counting only with the
  `sh-port` flag (lb.sched.hashing states the hash).
- An unavailable real in that bucket (quiescent, overloaded, unhealthy) gives None, unless
  `sh-fallback` is set: then the buckets are tried in the kernel's order, for i = 0, 1, …, 255
  bucket `(((ihash + i) mod 256) + ihash) mod 256` (ip_vs_sh_get_fallback() adds the rotated
  offset to the hash once more), and the first available real wins.

The XDP program decides sh and dh first packets itself from the table (`xdp_row()`: the bucket's
real id, whatever that real's availability, which XDP reads from real_sched), with the same hash
and the same walk (pick_bucket() in bpf/lb_kern.c).
"""

from __future__ import annotations

from collections.abc import Sequence

from lb.model import FlowKey
from lb.sched.base import Destination, Scheduler
from lb.sched.hashing import fold, hash_32
from lb.sched.registry import register
from lb.sched.xdpkind import XdpKind

TAB_BITS = 8
TAB_SIZE = 1 << TAB_BITS
EMPTY = -1


def fill_buckets(weights: Sequence[int], size: int = TAB_SIZE) -> list[int]:
    """ip_vs_sh_reassign(): real indices laid over `size` buckets, `weight` in a row each (min 1)."""
    if not weights:
        return [EMPTY] * size
    table: list[int] = []
    i = count = 0
    while len(table) < size:
        table.append(i)
        count += 1
        if count >= weights[i]:
            i = (i + 1) % len(weights)
            count = 0
    return table


class BucketScheduler(Scheduler):
    """Shared by sh and dh: a 256-bucket table of real indices, looked up by a hashed address."""

    hashes = True
    rederives_midflow = True  # the bucket of a packet's address is the bucket of its connection

    def __init__(self, flags: frozenset[str] = frozenset()) -> None:
        super().__init__(flags)
        self.table: list[int] = [EMPTY] * TAB_SIZE

    def bucket_key(self, flow: FlowKey) -> int:
        raise NotImplementedError

    def xdp_row(self, dests: Sequence[Destination], ids: Sequence[int]) -> list[int] | None:
        """bucket_tables' row: bucket → the id of its real whatever the real's availability (XDP reads
        that from real_sched, so a health change rewrites no row), 0 in a table without reals."""
        named = [*ids, 0]  # an EMPTY (-1) bucket reads this 0
        return [named[i] for i in self.table]

    def schedule(self, flow: FlowKey, dests: Sequence[Destination]) -> Destination | None:
        v = self.bucket_key(flow)
        ihash = hash_32(v, TAB_BITS)
        dest = self._at(ihash, dests)
        if dest is None or dest.available:
            return dest
        if self.fallback_flag is None or self.fallback_flag not in self.flags:
            return None
        for offset in range(TAB_SIZE):
            roffset = (offset + ihash) % TAB_SIZE
            dest = self._at((roffset + ihash) % TAB_SIZE, dests)
            if dest is None:
                return None
            if dest.available:
                return dest
        return None

    def _at(self, bucket: int, dests: Sequence[Destination]) -> Destination | None:
        i = self.table[bucket]
        return dests[i] if 0 <= i < len(dests) else None


@register
class SourceHashing(BucketScheduler):
    name = "sh"
    xdp_kind = XdpKind.SH
    flag_bits = ("sh-fallback", "sh-port")  # IP_VS_SVC_F_SCHED_SH_FALLBACK, _SH_PORT
    flags_allowed = frozenset(flag_bits)
    fallback_flag = "sh-fallback"
    port_flag = "sh-port"

    def update(self, dests: Sequence[Destination]) -> None:
        self.table = fill_buckets([d.weight for d in dests])

    def bucket_key(self, flow: FlowKey) -> int:
        return fold(flow.saddr, flow.sport if self.port_flag in self.flags else 0)

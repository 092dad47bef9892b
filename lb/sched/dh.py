"""Destination hashing: the real is chosen by the flow's destination address.

Follows net/netfilter/ipvs/ip_vs_dh.c: 256 buckets, one real per bucket in list order, round after
round (weights are not used), looked up by `hash_32(ntohl(daddr), 8)`; an unavailable real gives
None (there is no fallback). IPVS meant this for cache and firewall farms where many destination
addresses pass one balancer; for a single-VIP service every flow maps to the same real. XDP decides
dh first packets itself, as sh's (lb.sched.sh).
"""

from __future__ import annotations

from collections.abc import Sequence

from lb.model import FlowKey
from lb.sched.base import Destination
from lb.sched.hashing import fold
from lb.sched.registry import register
from lb.sched.sh import BucketScheduler, fill_buckets
from lb.sched.xdpkind import XdpKind


@register
class DestinationHashing(BucketScheduler):
    name = "dh"
    xdp_kind = XdpKind.DH

    def update(self, dests: Sequence[Destination]) -> None:
        self.table = fill_buckets([1] * len(dests))

    def bucket_key(self, flow: FlowKey) -> int:
        return fold(flow.daddr)

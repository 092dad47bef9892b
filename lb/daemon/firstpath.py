"""The first-packet path: a packet XDP could not place arrives over NFQUEUE and leaves scheduled.

For each queued packet: find its service, decide (schedule a new flow, reuse an existing one, or
refuse by the stated policy), install the flow in the BPF maps, and forward the packet exactly as XDP
would — through the pure rewrite model, with next hops from the kernel's tables — on an AF_PACKET
socket. docs/daemon.md has the policy table.
"""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any

from lb.balancer.decide import Fate, decide, fate
from lb.balancer.engine import Balancer, Placement
from lb.balancer.firstpacket import read_packet, wrap_in_frame
from lb.balancer.lifetime import phase_of
from lb.daemon.flows import FlowBook
from lb.datapath.interfaces import LinkFacts, link_facts
from lb.datapath.maps import DatapathMaps
from lb.datapath.neighbours import NeighbourResolver
from lb.datapath.nfqverdict import DropBatch
from lb.datapath.sender import FrameSender
from lb.model import FlowKey, RealServer
from lb.rewrite import forward_placed
from lb.rewrite.fib import FibResult, FibStatus
from lb.rewrite.verdicts import Reason
from lb.tables import RealEntry, TcpSeen

log = logging.getLogger("lbxdp")

FIB_CACHE_SECONDS = 1.0  # how long the first-packet path trusts a next hop it looked up
QUEUE_NUM = 4711  # NFQUEUE numbers are per network namespace, so one fixed number never collides
QUEUE_LEN = 4096  # first packets the kernel holds for the daemon; beyond, it drops them (status counts)


@dataclass
class FirstPathCounters:
    """What the first-packet path did: packets it saw, and events by name (shown by `lbxdp status`)."""

    packets: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def bump(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1


class FirstPacketPath:
    def __init__(
        self,
        balancer: Balancer,
        maps: DatapathMaps,
        flows: FlowBook,
        tx_ifindexes: set[int],
    ) -> None:
        self.balancer = balancer
        self.maps = maps
        self.flows = flows
        self.tx_ifindexes = tx_ifindexes  # shared with the daemon, which attaches and detaches
        self.sender = FrameSender()
        self.resolver = NeighbourResolver()
        self.counters = FirstPathCounters()
        self.conns: dict[int, int] = {}  # real id → connections scheduled (ipvsadm's Conns)
        # real id → [packets, bytes] of first packets forwarded from here: XDP never counted them,
        # and ipvsadm's InPkts/InBytes include every packet of a connection.
        self.first_traffic: dict[int, list[int]] = {}
        self.dirty = False  # counts changed since the daemon last saved its state
        self.tunnel_source: IPv4Address | None = None  # what the daemon wrote into the config map
        self._links: dict[int, LinkFacts] = {}
        self._real_entries: dict[int, tuple[RealServer, RealEntry]] = {}
        # Drops of originals sent as one verdict message per drained queue (the daemon sets it once
        # NFQUEUE is bound); None: each packet gets its own verdict.
        self.drops: DropBatch | None = None
        self._fib_cache: dict[IPv4Address, tuple[FibResult, float]] = {}

    def close(self) -> None:
        try:
            if self.drops is not None:
                self.drops.close()
        finally:
            self.sender.close()
            self.resolver.close()

    def flush_drops(self) -> None:
        """The queue is drained: drop the originals noted since the last flush, in one message."""
        if self.drops is not None:
            self.drops.flush()

    def forget_links(self) -> None:
        """Interfaces changed (attach/detach): cached facts may be stale."""
        self._links.clear()
        self._fib_cache.clear()
        self.sender.forget_names()

    # -- deciding --------------------------------------------------------------------------------

    def on_packet(self, pkt: Any) -> None:
        try:
            self._handle(pkt)
        except Exception:  # one bad packet must not stop the daemon
            log.exception("first-packet path failed; packet dropped")
            self.counters.bump("error")
            pkt.drop()

    def _refuse(self, pkt: Any, why: str) -> None:
        self.counters.bump(why)
        self._drop(pkt)

    def _drop(self, pkt: Any) -> None:
        if self.drops is None:
            pkt.drop()
        else:
            self.drops.note(pkt.id)

    def _handle(self, pkt: Any) -> None:
        self.counters.packets += 1
        l3 = pkt.get_payload()
        queued = read_packet(l3)
        existing = self.maps.get_flow(queued.flow) if queued is not None else None
        closing = existing is not None and bool(existing.tcp_seen & (TcpSeen.FIN | TcpSeen.RST))
        now_ns = time.monotonic_ns()  # bpf_ktime_get_ns()'s clock: flow stamps and templates
        existing_id = existing.real_id if existing else None
        decision = decide(queued, self.balancer, existing_id, self.flows.full, now_ns, closing)
        placement = decision.placement
        if placement is None:
            return self._refuse(pkt, decision.note)
        assert queued is not None
        real = self._real_entry(placement)
        if decision.new_flow:
            if existing is not None:
                self.flows.remove(queued.flow, existing.real_id)  # the closed connection it replaces
                gone = phase_of(queued.flow.proto, int(existing.tcp_seen)).active  # it leaves real_conns
                self.maps.add_conns(existing.real_id, -int(gone), int(gone) - 1)
            self._install(queued.flow, placement, real, now_ns)
        self.counters.bump(decision.note)
        self._forward(pkt, l3, placement, real)

    def _real_entry(self, placement: Placement) -> RealEntry:
        """The reals-map value of the placement's real (what flow_tables() would hold), cached per
        real id for as long as the daemon keeps the same RealServer (an edit replaces it)."""
        cached = self._real_entries.get(placement.real_id)
        if cached is None or cached[0] is not placement.real:
            real = placement.real
            cached = self._real_entries[placement.real_id] = (real, RealEntry(real.address, real.port, real.forwarding))
        return cached[1]

    def _install(self, flow: FlowKey, placement: Placement, real: RealEntry, now_ns: int) -> None:
        # The entries flow_tables() describes, stamped with the clock bpf_ktime_get_ns() reads.
        self.maps.install_new_flow(flow, placement.real_id, placement.service_id, real, now_ns)
        self.maps.add_conns(placement.real_id, 0, 1)  # as XDP counts the flows it creates (real_conns)
        self.flows.count += 1
        self.conns[placement.real_id] = self.conns.get(placement.real_id, 0) + 1
        self.dirty = True
        found = self.balancer.real_by_id(placement.real_id)
        if found is not None:
            # Count it now (as a connection not yet established), so lc/wlc/sed/nq see it before
            # the next sweep recounts from the flow table.
            found[1].dest.inactive += 1

    # -- forwarding ------------------------------------------------------------------------------

    def _forward(self, pkt: Any, l3: bytes, placement: Placement, real: RealEntry) -> None:
        ingress = pkt.indev
        facts = self._link(ingress)
        hw = pkt.get_hw()
        frame = wrap_in_frame(l3, facts.mac if facts else bytes(6), bytes(hw[:6]) if hw else bytes(6))
        # What process() makes of the frame with flow_tables() of this placement, without the Tables.
        result = forward_placed(frame, real, placement.service_id, placement.real_id, self.tx_ifindexes,
                                self.tunnel_source, self._fib, ingress)
        where = fate(result, placement.real.forwarding)
        if where is Fate.SENT:
            assert result.egress_ifindex is not None
            self.sender.send(result.frame_out, result.egress_ifindex)
            self._drop(pkt)
        elif where is Fate.KERNEL:
            pkt.set_payload(result.frame_out[14:])
            pkt.accept()
        elif where is Fate.KERNEL_AS_IS:
            pkt.accept()
        else:
            self._drop(pkt)
        if result.reason is Reason.PASS_NO_NEIGH:
            self.resolver.resolve(placement.real.address)  # so that the next packets find it
        if where in (Fate.SENT, Fate.KERNEL):
            self._count(placement.real_id, len(l3))
        self.counters.bump(where.value if where is not Fate.DROPPED else f"dropped_{result.reason.name.lower()}")

    def _count(self, real_id: int, ip_bytes: int) -> None:
        counted = self.first_traffic.setdefault(real_id, [0, 0])
        counted[0] += 1
        counted[1] += ip_bytes

    def _link(self, ifindex: int) -> LinkFacts | None:
        """Interface facts by index, cached: netlink round trips have no place on the packet path."""
        facts = self._links.get(ifindex)
        if facts is None:
            try:
                facts = link_facts(socket.if_indextoname(ifindex))
            except OSError:
                return None
            if facts is not None:
                self._links[ifindex] = facts
        return facts

    def _fib(self, dst: IPv4Address, ingress_ifindex: int) -> FibResult:
        """bpf_fib_lookup's answer for the first packet, from rtnetlink. A resolved next hop is
        cached for FIB_CACHE_SECONDS (XDP asks the kernel on its own for every later packet)."""
        now = time.monotonic()
        cached = self._fib_cache.get(dst)
        if cached is not None and cached[1] > now:
            return cached[0]
        hop = self.resolver.lookup(dst)
        if hop is None:
            return FibResult(FibStatus.NOT_FWDED)
        if hop.dmac is None:
            return FibResult(FibStatus.NO_NEIGH, hop.ifindex)
        facts = self._link(hop.ifindex)
        result = FibResult(FibStatus.SUCCESS, hop.ifindex, hop.smac, hop.dmac, facts.mtu if facts else 1500)
        self._fib_cache[dst] = (result, now + FIB_CACHE_SECONDS)
        return result

    # -- accounting ------------------------------------------------------------------------------

    def forget_real(self, real_id: int) -> None:
        self.conns.pop(real_id, None)
        self.first_traffic.pop(real_id, None)

    def zero(self, real_ids: list[int]) -> None:
        for rid in real_ids:
            self.conns[rid] = 0
            self.first_traffic.pop(rid, None)

"""Which real each flow reached, read from a capture pair: the recording's scheduling decisions.

A packet for a service in in.pcap and its twin in out.pcap (same `frames.identity`) say where the
balancer sent the flow: masquerading shows the real as the new destination address and port, IPIP as
the outer destination, direct routing only as the destination MAC (the IP header is untouched), which
the balancer's neighbour table names.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from ipaddress import IPv4Address

from lb.config.table import ServiceTable
from lb.model import FlowKey, Protocol, RealKey, ServiceKey
from lb.packet import IpProto
from lb.replay.frames import identity, innermost, ipv4, ports
from lb.replay.scenario import Topology, mac_bytes


def flow_of(frame: bytes) -> FlowKey | None:
    """The 5-tuple of the innermost TCP/UDP packet of a frame."""
    ip = innermost(frame)
    if ip is None or ip.proto not in (Protocol.TCP, Protocol.UDP):
        return None
    found = ports(frame, ip)
    if found is None:
        return None
    return FlowKey(Protocol(ip.proto), ip.saddr, found[0], ip.daddr, found[1])


def real_of(frame: bytes, service: ServiceKey, topology: Topology) -> RealKey | None:
    """The real an emitted frame of `service` is addressed to."""
    outer = ipv4(frame)
    flow = flow_of(frame)
    if outer is None or flow is None:
        return None
    if outer.proto == IpProto.IPIP:
        return RealKey(outer.daddr, service.port)
    if flow.daddr != service.vip or flow.dport != service.port:
        return RealKey(flow.daddr, flow.dport)
    by_mac = {mac_bytes(n.mac): n.address for n in topology.neighbours}
    address = by_mac.get(frame[0:6])
    return RealKey(IPv4Address(address), service.port) if address else None


def derive(
    frames_in: Sequence[bytes], frames_out: Sequence[bytes], table: ServiceTable, topology: Topology
) -> tuple[dict[FlowKey, RealKey], list[str]]:
    """(flow → real, problems). A flow seen at two reals is a problem, reported, first one kept."""
    services = {vs.service.key for vs in table}
    out_by_id: dict[tuple[object, ...], list[bytes]] = defaultdict(list)
    for frame in frames_out:
        out_by_id[identity(frame)].append(frame)
    decisions: dict[FlowKey, RealKey] = {}
    problems: list[str] = []
    for frame in frames_in:
        flow = flow_of(frame)
        if flow is None or flow.service_key not in services:
            continue
        for emitted in out_by_id.get(identity(frame), []):
            real = real_of(emitted, flow.service_key, topology)
            if real is None:
                continue
            known = decisions.setdefault(flow, real)
            if known != real:
                problems.append(f"flow {flow} reached {known} and {real}")
            break
    return decisions, problems

"""The first-packet policy table of docs/daemon.md, row by row."""

from ipaddress import IPv4Address as A

import pytest
from scapy.layers.inet import IP, TCP, UDP

from lb.balancer.decide import Fate, decide, fate
from lb.balancer.engine import Balancer
from lb.balancer.firstpacket import read_packet
from lb.model import Forwarding, Protocol, RealServer, Service, ServiceKey, VirtualService
from lb.rewrite import Reason, Result, Verdict

VIP = "10.0.0.100"


def balancer(scheduler="rr", weight=1):
    b = Balancer()
    key = ServiceKey(Protocol.TCP, A(VIP), 80)
    real = RealServer(A("10.0.2.11"), 8080, Forwarding.MASQ, weight=weight)
    b.sync([VirtualService(Service(key, scheduler=scheduler), {real.key: real})])
    return b


def queued(flags="S", dport=80, udp=False):
    l4 = UDP(sport=5000, dport=dport) if udp else TCP(sport=5000, dport=dport, flags=flags)
    return read_packet(bytes(IP(src="10.1.0.2", dst=VIP) / l4))


NOT_FULL = lambda: False  # noqa: E731
FULL = lambda: True  # noqa: E731


def test_a_syn_reusing_a_closed_flows_port_is_scheduled_afresh():
    b = balancer()
    d = decide(queued("S"), b, 1, NOT_FULL, now_ns=0, existing_closing=True)
    assert (d.note, d.new_flow) == ("rescheduled_reused_port", True)
    # the same SYN on a live (not closing) flow stays on its real: a retransmission
    assert decide(queued("S"), b, 1, NOT_FULL, now_ns=0).note == "existing_flow"
    # a non-SYN packet of a closing flow still belongs to it
    assert decide(queued("A"), b, 1, NOT_FULL, now_ns=0, existing_closing=True).note == "existing_flow"


@pytest.mark.parametrize(
    "description, packet, sched, weight, existing, full, note, new_flow",
    [
        ("SYN schedules a new flow", queued("S"), "rr", 1, None, NOT_FULL, "scheduled", True),
        ("a known flow is reused", queued("A"), "rr", 1, 1, NOT_FULL, "existing_flow", False),
        ("mid-flow miss is dropped (no sloppy TCP)", queued("A"), "rr", 1, None, NOT_FULL, "no_flow_not_syn", False),
        ("mid-flow miss re-derived by a hash scheduler", queued("A"), "sh", 1, None, NOT_FULL, "scheduled", True),
        ("a full table refuses new flows", queued("S"), "rr", 1, None, FULL, "refused_table_full", False),
        ("a full table still serves known flows", queued("A"), "rr", 1, 1, FULL, "existing_flow", False),
        ("all reals quiescent", queued("S"), "rr", 0, None, NOT_FULL, "no_destination", False),
        ("no service on that port", queued("S", dport=81), "rr", 1, None, NOT_FULL, "no_service", False),
        ("not schedulable at all", None, "rr", 1, None, NOT_FULL, "unschedulable", False),
    ],
)
def test_policy(description, packet, sched, weight, existing, full, note, new_flow):
    d = decide(packet, balancer(sched, weight), existing, full, now_ns=0)
    assert (d.note, d.new_flow, d.placement is not None) == (note, new_flow, note in ("scheduled", "existing_flow"))


@pytest.mark.parametrize(
    "verdict, reason, forwarding, expected",
    [
        (Verdict.REDIRECT, Reason.REDIRECT_FORWARD, Forwarding.MASQ, Fate.SENT),
        (Verdict.TX, Reason.TX_FORWARD, Forwarding.ROUTE, Fate.SENT),
        (Verdict.PASS, Reason.PASS_NO_NEIGH, Forwarding.MASQ, Fate.KERNEL),
        (Verdict.PASS, Reason.PASS_NO_NEIGH, Forwarding.TUNNEL, Fate.KERNEL),
        (Verdict.PASS, Reason.PASS_NO_NEIGH, Forwarding.ROUTE, Fate.WAIT_NEIGHBOUR),
        (Verdict.PASS, Reason.PASS_TTL_EXCEEDED, Forwarding.MASQ, Fate.KERNEL_AS_IS),
        (Verdict.PASS, Reason.PASS_NO_ROUTE, Forwarding.MASQ, Fate.DROPPED),
    ],
)
def test_fate_of_the_first_packet(verdict, reason, forwarding, expected):
    assert fate(Result(verdict, b"", reason), forwarding) is expected


BUILTINS = ["dh", "fo", "lc", "mh", "nq", "ovf", "rr", "sed", "sh", "wlc", "wrr"]
TCP_FLAGS = ["S", "A", "PA", "SA", "R", "RA", "SR", "F", "FA", "SF", ""]


def test_only_the_hash_schedulers_re_derive_a_mid_connection_packets_real():
    rederive = {name for name in BUILTINS if balancer(name).services[ServiceKey(Protocol.TCP, A(VIP), 80)]
                .scheduler.rederives_midflow}
    assert rederive == {"sh", "dh", "mh"}


@pytest.mark.parametrize("sched", BUILTINS)
def test_xdp_drops_exactly_the_segments_the_daemon_would(sched):
    """The bit the daemon writes (service_flags), read by the model (= XDP), against decide(): for every
    scheduler and TCP flag combination, XDP drops a packet of no flow iff the daemon would drop it as
    no_flow_not_syn; everything else XDP passes up as a flow miss."""
    from scapy.layers.l2 import Ether

    from lb.rewrite import StaticFib, process
    from lb.tables import ServiceEntry, Tables, service_flags

    b = balancer(sched)
    key = ServiceKey(Protocol.TCP, A(VIP), 80)
    tables = Tables(services={key: ServiceEntry(1, service_flags(b.services[key].scheduler))})
    for flags in TCP_FLAGS:
        packet = queued(flags)
        daemon = decide(packet, b, None, NOT_FULL, now_ns=0).note
        frame = bytes(Ether() / IP(src="10.1.0.2", dst=VIP) / TCP(sport=5000, dport=80, flags=flags))
        xdp = process(frame, tables.copy(), StaticFib(routes=()), 1)
        assert (xdp.reason is Reason.DROP_NO_FLOW_NOT_SYN) == (daemon == "no_flow_not_syn"), (sched, flags, daemon)
        assert xdp.reason in (Reason.DROP_NO_FLOW_NOT_SYN, Reason.PASS_FLOW_MISS), (sched, flags)
    udp = process(bytes(Ether() / IP(src="10.1.0.2", dst=VIP) / UDP(sport=5000, dport=80)),
                  Tables(services={ServiceKey(Protocol.UDP, A(VIP), 80): ServiceEntry(1, tables.services[key].flags)}),
                  StaticFib(routes=()), 1)
    assert udp.reason is Reason.PASS_FLOW_MISS  # the bit is about TCP segments; any datagram opens a flow

"""lb.tables: installing and removing flows keeps forward and reverse entries in step."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from lb.model import FlowKey, Forwarding, Protocol, ServiceKey
from lb.tables import FlowEntry, RealEntry, ReverseEntry, ServiceEntry, Tables, Traffic, reverse_key

VIP = IPv4Address("10.0.0.100")
FLOW = FlowKey(Protocol.TCP, IPv4Address("10.3.0.5"), 40000, VIP, 80)


def _tables(forwarding: Forwarding) -> Tables:
    return Tables(
        services={ServiceKey(Protocol.TCP, VIP, 80): ServiceEntry(7)},
        reals={3: RealEntry(IPv4Address("10.1.0.20"), 8080 if forwarding is Forwarding.MASQ else 80, forwarding)},
    )


def test_masquerading_installs_forward_and_reverse() -> None:
    tables = _tables(Forwarding.MASQ)
    tables.install_flow(FLOW, 3)
    assert tables.flows == {FLOW: FlowEntry(3, 7)}
    rkey = FlowKey(Protocol.TCP, IPv4Address("10.1.0.20"), 8080, IPv4Address("10.3.0.5"), 40000)
    assert tables.reverse == {rkey: ReverseEntry(VIP, 80, 3, 7)}
    assert reverse_key(FLOW, tables.reals[3]) == rkey
    tables.remove_flow(FLOW)
    assert tables.flows == {} and tables.reverse == {}


@pytest.mark.parametrize("forwarding", [Forwarding.ROUTE, Forwarding.TUNNEL])
def test_other_methods_have_no_reverse_entry(forwarding: Forwarding) -> None:
    tables = _tables(forwarding)
    tables.install_flow(FLOW, 3)
    assert tables.flows == {FLOW: FlowEntry(3, 7)} and tables.reverse == {}


def test_missing_service_or_real_is_a_clear_error() -> None:
    tables = _tables(Forwarding.MASQ)
    with pytest.raises(LookupError, match="no real with id 4"):
        tables.install_flow(FLOW, 4)
    other = FlowKey(Protocol.UDP, FLOW.saddr, FLOW.sport, VIP, 53)
    with pytest.raises(LookupError, match=r"no service UDP 10.0.0.100:53"):
        tables.install_flow(other, 3)


def test_removing_an_unknown_flow_is_fine() -> None:
    _tables(Forwarding.MASQ).remove_flow(FLOW)


def test_traffic_adds_up() -> None:
    assert Traffic(1, 2, 3, 4) + Traffic(10, 20, 30, 40) == Traffic(11, 22, 33, 44)

from ipaddress import IPv4Address as A

import pytest

from lb.balancer.engine import Balancer
from lb.balancer.persistence import PersistenceTable, Template, TemplateKey, template_key
from lb.model import FlowKey, Forwarding, Protocol, RealServer, Service, ServiceKey, VirtualService

S = 1_000_000_000
KEY = TemplateKey(1, int(A("10.9.0.1")))


def test_template_pins_a_client_until_timeout():
    table = PersistenceTable()
    table.record(KEY, 7, now_ns=0, timeout_s=300)
    assert table.lookup(KEY, 300 * S) == 7  # alive up to and including its expiry, as XDP tests
    assert table.lookup(KEY, 300 * S + 1) is None
    assert table.lookup(TemplateKey(1, int(A("10.9.0.2"))), 1) is None
    assert table.lookup(TemplateKey(2, KEY.client_net), 1) is None  # per service


def test_netmask_groups_clients():
    mask = A("255.255.255.0")
    assert template_key(3, mask, A("10.9.0.1")) == template_key(3, mask, A("10.9.0.200"))
    assert template_key(3, mask, A("10.9.0.1")) != template_key(3, mask, A("10.9.1.1"))
    assert template_key(3, A("255.255.255.255"), A("10.9.0.1")) == TemplateKey(3, int(A("10.9.0.1")))


def test_open_flows_keep_template_alive_and_sweep_removes_dead():
    table = PersistenceTable()
    table.record(KEY, 7, now_ns=0, timeout_s=300)
    table.touch(KEY, 7, until_ns=550 * S)
    table.touch(KEY, 7, until_ns=400 * S)  # never shortens
    assert table.lookup(KEY, 500 * S) == 7
    assert table.sweep(550 * S) == 0
    assert table.sweep(550 * S + 1) == 1
    assert len(table) == 0


def test_touch_by_another_reals_flow_does_not_extend():
    """The template was rewritten to real 8; an old flow on 7 must not keep it (nor bring 7 back)."""
    table = PersistenceTable()
    table.record(KEY, 8, now_ns=0, timeout_s=10)
    table.touch(KEY, 7, until_ns=100 * S)
    assert table.get(KEY) == Template(10 * S, 8)


def test_touch_all_extends_only_templates_on_the_flows_real():
    table = PersistenceTable()
    other = TemplateKey(1, int(A("10.9.0.2")))
    table.record(KEY, 7, now_ns=0, timeout_s=10)
    table.record(other, 8, now_ns=0, timeout_s=10)
    table.touch_all({(KEY, 7): 50 * S, (other, 7): 50 * S, (TemplateKey(9, 1), 7): 50 * S})
    assert table.get(KEY) == Template(50 * S, 7)
    assert table.get(other) == Template(10 * S, 8)
    assert len(table) == 2  # touching creates nothing


def test_forgetting_a_real_or_service_drops_its_templates_only():
    table = PersistenceTable()
    other = TemplateKey(1, int(A("10.9.0.2")))
    elsewhere = TemplateKey(2, int(A("10.9.0.2")))
    table.record(KEY, 7, 0, 60)
    table.record(other, 8, 0, 60)
    table.record(elsewhere, 9, 0, 60)
    table.forget_real(7)
    assert (table.lookup(KEY, 1), table.lookup(other, 1)) == (None, 8)
    table.forget_service(1)
    assert (table.lookup(other, 1), table.lookup(elsewhere, 1)) == (None, 9)


# -- the Balancer's use of its store ----------------------------------------------------------------

VIP = ServiceKey(Protocol.TCP, A("10.0.0.100"), 80)


def vs(weights=(1, 1, 1), netmask="255.255.255.255", port=80):
    reals = {}
    for i, w in enumerate(weights, start=1):
        real = RealServer(A(f"10.0.2.{i}"), 8080, Forwarding.MASQ, weight=w)
        reals[real.key] = real
    key = ServiceKey(Protocol.TCP, A("10.0.0.100"), port)
    return VirtualService(Service(key, scheduler="rr", persistence=60, netmask=A(netmask)), reals)


def flow(n, client="10.0.1.7", dport=80):
    return FlowKey(Protocol.TCP, A(client), 10000 + n, A("10.0.0.100"), dport)


def balancer(**kw):
    b = Balancer()
    b.sync([vs(**kw)])
    return b


def test_unavailable_real_is_not_used_and_template_rewritten():
    b = balancer()
    first = b.place(flow(1), 0)
    b.services[VIP].reals[first.real.key].dest.weight = 0  # quiescent: not available
    second = b.place(flow(2), S)
    assert second.real_id != first.real_id
    assert b.client_template(VIP, A("10.0.1.7"), S) == second.real.key


def test_health_down_forgets_templates_and_removal_too():
    b = balancer()
    first = b.place(flow(1), 0)
    b.set_health(VIP, first.real.key, healthy=False)
    assert b.client_template(VIP, A("10.0.1.7"), 0) is None
    second = b.place(flow(2), 0)
    b.sync([vs(weights=(1, 1, 1))])  # unchanged: kept
    assert b.client_template(VIP, A("10.0.1.7"), 0) == second.real.key
    trimmed = vs()
    del trimmed.reals[second.real.key]
    b.sync([trimmed])
    assert b.client_template(VIP, A("10.0.1.7"), 0) is None


def test_note_open_flows_extends_from_now():
    b = balancer()
    first = b.place(flow(1), 0)
    b.note_open_flows([(flow(1), first.real_id)], now_ns=50 * S)
    assert b.client_template(VIP, A("10.0.1.7"), 110 * S) == first.real.key
    assert b.client_template(VIP, A("10.0.1.7"), 110 * S + 1) is None


@pytest.mark.parametrize("port", [80, 0])
def test_netmask_and_port_zero(port):
    b = balancer(netmask="255.255.255.0", port=port)
    first = b.place(flow(1, "10.0.1.7"), 0)
    assert b.place(flow(2, "10.0.1.200", dport=port or 443), S).real_id == first.real_id
    assert b.place(flow(3, "10.0.2.7", dport=port or 22), S).real_id != first.real_id

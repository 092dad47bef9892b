from ipaddress import IPv4Address as A

from lb.balancer.persistence import PersistenceTable
from lb.model import Protocol, RealKey, Service, ServiceKey

SVC = Service(ServiceKey(Protocol.TCP, A("10.0.0.100"), 80), scheduler="rr", persistence=300)
R1 = RealKey(A("10.0.1.1"), 80)
R2 = RealKey(A("10.0.1.2"), 80)


def test_template_pins_a_client_until_timeout():
    table = PersistenceTable()
    table.record(SVC, A("10.9.0.1"), R1, now=0)
    assert table.lookup(SVC, A("10.9.0.1"), now=299) == R1
    assert table.lookup(SVC, A("10.9.0.1"), now=301) is None
    assert table.lookup(SVC, A("10.9.0.2"), now=1) is None


def test_netmask_groups_clients():
    svc = SVC.edited(netmask=A("255.255.255.0"))
    table = PersistenceTable()
    table.record(svc, A("10.9.0.1"), R2, now=0)
    assert table.lookup(svc, A("10.9.0.200"), now=10) == R2
    assert table.lookup(svc, A("10.9.1.1"), now=10) is None


def test_open_flows_keep_template_alive_and_sweep_removes_dead():
    table = PersistenceTable()
    table.record(SVC, A("10.9.0.1"), R1, now=0)
    table.touch(SVC, A("10.9.0.1"), now=250)
    assert table.lookup(SVC, A("10.9.0.1"), now=500) == R1
    assert table.sweep(now=551) == 1
    assert len(table) == 0


def test_forgetting_a_real_drops_its_templates_only():
    table = PersistenceTable()
    table.record(SVC, A("10.9.0.1"), R1, now=0)
    table.record(SVC, A("10.9.0.2"), R2, now=0)
    table.forget_real(SVC.key, R1)
    assert table.lookup(SVC, A("10.9.0.1"), now=1) is None
    assert table.lookup(SVC, A("10.9.0.2"), now=1) == R2

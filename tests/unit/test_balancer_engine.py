from ipaddress import IPv4Address as A

import pytest

from lb.balancer.engine import Balancer, NoDestination
from lb.model import FlowKey, Forwarding, Protocol, RealServer, Service, ServiceKey, VirtualService

S = 1_000_000_000
KEY = ServiceKey(Protocol.TCP, A("10.0.0.100"), 80)


def vs(scheduler="rr", weights=(1, 1, 1), persistence=None):
    reals = {}
    for i, w in enumerate(weights, start=1):
        real = RealServer(A(f"10.0.2.{i}"), 8080, Forwarding.MASQ, weight=w)
        reals[real.key] = real
    return VirtualService(Service(KEY, scheduler=scheduler, persistence=persistence), reals)


def flow(n, client="10.0.1.2"):
    return FlowKey(Protocol.TCP, A(client), 10000 + n, A("10.0.0.100"), 80)


def test_rr_places_new_flows_in_turn():
    b = Balancer()
    b.sync([vs()])
    chosen = [str(b.place(flow(i), now_ns=0).real.address) for i in range(6)]
    assert chosen == ["10.0.2.1", "10.0.2.2", "10.0.2.3"] * 2


def test_ids_and_counters_survive_an_edit():
    b = Balancer()
    b.sync([vs(weights=(1, 1, 1))])
    before = {r.real.key: r.real_id for r in b.services[KEY].reals.values()}
    b.set_counts({before[next(iter(before))]: (5, 2)})
    gone = b.sync([vs(scheduler="wlc", weights=(2, 1))])
    after = {r.real.key: r.real_id for r in b.services[KEY].reals.values()}
    assert all(after[k] == before[k] for k in after)
    assert gone == [before[max(before)]]
    first = next(iter(b.services[KEY].reals.values())).dest
    assert (first.active, first.inactive, first.weight) == (5, 2, 2)


def test_no_destination_when_all_quiescent():
    b = Balancer()
    b.sync([vs(weights=(0, 0))])
    with pytest.raises(NoDestination, match="no destination available"):
        b.place(flow(1), now_ns=0)


def test_unhealthy_real_is_skipped():
    b = Balancer()
    b.sync([vs(weights=(1, 1))])
    real1 = next(iter(b.services[KEY].reals))
    assert b.set_health(KEY, real1, healthy=False)
    assert {str(b.place(flow(i), 0).real.address) for i in range(4)} == {"10.0.2.2"}


def test_persistence_keeps_a_client_on_its_real_until_timeout():
    b = Balancer()
    b.sync([vs(persistence=60)])
    first = b.place(flow(1, "10.0.1.7"), now_ns=0).real
    assert all(b.place(flow(i, "10.0.1.7"), now_ns=10 * S).real == first for i in range(2, 6))
    other = b.place(flow(9, "10.0.1.8"), now_ns=10 * S).real
    assert other != first  # rr moved on for a different client
    assert b.client_template(KEY, A("10.0.1.7"), now_ns=70 * S) == first.key  # the last use restarted it
    assert b.client_template(KEY, A("10.0.1.7"), now_ns=70 * S + 1) is None  # 60 s after its last connection


def test_thresholds_mark_overload_with_hysteresis():
    b = Balancer()
    svc = vs(weights=(1,))
    rkey, real = next(iter(svc.reals.items()))
    svc.reals[rkey] = real.edited(upper_threshold=4)
    b.sync([svc])
    rid = b.services[KEY].reals[rkey].real_id
    b.set_counts({rid: (4, 0)})
    with pytest.raises(NoDestination):
        b.place(flow(1), 0)
    b.set_counts({rid: (3, 0)})  # 3 = 3/4 of 4: clears
    assert b.place(flow(2), 0).real_id == rid


def test_service_removal_frees_ids_for_reuse():
    b = Balancer()
    b.sync([vs()])
    ids = sorted(r.real_id for r in b.services[KEY].reals.values())
    gone = b.sync([])
    b.sync([vs()])
    assert not set(ids) & {r.real_id for r in b.services[KEY].reals.values()}  # reserved until released
    b.sync([])
    b.release_real_ids(gone)
    b.sync([vs()])
    assert sorted(r.real_id for r in b.services[KEY].reals.values()) == ids


def test_adopted_ids_are_kept_for_a_restarted_daemon():
    first = Balancer()
    first.sync([vs()])
    ids = {k: r.real_id for k, r in first.services[KEY].reals.items()}
    # a restarted daemon learns the numbering before syncing, in a different order of creation
    second = Balancer()
    second.adopt_ids({KEY: 7}, {(KEY, k): 10 + v for k, v in ids.items()})
    second.sync([vs()])
    assert second.services[KEY].service_id == 7
    assert {k: r.real_id for k, r in second.services[KEY].reals.items()} == {k: 10 + v for k, v in ids.items()}
    other = ServiceKey(Protocol.UDP, A("10.0.0.100"), 53)
    second.sync([vs(), VirtualService(Service(other, scheduler="rr"), {})])
    assert second.services[other].service_id not in (7,)


def test_real_by_id_and_destinations_follow_every_sync():
    b = Balancer()
    b.sync([vs(weights=(1, 1, 1))])
    state = b.services[KEY]
    ids = {r.real.key: r.real_id for r in state.reals.values()}
    for key, rid in ids.items():
        found = b.real_by_id(rid)
        assert found is not None and found[0] is state and found[1].real.key == key
    assert [d.key for d in state.dests] == list(state.reals)
    gone = b.sync([vs(weights=(1, 1))])  # the third real goes
    assert b.real_by_id(gone[0]) is None
    assert [d.key for d in state.dests] == list(state.reals) and len(state.dests) == 2
    b.sync([])
    assert all(b.real_by_id(rid) is None for rid in ids.values())


def test_a_placement_names_the_service_and_real_as_they_are_now():
    """Placements are reused per real while nothing changes, and never outlive an edit: after the
    real's weight or the service's persistence changes, a new flow's placement carries the new ones."""
    b = Balancer()
    b.sync([vs(weights=(1, 1, 1))])
    first = b.place(flow(0), 0)
    b.place(flow(1), 0)
    b.place(flow(2), 0)
    again = b.place(flow(3), 0)
    assert again == first and (again.real.weight, again.service.persistence) == (1, None)
    b.sync([vs(weights=(4, 1, 1), persistence=60)])
    edited = [b.place(flow(10 + i, client=f"10.0.1.{10 + i}"), 0) for i in range(3)]
    assert first.real.key in {p.real.key for p in edited}
    assert all(p.service.persistence == 60 for p in edited)
    assert {p.real.key: p.real.weight for p in edited}[first.real.key] == 4
    assert {p.real_id for p in edited} == {r.real_id for r in b.services[KEY].reals.values()}

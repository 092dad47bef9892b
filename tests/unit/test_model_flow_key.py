"""lb.model.flow_key() makes the FlowKey the dataclass makes (equal, same hash, order, repr and
service key), and ServiceKey's cached hash agrees with equality."""

from __future__ import annotations

import pickle
from ipaddress import IPv4Address

from lb.model import FlowKey, Protocol, ServiceKey, flow_key

A, B = IPv4Address("10.0.1.2"), IPv4Address("10.0.0.100")


def test_flow_key_is_the_dataclass_key() -> None:
    made, plain = flow_key(Protocol.UDP, A, 4000, B, 53), FlowKey(Protocol.UDP, A, 4000, B, 53)
    assert type(made) is FlowKey
    assert made == plain and hash(made) == hash(plain) and repr(made) == repr(plain)
    assert made.service_key == plain.service_key == ServiceKey(Protocol.UDP, B, 53)
    assert {made: 1}[plain] == 1
    assert pickle.loads(pickle.dumps(made)) == plain
    assert sorted([flow_key(Protocol.TCP, A, 5, B, 80), flow_key(Protocol.TCP, A, 4, B, 80)]) == [
        FlowKey(Protocol.TCP, A, 4, B, 80), FlowKey(Protocol.TCP, A, 5, B, 80)]
    assert made != flow_key(Protocol.UDP, A, 4001, B, 53)


def test_service_keys_hash_as_they_compare() -> None:
    one, same, other = ServiceKey(Protocol.TCP, B, 80), ServiceKey(Protocol.TCP, IPv4Address("10.0.0.100"), 80), \
        ServiceKey(Protocol.UDP, B, 80)
    assert one == same and hash(one) == hash(same) and hash(one) == hash(same)  # twice: the cached value
    assert {one: "x"}.get(same) == "x" and {one: "x"}.get(other) is None

"""sh and dh: 256-bucket tables and the kernel's hash_32 (ip_vs_sh.c, ip_vs_dh.c)."""

from ipaddress import IPv4Address

import pytest

from lb.model import FlowKey, Protocol, RealKey
from lb.sched import get_scheduler
from lb.sched.base import Destination
from lb.sched.hashing import hash_32
from lb.sched.sh import fill_buckets

VIP = IPv4Address("10.0.0.100")


def flow(saddr: str, sport: int = 40000, daddr: IPv4Address = VIP) -> FlowKey:
    return FlowKey(Protocol.TCP, IPv4Address(saddr), sport, daddr, 80)


def make(*weights: int) -> list[Destination]:
    return [Destination(RealKey(IPv4Address(f"10.0.0.{i + 1}"), 80), weight=w) for i, w in enumerate(weights)]


def test_hash_32_is_the_kernels():
    # top 8 bits of v * 0x61C88647 mod 2**32, worked by hand
    assert hash_32(0, 8) == 0
    assert hash_32(1, 8) == 0x61
    assert hash_32(2, 8) == 0xC3  # 0xC3910C8E
    assert hash_32(3, 8) == 0x25  # 0x1_2559_92D5 -> 0x255992D5


@pytest.mark.parametrize(
    ("weights", "head"),
    [
        ([1, 1, 1], [0, 1, 2, 0, 1, 2]),
        ([3, 1, 2], [0, 0, 0, 1, 2, 2, 0, 0, 0]),
        ([0, 2], [0, 1, 1, 0, 1, 1]),  # ip_vs_sh_reassign: weight 0 still takes one bucket
        ([], [-1, -1]),
    ],
)
def test_fill_buckets(weights, head):
    table = fill_buckets(weights)
    assert len(table) == 256 and table[: len(head)] == head


def test_sh_bucket_from_source_address():
    dests = make(1, 1, 1, 1)
    sh = get_scheduler("sh")
    sh.update(dests)
    # 0.0.0.1 -> bucket hash_32(1, 8) = 97 -> real 97 % 4 = 1
    assert sh.schedule(flow("0.0.0.1"), dests) is dests[1]
    # 0.0.0.2 -> bucket 195 -> real 3
    assert sh.schedule(flow("0.0.0.2"), dests) is dests[3]


def test_sh_is_stable_per_source_and_ignores_port_without_flag():
    dests = make(1, 2, 3, 1, 1)
    sh = get_scheduler("sh")
    sh.update(dests)
    for n in range(50):
        src = f"10.9.{n}.{n * 3 % 250}"
        chosen = {sh.schedule(flow(src, sport), dests).key for sport in (1024, 2000, 40000, 65535)}
        assert len(chosen) == 1


def test_sh_port_flag_hashes_the_port_too():
    dests = make(*([1] * 8))
    sh = get_scheduler("sh", frozenset({"sh-port"}))
    sh.update(dests)
    # 0.0.0.0 with source port 1 hashes like address 1: bucket 97 -> real 97 % 8 = 1
    assert sh.schedule(flow("0.0.0.0", 1), dests) is dests[1]
    spread = {sh.schedule(flow("10.1.1.1", p), dests).key for p in range(1000, 1100)}
    assert len(spread) > 1


def test_sh_unavailable_gives_none_without_fallback_and_the_kernels_walk_with_it():
    dests = make(1, 1, 1, 1)
    plain, fb = get_scheduler("sh"), get_scheduler("sh", frozenset({"sh-fallback"}))
    plain.update(dests)
    fb.update(dests)
    f = flow("0.0.0.1")  # bucket 97 -> B
    dests[1].weight = 0  # quiescent (no update: the table is unchanged, the real just refuses)
    assert plain.schedule(f, dests) is None
    # ip_vs_sh_get_fallback tries bucket (97 + 97 + i) % 256: 194 -> real 2 (C)
    assert fb.schedule(f, dests) is dests[2]
    dests[2].healthy = False
    assert fb.schedule(f, dests) is dests[3]  # bucket 195 -> D
    for d in dests:
        d.overloaded = True
    assert fb.schedule(f, dests) is None


def test_dh_hashes_the_destination_address():
    dests = make(5, 1, 1)  # dh ignores weights: one bucket each in turn
    dh = get_scheduler("dh")
    dh.update(dests)
    f = flow("10.1.0.1", daddr=IPv4Address("0.0.0.2"))  # bucket 195 -> real 195 % 3 = 0
    assert dh.schedule(f, dests) is dests[0]
    assert dh.schedule(flow("10.200.3.4", daddr=IPv4Address("0.0.0.2")), dests) is dests[0]
    assert dh.schedule(flow("10.1.0.1", daddr=IPv4Address("0.0.0.1")), dests) is dests[97 % 3]
    dests[0].overloaded = True
    assert dh.schedule(f, dests) is None


def test_bad_flags():
    with pytest.raises(ValueError, match="does not take flag"):
        get_scheduler("dh", frozenset({"sh-port"}))
    with pytest.raises(ValueError, match="mh-port"):
        get_scheduler("sh", frozenset({"mh-port"}))

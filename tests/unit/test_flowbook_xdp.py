"""FlowBook.full() counts the flows XDP created since the book's last count: a SYN flood against a
service XDP decides must not let the daemon install past the limit (the LRU would then evict
established flows: tests/e2e/test_liveness_flood.py caught it)."""

from __future__ import annotations

from ipaddress import IPv4Address

from lb.daemon.flows import FlowBook
from lb.model import FlowKey, Protocol
from lb.tables import FlowEntry, TcpSeen


class FakeXdp:
    def __init__(self) -> None:
        self.created = 0
        self.asked = 0
        self.recounted = 0

    def created_since_count(self) -> int:
        self.asked += 1
        return self.created

    def note_sweep(self) -> None:
        self.recounted += 1
        self.created = 0


class FakeMaps:
    def __init__(self, flows: int) -> None:
        self.flows = flows

    def read_flows(self) -> tuple[dict[object, object], dict[object, object]]:
        # established UDP flows: none half-open, nothing to prune
        flows = {FlowKey(Protocol.UDP, IPv4Address("10.3.0.1"), 1024 + i, IPv4Address("10.0.0.1"), 53):
                 FlowEntry(1, 1, 0, TcpSeen.ESTABLISHED) for i in range(self.flows)}
        return flows, {}


def _book(count: int, room: int, xdp: FakeXdp, in_table: int) -> FlowBook:
    book = FlowBook(FakeMaps(in_table), 4096, lambda _rid: None)  # type: ignore[arg-type]
    book.count, book.xdp, book.xdp_room = count, xdp, room
    return book


def test_far_from_the_limit_nothing_is_asked() -> None:
    xdp = FakeXdp()
    book = _book(10, 100, xdp, 10)
    assert not book.full() and xdp.asked == 0


def test_near_the_limit_xdps_flows_count() -> None:
    xdp = FakeXdp()
    book = _book(0, 0, xdp, 0)
    book.count, book.xdp_room = book.limit - 50, 100  # XDP may still create 100
    xdp.created = 10
    assert not book.full()  # limit - 40: room left
    xdp.created = 60  # XDP took more than the daemon's count leaves: the table is at its limit
    book.maps.flows = book.limit + 10  # type: ignore[attr-defined]
    assert book.full()
    assert xdp.recounted == 1 and book.count == book.limit + 10  # the prune recounted, XDP's included

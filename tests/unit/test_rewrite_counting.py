"""The model of XDP's connection counting (lb.rewrite.counting) says of every set of TCP bits what the
daemon's sweep says (lb.balancer.lifetime), so XDP's counts and the sweep's agree between sweeps."""

from __future__ import annotations

import pytest

from lb.balancer.lifetime import phase_of
from lb.model import Protocol
from lb.rewrite.counting import count_gone, count_transition, flow_active
from lb.tables import Tables, TcpSeen


@pytest.mark.parametrize("bits", range(8))
def test_active_is_the_sweeps_active(bits: int) -> None:
    assert flow_active(TcpSeen(bits)) == phase_of(Protocol.TCP, bits).active


@pytest.mark.parametrize("before", range(8))
@pytest.mark.parametrize("added", range(8))
def test_a_transition_moves_one_connection_when_the_phase_changes(before: int, added: int) -> None:
    tables = Tables(conns={7: (5, 5)})
    count_transition(tables, 7, TcpSeen(before), TcpSeen(before | added))
    step = int(phase_of(Protocol.TCP, before | added).active) - int(phase_of(Protocol.TCP, before).active)
    assert tables.conns == {7: (5 + step, 5 - step)}


def test_a_forgotten_flow_leaves_the_counter_it_was_in() -> None:
    tables = Tables()
    count_gone(tables, 3, TcpSeen.ESTABLISHED)
    count_gone(tables, 4, TcpSeen.ESTABLISHED | TcpSeen.FIN)
    assert tables.conns == {3: (-1, 0), 4: (0, -1)}  # below 0 in the model as in the map, until a sweep

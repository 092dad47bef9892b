import pytest

from lb.balancer.lifetime import (
    FLOW_F_ESTABLISHED,
    FLOW_F_FIN,
    FLOW_F_RST,
    Phase,
    Timeouts,
    is_expired,
    phase_of,
)
from lb.model import Protocol

T = Protocol.TCP


@pytest.mark.parametrize(
    "proto, flags, phase",
    [
        (T, 0, Phase.SYN),
        (T, FLOW_F_ESTABLISHED, Phase.ESTABLISHED),
        (T, FLOW_F_ESTABLISHED | FLOW_F_FIN, Phase.CLOSING),
        (T, FLOW_F_ESTABLISHED | FLOW_F_FIN | FLOW_F_RST, Phase.CLOSED),
        (T, FLOW_F_RST, Phase.CLOSED),
        (Protocol.UDP, FLOW_F_FIN, Phase.UDP),
    ],
)
def test_phase_from_flags(proto, flags, phase):
    assert phase_of(proto, flags) is phase


@pytest.mark.parametrize(
    "proto, flags, idle, expired",
    [
        (T, FLOW_F_ESTABLISHED, 899, False),
        (T, FLOW_F_ESTABLISHED, 901, True),
        (T, 0, 61, True),  # half-open flows go fast, as IPVS's SYN_RECV
        (T, FLOW_F_ESTABLISHED | FLOW_F_FIN, 119, False),
        (T, FLOW_F_ESTABLISHED | FLOW_F_FIN, 121, True),
        (T, FLOW_F_RST, 11, True),
        (Protocol.UDP, 0, 299, False),
        (Protocol.UDP, 0, 301, True),
    ],
)
def test_expiry_uses_ipvs_default_timeouts(proto, flags, idle, expired):
    assert is_expired(proto, flags, idle, Timeouts()) is expired


def test_set_zero_keeps_a_timeout_as_ipvsadm_does():
    t = Timeouts().with_set(tcp=30, tcpfin=0, udp=5)
    assert (t.tcp, t.tcpfin, t.udp) == (30, 120, 5)


def test_only_established_counts_as_active():
    assert [p for p in Phase if p.active] == [Phase.ESTABLISHED]

"""The model of XDP's connection counting (count_transition() and count_gone() in bpf/lb_kern.c).

XDP keeps each real's (active, inactive) connections in `real_conns` (`Tables.conns`) between two of
the daemon's sweeps, which rewrite them from the whole flow table: a flow XDP creates counts inactive
(lb.rewrite.schedule.schedule_new), a client segment that changes the flow's TCP bits moves it between
the two (a flow is active from the handshake's ACK until a FIN or RST, as lb.balancer.lifetime says of
the same bits), and a closed flow a reused 5-tuple replaces leaves its real's counts.
"""

from __future__ import annotations

from lb.tables import Tables, TcpSeen

_CLOSED = TcpSeen.FIN | TcpSeen.RST


def flow_active(seen: TcpSeen) -> bool:
    """flow_active() in bpf/lb_flow.h: ESTABLISHED seen, and neither FIN nor RST."""
    return bool(seen & TcpSeen.ESTABLISHED) and not seen & _CLOSED


def count_transition(tables: Tables, real_id: int, before: TcpSeen, after: TcpSeen) -> None:
    """A client segment changed a flow's bits: move it between active and inactive if that changed."""
    was, now = flow_active(before), flow_active(after)
    if was == now:
        return
    active, inactive = tables.conns.get(real_id, (0, 0))
    step = 1 if now else -1
    tables.conns[real_id] = (active + step, inactive - step)


def count_gone(tables: Tables, real_id: int, seen: TcpSeen) -> None:
    """A flow XDP forgot (its 5-tuple reused by a new connection) leaves its real's counts."""
    active, inactive = tables.conns.get(real_id, (0, 0))
    tables.conns[real_id] = (active - 1, inactive) if flow_active(seen) else (active, inactive - 1)

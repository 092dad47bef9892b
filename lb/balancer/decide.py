"""The first-packet path's judgement, as pure functions: what to do with a packet XDP passed up.

`decide` chooses (reuse a flow, schedule a new one, or refuse by the stated policy) and `fate` reads
the rewrite model's result as where the packet goes (transmitted by the daemon, handed back to the
kernel, dropped). The daemon (lb.daemon.firstpath) and the replay of recordings (lb.replay) both run
these, so a replay judges packets exactly as the daemon did. docs/daemon.md has the policy table.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address

from lb.balancer.engine import Balancer, NoDestination, Placement
from lb.balancer.firstpacket import QueuedPacket
from lb.model import FlowKey, Forwarding
from lb.rewrite import Reason, Result, Verdict
from lb.tables import RealEntry, ServiceEntry, Tables


@dataclass(frozen=True)
class Decision:
    """`note` is the counter the outcome is counted under; `placement` is None when refused."""

    note: str
    placement: Placement | None = None
    new_flow: bool = False  # the flow must be installed in the maps before forwarding


def decide(
    queued: QueuedPacket | None,
    balancer: Balancer,
    existing_real_id: int | None,
    table_full: Callable[[], bool],
    now_ns: int,
    existing_closing: bool = False,
) -> Decision:
    """What the daemon does with one queued packet, given the flow entry XDP missed or not.

    `now_ns` is CLOCK_MONOTONIC in ns (time.monotonic_ns(), bpf_ktime_get_ns()): persistence
    templates expire on it. `existing_closing`: that entry saw a FIN or RST. A new SYN on its
    5-tuple (a client reusing its port) then opens a new connection, scheduled afresh, as IPVS
    does with conn_reuse_mode=1.
    """
    if queued is None:
        return Decision("unschedulable")
    state = balancer.service_for(queued.flow)
    if state is None:
        return Decision("no_service")
    reused = existing_real_id is not None and existing_closing and queued.is_syn
    if existing_real_id is not None and not reused:
        found = balancer.real_by_id(existing_real_id)
        if found is not None:
            sstate, rstate = found
            return Decision("existing_flow", Placement(sstate.service, sstate.service_id, rstate.real, rstate.real_id))
    if not queued.opens_flow and not state.scheduler.rederives_midflow:
        # IPVS drops a mid-connection packet it has no entry for (unless sloppy_tcp); XDP drops
        # most of them before they get here (SVC_F_DROP_MIDFLOW_MISS, lb.tables.service_flags).
        # A hash scheduler (sh, dh, mh) gives the packet the real its connection had.
        return Decision("no_flow_not_syn")
    if table_full():
        # Never let a new flow push an established one out of the LRU (a SYN flood would):
        # refuse it, as IPVS's drop_entry does under memory pressure. The client retries.
        return Decision("refused_table_full")
    try:
        placement = balancer.place(queued.flow, now_ns, state)
    except NoDestination:
        return Decision("no_destination")
    return Decision("rescheduled_reused_port" if reused else "scheduled", placement, new_flow=True)


def flow_tables(
    flow: FlowKey,
    placement: Placement,
    tx_ports: set[int],
    tunnel_source: IPv4Address | None,
    stamp_ns: int = 0,
) -> Tables:
    """The slice of the maps the rewrite model needs to treat one flow as XDP would: its service,
    its real and its entries (stamped with `stamp_ns`, the clock bpf_ktime_get_ns() reads)."""
    real = placement.real
    tables = Tables(
        services={flow.service_key: ServiceEntry(placement.service_id)},
        reals={placement.real_id: RealEntry(real.address, real.port, real.forwarding)},
        tunnel_source=tunnel_source,
        tx_ports=tx_ports,
    )
    tables.install_flow(flow, placement.real_id, stamp_ns)
    return tables


class Fate(enum.Enum):
    SENT = "forwarded"  # the daemon transmits the model's frame (AF_PACKET), as XDP_TX/REDIRECT
    KERNEL = "forwarded_by_kernel"  # the rewritten packet goes back to the kernel, which routes it
    KERNEL_AS_IS = "ttl_exceeded"  # unchanged to the kernel, which answers ICMP time exceeded
    WAIT_NEIGHBOUR = "waiting_for_neighbour"  # dropped until ARP resolves; the client retries
    DROPPED = "dropped"


def fate(result: Result, forwarding: Forwarding) -> Fate:
    """Where the first packet goes, given what the rewrite model (= XDP) made of it."""
    if result.verdict in (Verdict.TX, Verdict.REDIRECT):
        return Fate.SENT
    if result.reason is Reason.PASS_NO_NEIGH:
        # Masquerading and IPIP rewrote L3, so the kernel can route it and resolve the neighbour;
        # a direct-routed packet only moves by MAC, so it waits for the neighbour.
        return Fate.WAIT_NEIGHBOUR if forwarding is Forwarding.ROUTE else Fate.KERNEL
    if result.reason is Reason.PASS_TTL_EXCEEDED:
        return Fate.KERNEL_AS_IS
    return Fate.DROPPED

"""The model of XDP deciding a first packet itself: schedule_new() and pick_real() of bpf/lb_kern.c.

For a service whose entry names an XdpKind other than DAEMON, XDP picks the real from the row the
daemon wrote (`Tables.rings`, `seqs` and `cursors`, `buckets`, `walks`, with `real_sched`, `conns` and
`templates`) and creates the flow; this module does the same to a `Tables`, so that tests hold the
program to it and it to the Python schedulers in lb.sched. A 0 from a pick means "the daemon decides".
"""

from __future__ import annotations

from ipaddress import IPv4Address

from lb.model import FlowKey, Forwarding
from lb.rewrite.verdicts import Reason
from lb.sched.hashing import MH_SEED1, fold, hash_32, mh_hash
from lb.sched.sh import TAB_BITS, TAB_SIZE
from lb.sched.xdpkind import WALK_MAX, XdpKind
from lb.tables import (
    RING_SIZE,
    SVC_F_FALLBACK,
    SVC_F_HASH_PORT,
    FlowEntry,
    ReverseEntry,
    ServiceEntry,
    Tables,
    TcpSeen,
    reverse_key,
)

MH_FALLBACK_PROBES = 64  # bpf/lb_consts.h: the most probes XDP's mh-fallback walk makes


def schedule_new(key: FlowKey, service: ServiceEntry, tables: Tables, now_ns: int, seen: TcpSeen) -> int | Reason:
    """schedule_new() in lb_kern.c: the real a first packet of a service XDP decides gets, its flow (and
    reverse) entry created in `tables`, stamped `now_ns` and carrying `seen` (what touch_flow() ORs in
    when the first packet continues as a hit); or the reason it goes up to the first-packet path."""
    if tables.hash_budget is not None and tables.hash_budget <= 0:
        return Reason.PASS_HASH_BUDGET  # the room the daemon granted is spent; asked before any pick
    real_id = template_real(key, service, tables, now_ns) if service.persist_timeout else 0
    if not real_id:
        real_id = pick_real(key, service, tables)
    real = tables.reals.get(real_id) if real_id else None
    if real is None:
        return Reason.PASS_HASH_EMPTY
    if real.forwarding is Forwarding.MASQ:
        rkey = reverse_key(key, real)
        if rkey in tables.reverse:
            return Reason.PASS_FLOW_MISS  # BPF_NOEXIST: an existing way back is not overwritten
        tables.reverse[rkey] = ReverseEntry(key.daddr, key.dport, real_id, service.service_id, now_ns)
    tables.flows[key] = FlowEntry(real_id, service.service_id, now_ns, seen)
    if tables.hash_budget is not None:
        tables.hash_budget -= 1
    active, inactive = tables.conns.get(real_id, (0, 0))
    tables.conns[real_id] = (active, inactive + 1)  # inactive until its handshake completes
    if service.persist_timeout:
        record_template(key, service, tables, real_id, now_ns)
    return real_id


def pick_real(key: FlowKey, service: ServiceEntry, tables: Tables) -> int:
    """pick_real(): the real by the service's kind, 0 when XDP leaves the flow to the daemon."""
    kind = service.sched
    if kind is XdpKind.MH:
        return pick_mh(key, service, tables)
    if kind is XdpKind.SEQ:
        return pick_seq(service, tables)
    if kind in (XdpKind.SH, XdpKind.DH):
        return pick_bucket(key, service, tables)
    if kind is not XdpKind.DAEMON:
        return pick_least(service, tables)
    return 0


def pick_mh(key: FlowKey, service: ServiceEntry, tables: Tables) -> int:
    """The real of the client's slot in the Maglev ring (a ring the tables lack reads as zeros, as an
    unwritten row of hash_rings does). With SVC_F_FALLBACK an unavailable real is walked past as
    MaglevHashing.schedule() does, for at most MH_FALLBACK_PROBES probes (0 after: the daemon walks on)."""
    ring = tables.rings.get(service.row)
    if ring is None:
        return 0
    v = fold(key.saddr, key.sport if service.flags & SVC_F_HASH_PORT else 0)
    slot = mh_hash(v, MH_SEED1) % RING_SIZE
    real_id = ring[slot]
    if not real_id or not service.flags & SVC_F_FALLBACK or _available(tables, real_id):
        return real_id
    for i in range(MH_FALLBACK_PROBES):
        real_id = ring[mh_hash((v + (slot + i) % RING_SIZE) & 0xFFFFFFFF, MH_SEED1) % RING_SIZE]
        if not real_id:
            return 0
        if _available(tables, real_id):
            return real_id
    return 0


def pick_seq(service: ServiceEntry, tables: Tables) -> int:
    """rr/wrr: the cycle's entry at the cursor, which moves on by one (XDP's atomic fetch-and-add)."""
    seq = tables.seqs.get(service.row, [])
    if not seq:
        return 0
    cursor = tables.cursors.get(service.row, 0)
    tables.cursors[service.row] = (cursor + 1) % 2**64
    return seq[cursor % len(seq)]


def pick_bucket(key: FlowKey, service: ServiceEntry, tables: Tables) -> int:
    """sh/dh: the real of the flow's bucket (sh: the client's address, and port under SVC_F_HASH_PORT;
    dh: the VIP's) when it is available; else, with SVC_F_FALLBACK, the first available real of the
    kernel's walk over all the buckets; else 0. A table the tables lack reads as zeros."""
    table = tables.buckets.get(service.row)
    if table is None:
        return 0
    if service.sched is XdpKind.DH:
        v = fold(key.daddr)
    else:
        v = fold(key.saddr, key.sport if service.flags & SVC_F_HASH_PORT else 0)
    ihash = hash_32(v, TAB_BITS)
    real_id = table[ihash]
    if not real_id or _available(tables, real_id):
        return real_id
    if not service.flags & SVC_F_FALLBACK:
        return 0
    for i in range(TAB_SIZE):
        real_id = table[((ihash + i) % TAB_SIZE + ihash) % TAB_SIZE]
        if not real_id:
            return 0
        if _available(tables, real_id):
            return real_id
    return 0


def _available(tables: Tables, real_id: int) -> bool:
    """real_sched's REAL_F_AVAILABLE (a real the tables lack reads as zeros: unavailable)."""
    sched = tables.real_sched.get(real_id)
    return sched is not None and sched.available


def pick_least(service: ServiceEntry, tables: Tables) -> int:
    """lc, wlc, sed, nq, fo, ovf: pick_least()'s walk over the reals of `walks[row]` (at most WALK_MAX),
    each with its weight and availability (`real_sched`; a real without one is unavailable) and counts
    (`conns`, a negative count read as 0). A real replaces the choice when loh × dw > doh × lw, with the
    kind's overhead and weight (walk_cost()); nq takes the first idle real at once, ovf passes over a
    real with more active connections than its weight. 0 when no real is available."""
    best, loh, lw = 0, 0, 0
    for rid in tables.walks.get(service.row, [])[:WALK_MAX]:
        real = tables.real_sched.get(rid)
        if real is None or not real.available or not real.weight:
            continue
        active, inactive = (max(0, n) for n in tables.conns.get(rid, (0, 0)))
        if service.sched is XdpKind.NQ and not active:
            return rid
        if service.sched is XdpKind.OVF and active > real.weight:
            continue
        doh, dw = walk_cost(service.sched, active, inactive, real.weight)
        if not best or loh * dw > doh * lw:
            best, loh, lw = rid, doh, dw
    return best


def walk_cost(kind: XdpKind, active: int, inactive: int, weight: int) -> tuple[int, int]:
    """(overhead, weight) that pick_least()'s `switch` compares a real by: lc is wlc with every weight
    1 (a strictly smaller overhead wins), fo and ovf cost every real 1 (a strictly higher weight wins),
    sed and nq are (active + 1)/weight (ip_vs_lc.c, _wlc.c, _sed.c, _nq.c, _fo.c, _ovf.c)."""
    if kind is XdpKind.LC:
        return (active << 8) + inactive, 1
    if kind is XdpKind.WLC:
        return (active << 8) + inactive, weight
    if kind in (XdpKind.SED, XdpKind.NQ):
        return active + 1, weight
    return 1, weight


# -- persistence: the template rules, stated once (lb.balancer.persistence applies them in Python) --

NS_PER_S = 1_000_000_000


def client_net(saddr: IPv4Address | int, mask: IPv4Address | int) -> int:
    """The client network a template covers (ipvsadm -M): saddr & mask, host order."""
    return int(saddr) & int(mask)


def template_alive(expires_ns: int, now_ns: int) -> bool:
    """A template lives up to and including its expiry (bpf_ktime_get_ns()'s clock)."""
    return now_ns <= expires_ns


def template_expiry(now_ns: int, timeout_s: int) -> int:
    """A template used or made at `now_ns` lives `timeout_s` (ipvsadm -p) from then."""
    return now_ns + timeout_s * NS_PER_S


def template_real(key: FlowKey, service: ServiceEntry, tables: Tables, now_ns: int) -> int:
    """Persistence: the real the live template of the client's network names, if that real is
    available (real_sched); 0 otherwise, and the scheduler decides."""
    found = tables.templates.get((service.service_id, client_net(key.saddr, service.persist_mask)))
    if found is None:
        return 0
    expires_ns, real_id = found
    real = tables.real_sched.get(real_id)
    if not template_alive(expires_ns, now_ns) or real is None or not real.available:
        return 0
    return real_id


def record_template(key: FlowKey, service: ServiceEntry, tables: Tables, real_id: int, now_ns: int) -> None:
    """Persistence: the template of the flow's client network points at `real_id`, its timer restarted."""
    net = client_net(key.saddr, service.persist_mask)
    tables.templates[service.service_id, net] = (template_expiry(now_ns, service.persist_timeout), real_id)

"""Who decides a service's first packets: the XDP program, from one of its scheduler maps, or the daemon.

`XdpKind` mirrors `enum lb_sched` of bpf/lb_consts.h (tests/unit/test_datapath_structs.py parses the
header). A scheduler class states its kind (`Scheduler.xdp_kind`); the daemon writes the kind into each
service's entry (`service_info.sched`) while XDP may decide the service (lb.daemon.kernelsched), and
DAEMON otherwise, so that the first packet goes up to the first-packet path.
"""

from __future__ import annotations

import enum


class XdpKind(enum.IntEnum):
    DAEMON = 0  # the first-packet path (NFQUEUE, Python) decides
    MH = 1  # Maglev ring: hash_rings[row]
    SEQ = 2  # rr, wrr: the cycle sched_seqs[row] and its atomic cursor sched_cursors[row]
    SH = 3  # bucket_tables[row], by the client's address
    DH = 4  # bucket_tables[row], by the VIP
    LC = 5  # this and the rest: a walk over sched_dests[row] with real_conns' counts
    WLC = 6
    SED = 7
    NQ = 8
    FO = 9
    OVF = 10

    @property
    def map_name(self) -> str | None:
        """The map whose row holds the service's scheduling state (None for DAEMON)."""
        if self is XdpKind.DAEMON:
            return None
        if self is XdpKind.MH:
            return "hash_rings"
        if self is XdpKind.SEQ:
            return "sched_seqs"
        if self in (XdpKind.SH, XdpKind.DH):
            return "bucket_tables"
        return "sched_dests"


SEQ_MAX = 4096  # bpf/lb_consts.h: the longest rr/wrr cycle XDP holds
BUCKETS = 256  # bpf/lb_consts.h: sh/dh buckets (the kernel's IP_VS_SH_TAB_SIZE)
WALK_MAX = 64  # bpf/lb_consts.h: the most reals a least-connection walk in XDP visits

"""XDP verdicts and the named reasons the datapath counts them under.

`Reason` mirrors `enum lb_reason` in bpf/lb_consts.h value for value (tests/unit/test_rewrite_verdicts.py
reads the header and checks); `Verdict` is the kernel's `enum xdp_action` (include/uapi/linux/bpf.h).
"""

from __future__ import annotations

import enum


class Verdict(enum.IntEnum):
    """enum xdp_action."""

    ABORTED = 0
    DROP = 1
    PASS = 2
    TX = 3
    REDIRECT = 4


class Reason(enum.IntEnum):
    """enum lb_reason: why a packet got its verdict; the index of reason_counts. Append only."""

    PASS_NOT_IPV4 = 0
    DROP_BAD_IPV4 = 1
    PASS_IP_OPTIONS = 2
    PASS_FRAGMENT = 3
    PASS_ICMP = 4
    PASS_OTHER_L4 = 5
    PASS_BAD_L4 = 6
    PASS_NOT_VIP = 7
    PASS_FLOW_MISS = 8
    PASS_NO_REAL = 9
    PASS_TTL_EXCEEDED = 10
    PASS_NO_ROUTE = 11
    PASS_FRAG_NEEDED = 12
    PASS_NO_NEIGH = 13
    PASS_NOT_TX_PORT = 14
    PASS_NO_TUNNEL_SRC = 15
    PASS_NO_HEADROOM = 16
    ABORTED_ENCAP = 17
    TX_FORWARD = 18
    REDIRECT_FORWARD = 19
    TX_REVERSE = 20
    REDIRECT_REVERSE = 21
    PASS_FLOW_REUSE = 22  # a SYN on a flow that saw FIN or RST: a new connection (conn_reuse_mode=1)
    PASS_HASH_EMPTY = 23  # a first packet of an in-kernel mh service whose ring slot is 0: Python decides
    PASS_HASH_BUDGET = 24  # XDP may create no more flows until the daemon's next sweep grants room
    DROP_NO_FLOW_NOT_SYN = 25  # TCP without SYN, no flow, a service whose scheduler cannot re-derive it

    @property
    def verdict(self) -> Verdict:
        """The verdict every packet counted under this reason gets."""
        prefix = self.name.split("_", 1)[0]
        return Verdict[prefix]

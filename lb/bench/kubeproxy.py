"""kube-proxy's iptables mode, the DNAT users would pick instead of lbxdp, as iptables argv lists.

One DNAT rule per endpoint in the nat PREROUTING chain; endpoint i of n is matched with
`-m statistic --mode random --probability 1/(n-i)` and the last one unconditionally, so each gets
1/n of the new connections (the shape of the KUBE-SVC-* chains kube-proxy's iptables proxier
writes). conntrack keeps every later packet of a connection on the endpoint its first one drew.
Pure: the caller runs the commands in its namespace. Cases 2 (UDP) and 4 (TCP) both use it.
"""

from __future__ import annotations

from collections.abc import Sequence


def statistic_dnat(vip: str, proto: str, port: int, endpoints: Sequence[str]) -> list[list[str]]:
    """`iptables -t nat -A PREROUTING …` argv lists sending vip:port/proto to `endpoints` (addr:port)."""
    if not endpoints:
        raise ValueError("no endpoints")
    rules = []
    for i, endpoint in enumerate(endpoints):
        match = ["-d", f"{vip}/32", "-p", proto, "--dport", str(port)]
        left = len(endpoints) - i
        if left > 1:
            match += ["-m", "statistic", "--mode", "random", "--probability", f"{1 / left:.5f}"]
        rules.append(["iptables", "-t", "nat", "-A", "PREROUTING", *match, "-j", "DNAT",
                      "--to-destination", endpoint])
    return rules

"""The scenarios pcaps/ holds, as data: topology, reals, rules, servers and the traffic to generate.

`lbxdp record NAME` (lb.replay.record) builds the topology in fresh namespaces, starts the servers,
attaches lbxdp with the rules, runs the traffic and captures it. Rules are ipvsadm save-format lines
with `{vip}` and `{r1}`, `{r2}`… standing for the addresses the testbed gives (docs/testbed.md).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Traffic:
    """One client action. `curl`: n HTTP requests (new connection each, closed with FIN);
    `udp`: n datagrams, each from a new source port; `hold`: one connection, n line exchanges, closed
    with FIN; `rst`: the same, closed with an RST (SO_LINGER 0). `source` is a client alias index
    (0 = the client's own address, j = 10.x.1.(100+j))."""

    kind: str
    count: int
    port: int = 80
    source: int = 0


@dataclass(frozen=True)
class Spec:
    name: str
    description: str
    kind: str  # "two_arm" | "one_arm"
    reals: tuple[str, ...]  # "r1", "r1:dr", "r1:ipip"
    servers: tuple[tuple[str, int], ...]  # (realserver kind, port)
    rules: tuple[str, ...]
    traffic: tuple[Traffic, ...]
    net: int  # the testbed's second octet, fixed so a re-recording has the same addresses
    client_aliases: int = 0


def _masq(service: str, port: int, weights: tuple[int, ...]) -> tuple[str, ...]:
    return tuple(f"-a {service} -r {{r{i}}}:{port} -m -w {w}" for i, w in enumerate(weights, start=1))


_T80 = "-t {vip}:80"
_HTTP = (("http", 8080),)

SPECS: tuple[Spec, ...] = (
    Spec("rr-masq", "rr, masquerading, HTTP on VIP:80 mapped to the reals' :8080", "two_arm",
         ("r1", "r2", "r3"), _HTTP, (f"-A {_T80} -s rr", *_masq(_T80, 8080, (1, 1, 1))),
         (Traffic("curl", 6),), net=61),
    Spec("wrr-masq", "wrr, weights 3/2/1, masquerading, HTTP :80 → :8080", "two_arm",
         ("r1", "r2", "r3"), _HTTP, (f"-A {_T80} -s wrr", *_masq(_T80, 8080, (3, 2, 1))),
         (Traffic("curl", 6),), net=62),
    Spec("sh-masq", "sh (source hashing), four client addresses, masquerading", "two_arm",
         ("r1", "r2", "r3"), _HTTP, (f"-A {_T80} -s sh", *_masq(_T80, 8080, (1, 1, 1))),
         tuple(Traffic("curl", 2, source=j) for j in range(4)), net=63, client_aliases=3),
    Spec("mh-masq", "mh (Maglev hashing), four client addresses, masquerading", "two_arm",
         ("r1", "r2", "r3"), _HTTP, (f"-A {_T80} -s mh", *_masq(_T80, 8080, (1, 1, 1))),
         tuple(Traffic("curl", 2, source=j) for j in range(4)), net=64, client_aliases=3),
    Spec("dr", "direct routing (-g), rr, HTTP :80; replies go back through the lb's kernel", "two_arm",
         ("r1:dr", "r2:dr"), (("http", 80),),
         (f"-A {_T80} -s rr", f"-a {_T80} -r {{r1}}:80 -g -w 1", f"-a {_T80} -r {{r2}}:80 -g -w 1"),
         (Traffic("curl", 4),), net=65),
    Spec("ipip", "IPIP tunnelling (-i), rr, HTTP :80; the reals decapsulate in XDP", "two_arm",
         ("r1:ipip", "r2:ipip"), (("http", 80),),
         (f"-A {_T80} -s rr", f"-a {_T80} -r {{r1}}:80 -i -w 1", f"-a {_T80} -r {{r2}}:80 -i -w 1"),
         (Traffic("curl", 4),), net=66),
    Spec("udp-masq", "UDP, rr, masquerading VIP:53 → reals' :5353, one datagram per flow", "two_arm",
         ("r1", "r2"), (("udp", 5353),),
         ("-A -u {vip}:53 -s rr", *_masq("-u {vip}:53", 5353, (1, 1))),
         (Traffic("udp", 6, port=53),), net=67),
    Spec("long-flow", "one long-lived TCP connection, 150 exchanges (hundreds of packets), masquerading",
         "two_arm", ("r1", "r2"), (("tcp", 9000),),
         ("-A -t {vip}:9000 -s rr", *_masq("-t {vip}:9000", 9000, (1, 1))),
         (Traffic("hold", 150, port=9000),), net=68),
    Spec("fin-rst", "connections closed with FIN and with RST, one-arm (XDP_TX), masquerading", "one_arm",
         ("r1", "r2"), (("tcp", 9000),),
         ("-A -t {vip}:9000 -s rr", *_masq("-t {vip}:9000", 9000, (1, 1))),
         (Traffic("hold", 2, port=9000), Traffic("rst", 2, port=9000), Traffic("hold", 1, port=9000),
          Traffic("rst", 1, port=9000)), net=69),
)


def spec(name: str) -> Spec:
    for s in SPECS:
        if s.name == name:
            return s
    raise KeyError(f"no scenario {name!r}; scenarios are {', '.join(s.name for s in SPECS)}")

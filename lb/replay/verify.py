"""`lbxdp verify CAPTURE`: check a capture taken on the real-server side of a live lbxdp.

For operators: capture on the balancer's real-facing interface, on a switch mirror port, or on a
real (`tcpdump -i eth1 -s 0 -w reals.pcap`), then ask whether what the balancer sent is sound:

- every IPv4 header checksum and every TCP/UDP checksum is right (for IPIP, the outer and the inner
  header too); a frame captured short is counted as unchecked, never as wrong;
- each flow reached one real. A flow is a client endpoint (protocol, address, port); the client is
  whoever sent the SYN (UDP: the first datagram; a flow captured without its start: the higher port).
  The real is where the client's packets went: the IPIP outer destination, else destination MAC,
  address and port (direct routing changes only the MAC).

Caveat: a capture taken on the host that sends with TX checksum offload shows L4 checksums the NIC
fills in later ("incorrect" in tcpdump -vv); capture on a receiving host or turn offload off.
Exit status 0 when everything holds, 1 otherwise, 2 for an unreadable capture.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lb.packet import IpProto, IPv4, l4_at, tcp_answers, tcp_opens
from lb.replay.frames import Csum, checksums, innermost, ipv4, ports
from lb.replay.render import rows_table
from lb.replay.scenario import ScenarioError, read_pcap

Endpoint = tuple[int, str, int]  # protocol, address, port

EXAMPLES = """\
examples:
  tcpdump -i eth1 -s 0 -w reals.pcap    # on the balancer's real side, while traffic flows
  lbxdp verify reals.pcap
  lbxdp verify -v reals.pcap            # every problem, not the first 20
"""


@dataclass
class VerifyReport:
    packets: int = 0
    checked: int = 0  # IPv4 TCP/UDP packets whose checksums were checked
    unchecked: int = 0  # IPv4 TCP/UDP captured short, or fragments
    other: int = 0  # not IPv4 TCP/UDP: not the balancer's business here
    bad_ip: int = 0
    bad_l4: int = 0
    problems: list[str] = field(default_factory=list)
    flows_per_real: Counter[str] = field(default_factory=Counter)
    split_flows: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(frames: Sequence[bytes]) -> VerifyReport:
    report = VerifyReport(packets=len(frames))
    clients: dict[frozenset[Endpoint], Endpoint] = {}
    reals: dict[Endpoint, list[str]] = defaultdict(list)
    for number, frame in enumerate(frames, start=1):
        inner = innermost(frame)
        found = ports(frame, inner) if inner is not None else None
        if inner is None or found is None:
            report.other += 1
            continue
        sums = checksums(frame)
        assert sums is not None
        if Csum.UNKNOWN in (sums.ip, sums.l4, sums.inner_ip):
            report.unchecked += 1
        else:
            report.checked += 1
        for name in sums.bad:
            report.bad_ip += name != "L4"
            report.bad_l4 += name == "L4"
            described = _describe(inner.saddr, found[0], inner.daddr, found[1])
            report.problems.append(f"#{number}: {name} checksum wrong ({described})")
        src: Endpoint = (inner.proto, str(inner.saddr), found[0])
        dst: Endpoint = (inner.proto, str(inner.daddr), found[1])
        pair = frozenset((src, dst))
        if pair not in clients:
            clients[pair] = _client(frame, inner, src, dst)
        if clients[pair] != src:
            continue  # the real's answer
        outer = ipv4(frame)
        assert outer is not None
        if outer.proto == IpProto.IPIP:
            real = f"{outer.daddr} (IPIP)"
        else:
            mac = ":".join(f"{b:02x}" for b in frame[0:6])
            real = f"{inner.daddr}:{found[1]} ({mac})"
        if real not in reals[src]:
            reals[src].append(real)
    for client, where in reals.items():
        report.flows_per_real[where[0]] += 1
        if len(where) > 1:
            report.split_flows += 1
            proto = "TCP" if client[0] == IpProto.TCP else "UDP"
            names = ", ".join(where)
            report.problems.append(f"flow {proto} {client[1]}:{client[2]} reached {len(where)} reals: {names}")
    return report


def _client(frame: bytes, ip: IPv4, src: Endpoint, dst: Endpoint) -> Endpoint:
    """Who opened the conversation, judged from its first packet seen."""
    if src[0] == IpProto.TCP:
        l4 = l4_at(frame, ip, ip.end)
        flags = l4.flags if l4 is not None else 0
        if tcp_opens(flags):
            return src
        if tcp_answers(flags):
            return dst
        return src if src[2] > dst[2] else dst
    return src


def _describe(saddr: object, sport: int, daddr: object, dport: int) -> str:
    return f"{saddr}:{sport} -> {daddr}:{dport}"


def render(report: VerifyReport, name: str, verbose: bool) -> str:
    summary = rows_table(
        f"lbxdp verify {name}",
        ["packets", "checked", "unchecked", "not TCP/UDP", "bad IPv4 csum", "bad L4 csum", "flows", "split flows"],
        [[report.packets, report.checked, report.unchecked, report.other, report.bad_ip, report.bad_l4,
          sum(report.flows_per_real.values()), report.split_flows]],
    )
    per_real = rows_table("flows per real", ["real", "flows"], sorted(report.flows_per_real.items()))
    lines = [summary, per_real]
    shown = report.problems if verbose else report.problems[:20]
    lines += shown
    if len(report.problems) > len(shown):
        lines.append(f"… {len(report.problems) - len(shown)} more (-v lists all)")
    ok = "ok: checksums right, every flow at one real"
    lines.append(ok if report.ok else f"FAILED: {len(report.problems)} problems")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="lbxdp verify", description=__doc__.splitlines()[0], epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("capture", metavar="CAPTURE", help="a pcap (Ethernet) taken on the real-server side")
    p.add_argument("-v", "--verbose", action="store_true", help="list every problem")
    args = p.parse_args(argv)
    try:
        frames = [f.data for f in read_pcap(Path(args.capture))]
    except ScenarioError as exc:
        print(f"lbxdp verify: {exc}", file=sys.stderr)
        return 2
    report = verify(frames)
    print(render(report, Path(args.capture).name, args.verbose))
    return 0 if report.ok else 1

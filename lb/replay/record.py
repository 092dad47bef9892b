"""`lbxdp record SCENARIO…`: re-record scenarios in fresh namespaces (root).

For each scenario (lb.replay.scenarios): build the testbed topology, start the real servers, attach
lbxdp to the balancer's interfaces with the scenario's rules, capture with tcpdump, run the traffic,
then write pcaps/<name>/ (lb.replay.scenario describes the files).

Where the capture is taken: on the far end of each balancer veth (the client's eth0, the switch's
p-lb), `-Q out` for what reached the balancer and `-Q in` for what it emitted. Not on the balancer's
own interfaces: with XDP attached, tcpdump there never sees the frames XDP consumed or sent (generic
mode runs XDP before the capture taps on receive, and transmits XDP_TX/XDP_REDIRECT frames without
passing them to the taps; native mode likewise), only what XDP passed and what the daemon sent with
AF_PACKET. On the peer, every frame crossing the wire is seen, whoever produced it.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import socket
import struct
import sys
import time
from pathlib import Path

from lb.config.savefmt import RulesError, load_rules
from lb.datapath.replaylab import gateway_routes, permanent_neighbours
from lb.datapath.testbed import RealSpec, Topology, one_arm, two_arm, wait_until
from lb.replay import decisions as D
from lb.replay.scenario import (
    Frame,
    GatewayRoute,
    Interface,
    Neighbour,
    Scenario,
    ScenarioError,
    Topology as Facts,
    read_pcap,
    save,
)
from lb.replay.scenarios import SPECS, Spec, Traffic, spec

PCAPS = Path(__file__).resolve().parents[2] / "pcaps"
EXAMPLES = """\
examples:
  lbxdp record rr-masq                  # re-record pcaps/rr-masq/
  lbxdp record rr-masq --out /tmp/rr    # somewhere else
  lbxdp record all                      # every scenario
  lbxdp record --list
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lbxdp record", description=__doc__.splitlines()[0], epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenarios", nargs="*", metavar="SCENARIO", help="scenario names, or 'all'")
    p.add_argument("--out", metavar="DIR", help="where to write (one scenario: that folder; several: DIR/<name>)")
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.list or not args.scenarios:
        for s in SPECS:
            print(f"{s.name:<10} {s.description}")
        return 0 if args.list else 2
    names = [s.name for s in SPECS] if args.scenarios == ["all"] else args.scenarios
    try:
        specs = [spec(n) for n in names]
    except KeyError as exc:
        print(f"lbxdp record: {exc.args[0]}", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("lbxdp record: must run as root (it builds namespaces and attaches XDP)", file=sys.stderr)
        return 1
    for s in specs:
        if args.out:
            out = Path(args.out) if len(specs) == 1 else Path(args.out) / s.name
        else:
            out = PCAPS / s.name
        try:
            scenario = record(s, out)
        except (ScenarioError, RulesError, RuntimeError, OSError) as exc:
            print(f"lbxdp record: {s.name}: {exc}", file=sys.stderr)
            return 1
        print(f"{s.name}: {len(scenario.frames_in)} frames in, {len(scenario.frames_out)} out, "
              f"{len(scenario.decisions)} flows -> {out}")
    return 0


def _real_spec(text: str) -> RealSpec:
    name, _, how = text.partition(":")
    return RealSpec(name, dr=how == "dr", ipip=how == "ipip")


def _rules(s: Spec, topo: Topology) -> str:
    names = {r.name: r.ip for r in topo.reals}
    return "".join(line.format(vip=topo.vip, **names) + "\n" for line in s.rules)


def _lbxdp(topo: Topology, *args: str, timeout: float = 10.0) -> str:
    return topo.run("lb", [sys.executable, "-m", "lb.cli", *args], timeout=timeout).stdout


class CaptureIncomplete(RuntimeError):
    """tcpdump reported drops: a capture with holes would fail replay for the wrong reason."""


ATTEMPTS = 3


def record(s: Spec, out: Path) -> Scenario:
    """Record `s` into `out`; a capture that lost packets (a loaded machine) is recorded again."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return _record_once(s, out)
        except CaptureIncomplete:
            if attempt == ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def _record_once(s: Spec, out: Path) -> Scenario:
    build = two_arm if s.kind == "two_arm" else one_arm
    with build([_real_spec(r) for r in s.reals], net=s.net, client_aliases=s.client_aliases) as topo:
        rules_text = _rules(s, topo)
        table = load_rules(rules_text, f"{s.name} rules")
        for kind, port in s.servers:
            {"http": topo.start_http_servers, "tcp": topo.start_tcp_servers, "udp": topo.start_udp_servers}[kind](port)
        rules_file = topo.workdir / "rules"
        rules_file.write_text(rules_text)
        _lbxdp(topo, "attach", *[i.name for i in topo.lb_ifaces], "--config", str(rules_file), timeout=120)
        try:
            files = _capture(topo, s)
            facts = _facts(topo, s)
        finally:
            _lbxdp(topo, "detach", *[i.name for i in topo.lb_ifaces], timeout=30)
        frames_in, frames_out = _merge(files, facts)
        decisions, problems = D.derive([f.data for f in frames_in], [f.data for f in frames_out], table, facts)
        if problems:
            raise RuntimeError("; ".join(problems))
        facts = _with_tunnel_source(facts, frames_out)
        scenario = Scenario(s.name, out, rules_text, facts, decisions, frames_in, frames_out)
        readme = (f"{s.name}: {s.description}. Made with `lbxdp record {s.name}` "
                  f"({s.kind}, captured with tcpdump on the peers of the balancer's veths; see docs/replay.md).")
        save(out, scenario, readme)
        return scenario


def _capture(topo: Topology, s: Spec) -> list[tuple[Path, str]]:
    """tcpdump on each balancer interface's peer; run the traffic; returns (file, "in"|"out")."""
    procs = []
    files: list[tuple[Path, str]] = []
    for iface in topo.lb_ifaces:
        for direction, side in (("out", "in"), ("in", "out")):  # peer's out = what reaches the lb
            path = topo.workdir / f"{iface.name}-{side}.pcap"
            log = topo.workdir / f"{iface.name}-{side}.log"
            with open(log, "wb") as err:
                argv = ["tcpdump", "-n", "-U", "--immediate-mode", "-B", "16384", "-s", "0", "-Q", direction,
                        "-i", iface.peer_ifname, "-w", str(path)]
                proc = topo.spawn(iface.peer_host, argv, stderr=err)
            procs.append((proc, log))
            files.append((path, side))
    for _, log in procs:
        wait_until(functools.partial(_listening, log), timeout=10, what="tcpdump to start")
    try:
        for t in s.traffic:
            _traffic(topo, t)
        time.sleep(0.5)  # the last replies and ACKs
    finally:
        for proc, _ in procs:
            topo.stop(proc, grace=3.0)
    for _, log in procs:
        found = re.search(rb"(\d+) packets? dropped by kernel", log.read_bytes())
        if found is None or int(found.group(1)):
            said = found and found.group(0)
            raise CaptureIncomplete(f"tcpdump lost packets or did not finish ({log.name}: {said!r})")
    return files


def _listening(log: Path) -> bool:
    """tcpdump has opened its interface: it says so on stderr before the first packet can be missed."""
    return b"listening on" in log.read_bytes()


def _traffic(topo: Topology, t: Traffic) -> None:
    source = None if t.source == 0 else topo.client_aliases[t.source - 1]
    if t.kind == "curl":
        answers = topo.curl(t.count, port=t.port, source=source)
        if None in answers:
            raise RuntimeError(f"curl failed: {answers}")
    elif t.kind == "udp":
        for n in range(t.count):
            if topo.udp_query(port=t.port, payload=f"query {n}".encode(), source=source) is None:
                raise RuntimeError("a UDP query went unanswered")
    elif t.kind in ("hold", "rst"):
        conn = topo.hold(port=t.port, source=source)
        conn.exchange(t.count)
        if t.kind == "rst":  # SO_LINGER on, 0 s: close() sends RST instead of FIN
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
        time.sleep(0.2)
    else:
        raise ValueError(f"unknown traffic kind {t.kind!r}")


def _facts(topo: Topology, s: Spec) -> Facts:
    roles = {"two_arm": ["client side", "real side"], "one_arm": ["clients and reals"]}[s.kind]
    interfaces = tuple(
        Interface(i.name, i.ifindex, i.mac, i.cidrs, role) for i, role in zip(topo.lb_ifaces, roles)
    )
    ifindexes = [i.ifindex for i in topo.lb_ifaces]
    neighbours = tuple(Neighbour(*n) for n in permanent_neighbours(topo.lb.netns, ifindexes))
    routes = tuple(GatewayRoute(*r) for r in gateway_routes(topo.lb.netns, ifindexes))
    hosts = {
        h.name: {"ip": h.ip, "mac": h.iface.mac, "role": h.role} for h in topo.hosts.values() if h.role != "switch"
    }
    capture = ("tcpdump -Q out (in.pcap) and -Q in (out.pcap) on the peer of each balancer interface: "
               + ", ".join(f"{i.name} <-> {i.peer_host}/{i.peer_ifname}" for i in topo.lb_ifaces))
    return Facts(s.kind, topo.vip, interfaces, neighbours, routes, None, hosts, capture)


def _merge(files: list[tuple[Path, str]], facts: Facts) -> tuple[list[Frame], list[Frame]]:
    """One in and one out list, in time order; frames not addressed to / sent by the balancer (a
    switch flooding an unknown unicast) are left out."""
    frames_in: list[Frame] = []
    frames_out: list[Frame] = []
    for path, side in files:
        for frame in read_pcap(path):
            if side == "in" and facts.ingress_for(frame.data) is not None:
                frames_in.append(frame)
            elif side == "out" and facts.egress_for(frame.data) is not None:
                frames_out.append(frame)
    frames_in.sort(key=lambda f: f.time)
    frames_out.sort(key=lambda f: f.time)
    return frames_in, frames_out


def _with_tunnel_source(facts: Facts, frames_out: list[Frame]) -> Facts:
    """The IPIP outer source the daemon chose, as the recording shows it."""
    from dataclasses import replace

    from lb.packet import IpProto
    from lb.replay.frames import ipv4

    for frame in frames_out:
        ip = ipv4(frame.data)
        if ip is not None and ip.proto == IpProto.IPIP:
            return replace(facts, tunnel_source=str(ip.saddr))
    return facts

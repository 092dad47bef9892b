"""A recorded scenario on disk, and the facts of the network it was recorded in.

pcaps/<name>/ holds:

- `rules`: the balancer's configuration, ipvsadm save format (ipvsadm(8), `-S -n`);
- `topology.json`: the balancer's interfaces (name, ifindex, MAC, addresses, role), its neighbours
  and non-connected routes, the IPIP tunnel source, the ifindexes in tx_ports, the hosts;
- `decisions.json`: which real each flow was scheduled to, read from out.pcap at record time;
- `in.pcap`: every frame that reached the balancer's interfaces; `out.pcap`: every frame it emitted.
  Both are Ethernet (DLT_EN10MB), merged over the interfaces in time order; a frame's interface is
  known from its MACs (in: the destination MAC is the interface's, out: the source MAC).
- `README`: one line on how it was made.

Reading a scenario does file I/O only; the facts give the `StaticFib` the model routes with, which is
what bpf_fib_lookup() answers in a namespace built from the same facts (lb.replay.lab).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path
from typing import Any

from scapy.error import Scapy_Exception
from scapy.utils import RawPcapReader, RawPcapWriter

from lb.config.savefmt import load_rules
from lb.config.table import ServiceTable
from lb.model import FlowKey, Protocol, RealKey
from lb.rewrite.fib import Route, StaticFib

DLT_EN10MB = 1


class ScenarioError(ValueError):
    """A scenario folder or capture that cannot be used; the message names the file."""


@dataclass(frozen=True)
class Interface:
    name: str
    ifindex: int
    mac: str
    cidrs: tuple[str, ...]
    role: str  # "client side", "real side", "clients and reals" (one-arm)


@dataclass(frozen=True)
class Neighbour:
    ifindex: int
    address: str
    mac: str


@dataclass(frozen=True)
class GatewayRoute:
    network: str
    gateway: str
    ifindex: int


@dataclass(frozen=True)
class Topology:
    """What a replay must rebuild so that fib lookups answer as they did during the recording."""

    kind: str
    vip: str
    interfaces: tuple[Interface, ...]
    neighbours: tuple[Neighbour, ...]
    routes: tuple[GatewayRoute, ...] = ()
    tunnel_source: str | None = None
    hosts: dict[str, dict[str, str]] = field(default_factory=dict)
    capture: str = ""

    @property
    def tx_ports(self) -> set[int]:
        """The daemon puts every interface it attached to in tx_ports."""
        return {i.ifindex for i in self.interfaces}

    def ingress_for(self, frame: bytes) -> int | None:
        """The interface a frame that reached the balancer came in on: its destination MAC's."""
        return self._by_mac(frame[0:6])

    def egress_for(self, frame: bytes) -> int | None:
        return self._by_mac(frame[6:12])

    def _by_mac(self, mac: bytes) -> int | None:
        for iface in self.interfaces:
            if mac_bytes(iface.mac) == mac:
                return iface.ifindex
        if len(self.interfaces) == 1 and mac[0] & 1:  # broadcast/multicast on a one-interface balancer
            return self.interfaces[0].ifindex
        return None

    def fib(self) -> StaticFib:
        """The model of the balancer namespace's routing: connected subnets, gateway routes, and
        the permanent neighbours the testbed installs."""
        smac = {i.ifindex: mac_bytes(i.mac) for i in self.interfaces}
        routes = [
            Route(IPv4Interface(cidr).network, i.ifindex, smac[i.ifindex]) for i in self.interfaces for cidr in i.cidrs
        ]
        routes += [
            Route(IPv4Network(r.network), r.ifindex, smac[r.ifindex], IPv4Address(r.gateway)) for r in self.routes
        ]
        neighbours = {(n.ifindex, IPv4Address(n.address)): mac_bytes(n.mac) for n in self.neighbours}
        return StaticFib(tuple(routes), neighbours)

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "vip": self.vip,
            "interfaces": [vars(i) | {"cidrs": list(i.cidrs)} for i in self.interfaces],
            "neighbours": [vars(n) for n in self.neighbours],
            "routes": [vars(r) for r in self.routes],
            "tunnel_source": self.tunnel_source,
            "tx_ports": sorted(self.tx_ports),
            "hosts": self.hosts,
            "capture": self.capture,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str = "topology.json") -> Topology:
        try:
            return cls(
                kind=str(data["kind"]),
                vip=str(data["vip"]),
                interfaces=tuple(
                    Interface(i["name"], int(i["ifindex"]), i["mac"], tuple(i["cidrs"]), i.get("role", ""))
                    for i in data["interfaces"]
                ),
                neighbours=tuple(Neighbour(int(n["ifindex"]), n["address"], n["mac"]) for n in data["neighbours"]),
                routes=tuple(
                    GatewayRoute(r["network"], r["gateway"], int(r["ifindex"])) for r in data.get("routes", [])
                ),
                tunnel_source=data.get("tunnel_source"),
                hosts=dict(data.get("hosts", {})),
                capture=str(data.get("capture", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ScenarioError(f"{where}: not a topology description ({exc!r})") from None


@dataclass(frozen=True)
class Frame:
    """One captured frame and when it was captured (seconds since the epoch, microseconds)."""

    data: bytes
    time: float = 0.0


@dataclass
class Scenario:
    name: str
    path: Path
    rules_text: str
    topology: Topology
    decisions: dict[FlowKey, RealKey]
    frames_in: list[Frame]
    frames_out: list[Frame]

    @property
    def table(self) -> ServiceTable:
        return load_rules(self.rules_text, str(self.path / "rules"))


def mac_bytes(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def flow_text(flow: FlowKey) -> str:
    return f"{flow.proto.label} {flow.saddr}:{flow.sport} -> {flow.daddr}:{flow.dport}"


def parse_flow(text: str) -> FlowKey:
    """The inverse of flow_text: 'TCP 10.1.1.2:4000 -> 10.1.0.100:80'."""
    proto, src, _, dst = text.split()
    saddr, sport = src.rsplit(":", 1)
    daddr, dport = dst.rsplit(":", 1)
    return FlowKey(Protocol[proto.upper()], IPv4Address(saddr), int(sport), IPv4Address(daddr), int(dport))


def decisions_to_json(decisions: dict[FlowKey, RealKey]) -> list[dict[str, str]]:
    return [{"flow": flow_text(f), "real": str(r)} for f, r in sorted(decisions.items())]


def decisions_from_json(rows: Iterable[dict[str, str]]) -> dict[FlowKey, RealKey]:
    out = {}
    for row in rows:
        addr, port = row["real"].rsplit(":", 1)
        out[parse_flow(row["flow"])] = RealKey(IPv4Address(addr), int(port))
    return out


def read_pcap(path: Path) -> list[Frame]:
    """Every frame of an Ethernet pcap, as captured (caplen bytes)."""
    try:
        reader = RawPcapReader(str(path))
    except (OSError, EOFError) as exc:
        raise ScenarioError(f"{path}: cannot read as a pcap ({exc})") from None
    except Scapy_Exception as exc:  # scapy's "not a pcap file"
        raise ScenarioError(f"{path}: not a pcap file ({exc})") from None
    with reader:
        if reader.linktype != DLT_EN10MB:
            raise ScenarioError(f"{path}: link type {reader.linktype}, only Ethernet (1) is replayed")
        return [Frame(bytes(data), meta.sec + meta.usec / 1e6) for data, meta in _records(reader)]


def _records(reader: RawPcapReader) -> Iterator[tuple[bytes, RawPcapReader.PacketMetadata]]:
    try:
        yield from reader
    except EOFError:  # a capture cut off mid-record: what came before it stands
        return


def write_pcap(path: Path, frames: Iterable[Frame]) -> None:
    writer = RawPcapWriter(str(path), linktype=DLT_EN10MB, snaplen=65535, sync=True)
    try:
        writer._write_header(None)  # an empty capture is still a valid pcap
        for frame in frames:
            sec = int(frame.time)
            usec = round((frame.time - sec) * 1e6)
            if usec == 1_000_000:
                sec, usec = sec + 1, 0
            writer.write_packet(frame.data, sec=sec, usec=usec, caplen=len(frame.data), wirelen=len(frame.data))
    finally:
        writer.close()


def load(path: Path) -> Scenario:
    """Read pcaps/<name>/; a missing or malformed file is a ScenarioError naming it."""
    if not path.is_dir():
        raise ScenarioError(f"{path}: no such scenario folder")
    files = {name: path / name for name in ("rules", "topology.json", "decisions.json", "in.pcap", "out.pcap")}
    for file in files.values():
        if not file.is_file():
            raise ScenarioError(f"{file}: missing (a scenario folder holds {', '.join(files)})")
    try:
        topology = Topology.from_json(json.loads(files["topology.json"].read_text()), str(files["topology.json"]))
        decisions = decisions_from_json(json.loads(files["decisions.json"].read_text()))
    except (json.JSONDecodeError, KeyError, ValueError) as exc:
        raise ScenarioError(f"{path}: bad JSON ({exc})") from None
    scenario = Scenario(
        path.name, path, files["rules"].read_text(), topology, decisions,
        read_pcap(files["in.pcap"]), read_pcap(files["out.pcap"]),
    )
    _ = scenario.table  # parse now: a broken rules file is reported before any packet runs
    return scenario


def save(path: Path, scenario: Scenario, readme: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "rules").write_text(scenario.rules_text)
    (path / "topology.json").write_text(json.dumps(scenario.topology.to_json(), indent=1) + "\n")
    (path / "decisions.json").write_text(json.dumps(decisions_to_json(scenario.decisions), indent=1) + "\n")
    write_pcap(path / "in.pcap", scenario.frames_in)
    write_pcap(path / "out.pcap", scenario.frames_out)
    (path / "README").write_text(readme.rstrip("\n") + "\n")

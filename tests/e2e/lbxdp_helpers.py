"""Driving the real `lbxdp` command inside a testbed's lb namespace, and reading what it reports.

The end-to-end tests of issue 4 run the product exactly as an operator would: the `lbxdp` entry
point of this venv, executed with `ip netns exec` in the balancer's namespace. These helpers keep
the tests short: attach once per topology (bcc compiles for seconds), then parse `-L -n`,
`-L -n --stats --exact` and `lbxdp status` into numbers, and capture on the client with tcpdump to
know exactly what was sent. Every wait is bounded.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pyroute2 import IPRoute, netns
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import rdpcap

from lb.datapath.testbed import Topology

LBXDP = str(Path(sys.executable).parent / "lbxdp")
ATTACH_TIMEOUT = 90.0  # bcc compiles the program when the daemon starts


class Lbxdp:
    """The lbxdp instance of one topology's lb namespace."""

    def __init__(self, topo: Topology) -> None:
        self.topo = topo

    def __call__(self, *args: str, check: bool = True, timeout: float = 15.0,
                 input: str | None = None) -> subprocess.CompletedProcess[str]:  # noqa: A002
        """`lbxdp ARGS…` in the lb namespace. On failure the daemon's log is in the message."""
        done = self.topo.run("lb", [LBXDP, *args], timeout=timeout, check=False, input=input)
        if check and done.returncode != 0:
            raise AssertionError(f"lbxdp {' '.join(args)} exited {done.returncode}: "
                                 f"{done.stderr.strip()}\n{self.log_tail()}")
        return done

    def attach(self, *ifaces: str, options: tuple[str, ...] = ()) -> str:
        names = ifaces or tuple(i.name for i in self.topo.lb_ifaces)
        return self("attach", *names, *options, timeout=ATTACH_TIMEOUT).stdout

    # -- where the daemon keeps its files --------------------------------------------------------

    @property
    def netns_id(self) -> str:
        out = self.topo.run("lb", ["stat", "-L", "-c", "%i", "/proc/self/ns/net"]).stdout.strip()
        return f"netns-{out}"

    @property
    def log_path(self) -> Path:
        return Path("/run/lbxdp") / self.netns_id / "daemon.log"

    @property
    def pin_dir(self) -> Path:
        return Path("/sys/fs/bpf/lbxdp") / self.netns_id

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no daemon log)"
        return "daemon log:\n" + "\n".join(text[-lines:])

    # -- configuration ---------------------------------------------------------------------------

    def service(self, vip_port: str, sched: str, reals: list[tuple[str, str]], *, udp: bool = False,
                extra: tuple[str, ...] = ()) -> None:
        """`-A` a service and `-a` each (RIP:PORT, forwarding flag[, -w W…]) real, in order."""
        proto = "-u" if udp else "-t"
        self("-A", proto, vip_port, "-s", sched, *extra)
        for real, *flags in reals:
            self("-a", proto, vip_port, "-r", real, *flags)

    # -- what it reports -------------------------------------------------------------------------

    def stats(self, vip_port: str, udp: bool = False) -> dict[str, list[int]]:
        """`-L -n --stats --exact -t|-u VIP:PORT` as {"PROT VIP:PORT" or "RIP:PORT": [Conns,
        InPkts, OutPkts, InBytes, OutBytes]}."""
        out = self("-L", "-n", "--stats", "--exact", "-u" if udp else "-t", vip_port).stdout
        rows: dict[str, list[int]] = {}
        for line in out.splitlines():
            m = re.match(r"^(TCP|UDP)\s+(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$", line)
            if m:
                rows[f"{m[1]} {m[2]}"] = [int(v) for v in m.groups()[2:]]
                continue
            m = re.match(r"^\s+->\s+(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$", line)
            if m:
                rows[m[1]] = [int(v) for v in m.groups()[1:]]
        return rows

    def conns(self, vip_port: str, udp: bool = False) -> dict[str, tuple[str, int, int, int]]:
        """The reals of one service from `-L -n -t|-u VIP:PORT`: RIP:PORT → (Forward, Weight,
        ActiveConn, InActConn)."""
        out = self("-L", "-n", "-u" if udp else "-t", vip_port).stdout
        rows = {}
        for line in out.splitlines():
            m = re.match(r"^\s+->\s+(\S+)\s+(\w+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$", line)
            if m:
                rows[m[1]] = (m[2], int(m[3]), int(m[4]), int(m[5]))
        return rows

    def status(self) -> Status:
        return Status.parse(self("status").stdout)


@dataclass(frozen=True)
class Status:
    """The numbers of `lbxdp status`."""

    text: str
    flows: int
    xdp_forwarded: int
    xdp_passed: int
    xdp_dropped: int
    first_packets: int
    reasons: dict[str, int]

    @classmethod
    def parse(cls, text: str) -> Status:
        def number(pattern: str) -> int:
            m = re.search(pattern, text)
            if not m:
                raise AssertionError(f"no {pattern!r} in status:\n{text}")
            return int(m[1])

        xdp = re.search(r"fast path \(XDP\) packets: (\d+) forwarded, (\d+) passed up, (\d+) dropped",
                        text)
        if not xdp:
            raise AssertionError(f"no fast-path line in status:\n{text}")
        reasons = {m[1]: int(m[2]) for m in re.finditer(r"^\s{4}(\w+)\s+(\d+)\s*$", text, re.M)}
        return cls(text, number(r"flows (\d+)"), int(xdp[1]), int(xdp[2]), int(xdp[3]),
                   number(r"first-packet path \(NFQUEUE\) packets: (\d+)"), reasons)


# -- what the client really sent: tcpdump in the client namespace ---------------------------------


@dataclass(frozen=True)
class Traffic:
    """Packets between the client and one VIP:port as the client's interface saw them. Bytes are
    IPv4 total lengths (what IPVS counts: skb->len at the IP layer)."""

    flows: int  # connections: TCP, distinct (address, port, ISN) of SYNs; UDP, (address, port)
    syns: int  # SYNs sent, retransmissions included
    tuples: int  # distinct client (address, port) pairs: fewer than flows when a port was reused
    in_pkts: int
    out_pkts: int
    in_bytes: int
    out_bytes: int


# Attach options of the tests of the first-packet path itself (NFQUEUE, Python's decisions and counters):
# every built-in scheduler is decided in XDP by default (issue 13), so they ask for the reference path.
FIRST_PATH = ("--sched-in", "daemon")


@contextmanager
def attached(topo: Topology, *options: str) -> Iterator[Lbxdp]:
    """lbxdp attached to the balancer's eth0 and eth1 (checked) with `options`, detached on the way out."""
    lbxdp = Lbxdp(topo)
    out = lbxdp.attach(options=options)
    assert re.search(r"eth0: XDP \w+", out) and re.search(r"eth1: XDP \w+", out), out
    try:
        yield lbxdp
    finally:
        lbxdp("detach", check=False)


def assert_torn_down(topo: Topology) -> None:
    """No namespace of the topology is left after its teardown (a leaked namespace is a bug)."""
    left = [n for n in netns.listnetns() if n.startswith(topo.prefix)]
    assert not left, left


@contextmanager
def capture(topo: Topology, vip: str, port: int, *, udp: bool = False,
            result: list[Traffic]) -> Iterator[None]:
    """Record the client's traffic to and from VIP:port while the body runs; appends the
    Traffic to `result` when the body is done (tcpdump flushed and stopped)."""
    pcap = topo.workdir / f"client-{time.monotonic_ns()}.pcap"
    proto = "udp" if udp else "tcp"
    log = topo.workdir / f"tcpdump-{time.monotonic_ns()}.log"
    with open(log, "wb") as err:
        proc = topo.spawn("client", ["tcpdump", "-i", "eth0", "-n", "-U", "--immediate-mode", "-B", "65536",
                                     "-w", str(pcap),
                                     f"{proto} and host {vip} and port {port}"], stderr=err)
    deadline = time.monotonic() + 5.0
    while b"listening on" not in log.read_bytes():
        if time.monotonic() > deadline or proc.poll() is not None:
            topo.stop(proc)
            raise RuntimeError(f"tcpdump did not start: {log.read_text(errors='replace')}")
        time.sleep(0.02)
    try:
        yield
        time.sleep(0.5)  # the last answers are on the wire and read by tcpdump
    finally:
        topo.stop(proc, grace=2.0)
    dropped = re.search(rb"(\d+) packets? dropped by kernel", log.read_bytes())
    if dropped is None or int(dropped[1]) != 0:
        raise RuntimeError(f"tcpdump lost packets; counts would be wrong: {log.read_text(errors='replace')}")
    result.append(_summarise(rdpcap(str(pcap)), topo.client.iface.mac, vip, port, udp))


def _summarise(packets: object, mac: str, vip: str, port: int, udp: bool) -> Traffic:
    """Only frames the client sent or was sent count: on a bridge (one-arm), a frame the lb sends
    to a real whose MAC the bridge has not learned yet is flooded, and the client's interface sees
    its own SYN again, now addressed to the real's MAC."""
    flows: set[tuple[str, int, int]] = set()
    tuples: set[tuple[str, int]] = set()
    syns = in_pkts = out_pkts = in_bytes = out_bytes = 0
    l4 = UDP if udp else TCP
    for pkt in packets:  # type: ignore[attr-defined]
        if IP not in pkt or l4 not in pkt:
            continue
        ip = pkt[IP]
        if Ether in pkt and mac not in (pkt[Ether].src, pkt[Ether].dst):
            continue
        if ip.dst == vip and pkt[l4].dport == port and pkt[Ether].src == mac:
            in_pkts += 1
            in_bytes += ip.len
            tuples.add((ip.src, pkt[l4].sport))
            if udp:
                flows.add((ip.src, pkt[l4].sport, 0))
            elif pkt[TCP].flags.S:
                syns += 1
                flows.add((ip.src, pkt[l4].sport, pkt[TCP].seq))
        elif ip.src == vip and pkt[l4].sport == port and pkt[Ether].dst == mac:
            out_pkts += 1
            out_bytes += ip.len
    return Traffic(len(flows), syns, len(tuples), in_pkts, out_pkts, in_bytes, out_bytes)


# -- kernel state in the lb namespace -------------------------------------------------------------


def xdp_attached(topo: Topology) -> dict[str, object]:
    """Interface name → its IFLA_XDP attribute, for interfaces of the lb that carry a program."""
    found: dict[str, object] = {}
    with IPRoute(netns=topo.lb.netns, flags=0) as ipr:
        for link in ipr.get_links():
            xdp = link.get_attr("IFLA_XDP")
            if xdp is not None and xdp.get_attr("IFLA_XDP_ATTACHED"):
                found[link.get_attr("IFLA_IFNAME")] = xdp
    return found


def lbxdp_processes(topo: Topology) -> list[int]:
    """Pids of lbxdp daemons whose network namespace is the lb's."""
    ns_id = Lbxdp(topo).netns_id.removeprefix("netns-")
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if str(Path(proc, "ns/net").stat().st_ino) != ns_id:
                continue
            cmdline = Path(proc, "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"lb.daemon.run" in cmdline:
            pids.append(int(proc.name))
    return pids


def tally(names: list[str | None]) -> dict[str | None, int]:
    counts: dict[str | None, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    return counts


def nothing_left(topo: Topology, lbxdp: Lbxdp, *, run_dir: bool = False) -> list[str]:
    """What of an lbxdp instance exists in the lb namespace (empty when nothing). `run_dir` also
    counts /run/lbxdp/netns-<inode>/ (a detach with a daemon keeps its log there; one without removes it)."""
    left = []
    if xdp := xdp_attached(topo):
        left.append(f"XDP on {sorted(xdp)}")
    rules = topo.run("lb", ["iptables-save"]).stdout
    if "LBXDP" in rules or "NFQUEUE" in rules:
        left.append(f"iptables: {[line for line in rules.splitlines() if 'LBXDP' in line or 'NFQUEUE' in line]}")
    if lbxdp.pin_dir.exists():
        left.append(f"pins {sorted(p.name for p in lbxdp.pin_dir.iterdir())}")
    if run_dir and lbxdp.log_path.parent.exists():
        left.append(f"run dir {sorted(p.name for p in lbxdp.log_path.parent.iterdir())}")
    if pids := lbxdp_processes(topo):
        left.append(f"daemon pids {pids}")
    return left

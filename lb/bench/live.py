"""The topology cases 3, 4 and 5 share: the real `lbxdp` daemon in a balancer namespace, nginx reals.

One two-arm topology (client with address aliases, balancer, bridge, 3 reals), the testbed's nginx
on every real with keep-alive on (case 4 measures both) on ports 80, 8080 and one port per
service of XDP_SERVICES, and in the balancer namespace `lbxdp attach eth0 eth1 --mode native
--max-flows 1048576` with one masquerading rr service VIP:80 → reals:80, configured with
ipvsadm's syntax through the CLI, as a user would. Its reals carry an upper threshold no run
reaches (THRESHOLD): a service with thresholds is decided by the daemon (`lbxdp -L` says
`daemon (connection thresholds set)`), so VIP:80 stays the NFQUEUE reference whatever XDP decides.
Native mode because the SYN generator's live XDP frames need an XDP program on the
receiving veth; the peers run XDP_PASS (`xdp_peers="pass"`) so native redirects are delivered
(docs/testbed.md).

The daemon is run exactly as shipped (`.venv/bin/lbxdp`, a background process); the bench talks to
its control socket from a thread inside the namespace (abstract Unix sockets are scoped by network
namespace), which costs a round trip instead of a Python start-up per status read.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lb.sched.registry import ENV_VAR

if TYPE_CHECKING:
    from lb.datapath.testbed import Topology

LBXDP = str(Path(sys.executable).parent / "lbxdp")
PORT = 80
OTHER_PORT = 8080  # the reals' port for every variant of case 4 but lbxdp
IPTABLES_PORT = 8081  # the VIP port of the kube-proxy DNAT chain (cases 3 and 4) → reals:OTHER_PORT
THRESHOLD = 1_000_000_000  # VIP:80's reals' -x: never reached, it keeps the service in the daemon
UDP_REAL_PORT = 5353  # the UDP services' port on the reals: nothing listens (lb.bench.newflows: why)
UDP_OTHER_PORT = 5354  # the same for the UDP iptables DNAT chain
UDP_IPTABLES_PORT = 8053  # the VIP port of the UDP kube-proxy DNAT chain → reals:UDP_OTHER_PORT
PLUGIN_PORT = 82  # the plugin round-robin service's VIP port (reals:80; case 3)
# A round robin written as a researcher's plugin (examples/plugin_scheduler/pyrr.py): XDP cannot run
# it, so every first packet of its service is decided by the daemon through NFQUEUE. The daemon
# and the CLI load it from the environment (lb.sched.registry.ENV_VAR).
PLUGIN_SCHED = "pyrr"
PLUGIN_SPEC = f"{Path(__file__).resolve().parents[2] / 'examples' / 'plugin_scheduler' / 'pyrr.py'}:PyRoundRobin"
MAX_FLOWS = 1_048_576
CLIENT_ALIASES = 8  # bpf/bench_syn.c's SYN_ADDRS: the SYN generator's source addresses
BPF_MAP_TYPE_LRU_HASH = 9  # include/uapi/linux/bpf.h


@dataclass(frozen=True)
class XdpService:
    """A masquerading service of the live daemon whose first packets XDP decides (issue 13), one
    per built-in scheduler kind the bench compares with iptables DNAT (cases 3 and 4).

    Each has its own port on the reals: lbxdp keeps a masqueraded flow's reverse entry (real:port →
    client:port) until the flow times out, and XDP never overwrites one, so a new flow of another
    service to the same real:port from a reused client port would go through NFQUEUE (lb.bench.tcp
    says how that once cost the iptables rows too)."""

    label: str  # what the rows and targets call it: "rr", "rr -p", "udp rr"
    port: int  # the VIP's port
    real_port: int
    sched: str
    options: tuple[str, ...] = ()  # more of `-A`'s options
    udp: bool = False


# mh-port and sh-port: the generator's flows come from 8 addresses, its ports spread them
# (VIP:82 is left to the plugin round robin's NFQUEUE row.)
XDP_SERVICES: tuple[XdpService, ...] = (
    XdpService("mh", 81, 8181, "mh", ("-b", "mh-port")),
    XdpService("rr", 83, 8183, "rr"),
    XdpService("wlc", 84, 8184, "wlc"),
    XdpService("sh", 85, 8185, "sh", ("-b", "sh-port")),
    XdpService("rr -p", 86, 8186, "rr", ("-p", "300")),
    XdpService("udp rr", 53, UDP_REAL_PORT, "rr", udp=True),
)
MH_PORT = XDP_SERVICES[0].port  # the in-kernel mh service's VIP port

@dataclass
class LiveBalancer:
    """A built topology with a running lbxdp daemon; `status()` is `lbxdp status --json`'s data."""

    topo: Topology
    port: int = PORT
    services: set[str] = field(default_factory=set)  # labels of the XDP_SERVICES ensure_service() added
    plugin_service: bool = False  # ensure_plugin_service() added it
    iptables_dnat: bool = False  # ensure_iptables() installed it

    def lbxdp(self, *words: str, stdin: str | None = None, timeout: float = 90.0
              ) -> subprocess.CompletedProcess[str]:
        done = self.topo.run("lb", [LBXDP, *words], input=stdin, timeout=timeout, check=False,
                             env={ENV_VAR: PLUGIN_SPEC})
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"lbxdp {' '.join(words[:3])} failed: {tail}")
        return done

    def status(self, timeout: float = 30.0) -> dict[str, Any]:
        from lb.daemon.client import send
        from lb.datapath.testbed import in_netns_call

        reply = in_netns_call(self.topo.lb.netns, lambda: send({"op": "status"}, timeout=timeout),
                              timeout=timeout + 5)
        if not reply.get("ok"):
            raise RuntimeError(f"lbxdp status: {reply.get('error')}")
        return dict(reply["data"])

    def scheduled(self) -> int:
        return int(self.status().get("first_path_events", {}).get("scheduled", 0))

    @property
    def pid(self) -> int:
        return int(self.status()["pid"])

    def rss_bytes(self) -> int:
        """VmRSS of the daemon (ip netns exec starts no PID namespace: the pid is ours to read)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise LookupError("no VmRSS line")

    def flow_maps_memlock(self) -> tuple[int, int]:
        """(bytes, maps): the kernel's memlock of the daemon's LRU maps of MAX_FLOWS entries
        (`flows` and `reverse`), from the fdinfo of the map descriptors the daemon holds."""
        total = found = 0
        pid = self.pid
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if Path(fd).readlink().name != "anon_inode:bpf-map":
                    continue
                fields = dict(line.split(":", 1) for line in
                              Path(f"/proc/{pid}/fdinfo/{fd.name}").read_text().splitlines() if ":" in line)
            except OSError:
                continue
            if (int(fields.get("map_type", "0")) == BPF_MAP_TYPE_LRU_HASH
                    and int(fields.get("max_entries", "0")) == MAX_FLOWS):
                total += int(fields["memlock"])
                found += 1
        return total, found


@contextmanager
def live_balancer(tick: Callable[[str], None], max_flows: int = MAX_FLOWS) -> Iterator[LiveBalancer]:
    """Build, start nginx and the daemon, configure the service; detach and tear down on exit."""
    from lb.datapath.testbed import two_arm
    from lb.datapath.testbed.servers import start_nginx

    tick("live daemon: building the topology, starting nginx")
    with two_arm(reals=3, xdp_peers="pass", client_aliases=CLIENT_ALIASES) as topo:
        for real in topo.reals:
            # PORT for lbxdp, OTHER_PORT for the other variants of case 4 (lb.bench.tcp: why)
            start_nginx(topo, real, PORT, OTHER_PORT, *(s.real_port for s in XDP_SERVICES if not s.udp),
                        keep_alive=True, backlog=4096)
        live = LiveBalancer(topo)
        tick("live daemon: lbxdp attach (bcc compiles the XDP program)")
        live.lbxdp("attach", "eth0", "eth1", "--mode", "native", f"--max-flows={max_flows}", timeout=120)
        try:
            vip = f"{topo.vip}:{PORT}"
            live.lbxdp("-A", "-t", vip, "-s", "rr")
            for real in topo.reals:
                live.lbxdp("-a", "-t", vip, "-r", f"{real.ip}:{PORT}", "-m", "-w", "1", "-x", str(THRESHOLD))
            _wait_serving(live)
            yield live
        finally:
            topo.run("lb", [LBXDP, "detach"], check=False, timeout=30)


def _wait_serving(live: LiveBalancer) -> None:
    """One request through the VIP, so the first measured connection finds everything resolved."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        done = live.topo.run("client", ["curl", "-s", "-m", "2", f"http://{live.topo.vip}:{PORT}/"],
                             check=False, timeout=5)
        if done.returncode == 0 and done.stdout.strip():
            return
        time.sleep(0.2)
    raise RuntimeError(f"no answer through lbxdp at {live.topo.vip}:{PORT} within 10 s")


def ensure_service(live: Any, service: XdpService) -> str:
    """`service` on the live daemon (VIP:port → reals:real_port, masquerading, weight 1), added
    once; its VIP:port. Cases 3 (lb.bench.newflows) and 4 (lb.bench.tcp) both offer it traffic.
    Takes any object with LiveBalancer's `topo`, `lbxdp` and `services` (the unit tests pass a stand-in)."""
    vip = f"{live.topo.vip}:{service.port}"
    proto = "-u" if service.udp else "-t"
    if service.label not in live.services:
        live.lbxdp("-A", proto, vip, "-s", service.sched, *service.options)
        for real in live.topo.reals:
            live.lbxdp("-a", proto, vip, "-r", f"{real.ip}:{service.real_port}", "-m", "-w", "1")
        live.services.add(service.label)
    return vip


def first_packets_decided(status: dict[str, Any], proto: str, vip: str) -> str:
    """Where `lbxdp status --json` says the service's first packets are decided ("xdp", or
    "daemon (why)"); "?" from a daemon that does not say."""
    return str(status.get("first_packets_decided", {}).get(f"{proto} {vip}", "?"))


def ensure_plugin_service(live: Any) -> str:
    """The plugin round-robin service VIP:PLUGIN_PORT → reals:80 (masquerading) on the live daemon,
    added once; its VIP:port. Takes what ensure_service() takes."""
    vip = f"{live.topo.vip}:{PLUGIN_PORT}"
    if not getattr(live, "plugin_service", False):
        live.lbxdp("-A", "-t", vip, "-s", PLUGIN_SCHED)
        for real in live.topo.reals:
            live.lbxdp("-a", "-t", vip, "-r", f"{real.ip}:80", "-m", "-w", "1")
        live.plugin_service = True
    return vip


def ensure_iptables(live: Any) -> None:
    """kube-proxy's DNAT chains in the balancer namespace, once: TCP VIP:IPTABLES_PORT →
    reals:OTHER_PORT (case 4's baseline; case 3 offers SYN bursts to it too) and UDP
    VIP:UDP_IPTABLES_PORT → reals:UDP_OTHER_PORT (case 3's baseline for new UDP flows)."""
    from lb.bench.kubeproxy import statistic_dnat

    if getattr(live, "iptables_dnat", False):
        return
    topo = live.topo
    for argv in statistic_dnat(topo.vip, "tcp", IPTABLES_PORT, [f"{r.ip}:{OTHER_PORT}" for r in topo.reals]):
        topo.run("lb", argv)
    for argv in statistic_dnat(topo.vip, "udp", UDP_IPTABLES_PORT, [f"{r.ip}:{UDP_OTHER_PORT}" for r in topo.reals]):
        topo.run("lb", argv)
    live.iptables_dnat = True

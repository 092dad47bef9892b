"""The daemon's interfaces: XDP attached to and detached from them, their TX ports in the maps, and
the iptables rules that send first packets to NFQUEUE (or past it while no daemon reads, --queue-bypass);
and who decides first packets (--sched-in), the other choice `lbxdp attach` makes.

`Links` is a mixin of lb.daemon.daemon.Daemon (the authority that calls these); the attributes it
names are the daemon's, set in its constructor.
"""

from __future__ import annotations

import logging

from lb.balancer.engine import Balancer
from lb.daemon import instance
from lb.daemon.firstpath import QUEUE_NUM, FirstPacketPath
from lb.daemon.kernelsched import KernelSched
from lb.daemon.schedin import CHOICES, XDP
from lb.daemon.status import no_daemon_policy
from lb.datapath import iptables, loader
from lb.datapath.interfaces import auto_prefers_generic, link_facts
from lb.datapath.maps import DatapathMaps

log = logging.getLogger("lbxdp")


class Links:
    """Attach, detach and the NFQUEUE rules, over the daemon's program, maps and interface list."""

    ifaces: dict[str, str]  # name → attach mode used
    tx_ifindexes: set[int]
    queue_bypass: bool
    sched_in: str
    kernel_sched: KernelSched
    dp: loader.Datapath
    maps: DatapathMaps
    first: FirstPacketPath
    balancer: Balancer

    def remove_everything(self) -> None:
        """Detach from every interface, remove rules and pins: the state `lbxdp detach` promises."""
        for name in list(self.ifaces):
            self._detach_one(name)
        iptables.remove()
        loader.unpin()
        try:
            instance.state_path().unlink()
        except FileNotFoundError:
            pass

    def attach(self, ifname: str, mode: str) -> str:
        facts = link_facts(ifname)
        if facts is None:
            raise RuntimeError(f"no interface '{ifname}' in this network namespace")
        if ifname in self.ifaces and mode == "auto":
            loader.attach(self.dp.prog_fd, ifname, loader.AttachMode(self.ifaces[ifname]))
            return f"{ifname}: already attached ({self.ifaces[ifname]}), adopted"
        chosen = loader.AttachMode(mode)
        why = ""
        if chosen is loader.AttachMode.AUTO and auto_prefers_generic(facts):
            chosen = loader.AttachMode.GENERIC
            why = " (auto: veth peers drop native XDP frames unless they run XDP themselves)"
        if ifname in self.ifaces and self.ifaces[ifname] != chosen.value and chosen is not loader.AttachMode.AUTO:
            loader.detach(ifname)  # switching modes needs the old attachment gone first
        used = loader.attach(self.dp.prog_fd, ifname, chosen)
        self.ifaces[ifname] = used.value
        self.maps.add_tx_port(facts.ifindex)
        self.tx_ifindexes.add(facts.ifindex)
        self.first.forget_links()
        self._sync_rules()
        return f"{ifname}: XDP attached ({used.value}){why}"

    def _detach_one(self, ifname: str) -> None:
        facts = link_facts(ifname)
        try:
            loader.detach(ifname)
        except loader.LoadError as exc:
            log.warning("%s", exc)
        if facts is not None:
            self.maps.delete_tx_port(facts.ifindex)
            self.tx_ifindexes.discard(facts.ifindex)
        self.ifaces.pop(ifname, None)
        self.first.forget_links()

    def _sync_rules(self) -> None:
        if self.ifaces:
            iptables.install(list(self.balancer.services), QUEUE_NUM, bypass=self.queue_bypass)

    def set_queue_bypass(self, bypass: object) -> None:
        """`lbxdp attach --queue-bypass|--no-queue-bypass` to a running daemon; None keeps the choice."""
        if isinstance(bypass, bool) and bypass != self.queue_bypass:
            self.queue_bypass = bypass
            try:
                self._sync_rules()
            except Exception:
                self.queue_bypass = not bypass  # the rules did not change: neither does the choice
                raise
            log.info("first packets with no daemon: %s", no_daemon_policy(bypass))

    def set_sched_in(self, sched_in: object) -> None:
        """`lbxdp attach --sched-in xdp|daemon` to a running daemon; None keeps the choice. Every
        service's XDP state is written or cleared at once, so the next first packet follows it."""
        if sched_in in CHOICES and sched_in != self.sched_in:
            self.sched_in = str(sched_in)
            self.kernel_sched.enabled = self.sched_in == XDP
            self.kernel_sched.sync(self.balancer.services)
            log.info("first packets decided in: %s (--sched-in %s)", self.sched_in, self.sched_in)

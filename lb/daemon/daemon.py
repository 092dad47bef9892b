"""The lbxdp daemon: configuration authority, first-packet path and flow sweeper of one namespace.

One thread, one loop: NFQUEUE packets (first packets of flows XDP could not place), control
requests from `lbxdp` commands, and a periodic tick (flow expiry, connection counts, rates, health
results, saved state). Everything it knows that XDP needs is written into the pinned maps, so when
it dies the program keeps forwarding established flows, and a new daemon adopts the maps and the
saved configuration.
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import signal
import socket
import time
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from lb.config.ipvsadm import Command, Verb
from lb.config.health import load_rules_file
from lb.config.table import ServiceTable
from lb.daemon import instance
from lb.daemon.control import ControlServer
from lb.daemon.engine import Balancer, NoDestination, Placement
from lb.daemon.firstpacket import read_packet, wrap_in_frame
from lb.daemon.health import DeadFlows, HealthCheck
from lb.daemon.healthmon import HealthMonitor
from lb.daemon.lifetime import Timeouts, is_expired, phase_of
from lb.daemon.protocol import reply_error, reply_ok
from lb.datapath import iptables, loader
from lb.datapath.interfaces import LinkFacts, auto_prefers_generic, link_facts
from lb.datapath.neighbours import NeighbourResolver
from lb.datapath.sender import FrameSender
from lb.model import ConfigError, FlowKey, Forwarding, RealKey, RealServer, ServiceKey
from lb.render import render_command, render_health
from lb.rewrite import process
from lb.rewrite.fib import FibResult, FibStatus
from lb.rewrite.verdicts import Reason, Verdict
from lb.tables import FlowEntry, RealEntry, ServiceEntry, Tables

log = logging.getLogger("lbxdp")

QUEUE_NUM = 4711  # NFQUEUE numbers are per network namespace, so one fixed number never collides
TICK_SECONDS = 1.0
FIB_CACHE_SECONDS = 1.0  # how long the first-packet path trusts a next hop it looked up
HASH_SCHEDULERS = frozenset({"sh", "dh", "mh"})  # re-derive the same real for a mid-flow miss


@dataclass
class FirstPathCounters:
    """What the first-packet path did: packets it saw, and events by name (shown by `lbxdp status`)."""

    packets: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def bump(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1


class Daemon:
    def __init__(self, tunables: loader.Tunables = loader.Tunables(), adopt_from: list[str] | None = None) -> None:
        self.started = time.time()
        self.tunables = tunables
        self.table = ServiceTable()
        self.balancer = Balancer(tunables.max_services - 1, tunables.max_reals - 1)
        self.health_checks: dict[ServiceKey, HealthCheck] = {}
        self.ifaces: dict[str, str] = {}  # name → attach mode used
        self.conns: dict[int, int] = {}  # real id → connections scheduled (ipvsadm's Conns)
        # real id → [packets, bytes] of first packets forwarded from here: XDP never counted them,
        # and ipvsadm's InPkts/InBytes include every packet of a connection.
        self.first_traffic: dict[int, list[int]] = {}
        self.first = FirstPathCounters()
        self.rates: dict[int, dict[str, float]] = {}
        self._last_sample: tuple[float, dict[int, Any]] | None = None
        self._stop = False
        self._stopping_for_detach = False
        self.control = ControlServer()  # first: refuses to start beside another daemon
        remove_stale_instances()
        if adopt_from:
            loader.ensure_bpffs()
            adopted = loader.pin_maps_of_attached(adopt_from, loader.pin_dir_for())
            if adopted:
                log.info("adopted the maps of the program attached to %s: %s", ", ".join(adopt_from), ", ".join(adopted))
        self.dp = loader.load(tunables)
        self.maps = self.dp.maps
        self.sender = FrameSender()
        self.resolver = NeighbourResolver()
        self.health = HealthMonitor()
        self.nfq = self._bind_queue()
        self.tx_ifindexes: set[int] = set()
        self.tunnel_source_override: IPv4Address | None = None
        self.draining: dict[int, RealServer] = {}  # deleted reals whose flows are kept until they end
        self.flow_count = 0  # flows in the table as of the last sweep, plus those installed since
        self._ticks = 0
        self._dirty = False
        self._links: dict[int, LinkFacts] = {}
        self._fib_cache: dict[IPv4Address, tuple[FibResult, float]] = {}

    # -- start-up and shutdown -------------------------------------------------------------------

    @staticmethod
    def _bind_queue() -> Any:
        from netfilterqueue import NetfilterQueue

        nfq = NetfilterQueue()
        try:
            nfq.bind(QUEUE_NUM, _trampoline, max_len=4096)
        except OSError as exc:
            raise RuntimeError(f"cannot bind NFQUEUE {QUEUE_NUM}: {exc}") from exc
        return nfq

    @staticmethod
    def saved_tunable(name: str) -> int | None:
        try:
            return json.loads(instance.state_path().read_text()).get("tunables", {}).get(name)
        except (OSError, ValueError):
            return None

    @staticmethod
    def saved_ifaces() -> list[str]:
        """The interfaces the previous daemon of this namespace had attached (from its saved state)."""
        try:
            return list(json.loads(instance.state_path().read_text()).get("ifaces", {}))
        except (OSError, ValueError):
            return []

    def adopt_saved_state(self) -> bool:
        """Come back as the previous daemon left things: configuration, ids, interfaces, counts."""
        path = instance.state_path()
        try:
            state = json.loads(path.read_text())
        except FileNotFoundError:
            return False
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable saved state %s: %s", path, exc)
            return False
        self.table = ServiceTable.from_dict(state["table"])
        self.balancer.adopt_ids(
            {_service_key(k): v for k, v in state.get("service_ids", {}).items()},
            {(_service_key(k), _real_key(r)): v for k, reals in state.get("real_ids", {}).items() for r, v in reals.items()},
        )
        self.health_checks = {_service_key(k): HealthCheck.from_dict(v) for k, v in state.get("health", {}).items()}
        self.conns = {int(k): v for k, v in state.get("conns", {}).items()}
        self.first_traffic = {int(k): list(v) for k, v in state.get("first_traffic", {}).items()}
        self._resync()
        for name, mode in state.get("ifaces", {}).items():
            try:
                self.attach(name, "auto" if mode not in ("native", "generic") else mode)
            except (RuntimeError, loader.LoadError) as exc:
                log.warning("could not re-attach %s: %s", name, exc)
        return True

    def save_state(self) -> None:
        path = instance.state_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        service_ids = {_skey_text(k): s.service_id for k, s in self.balancer.services.items()}
        real_ids = {
            _skey_text(k): {str(r): rs.real_id for r, rs in s.reals.items()} for k, s in self.balancer.services.items()
        }
        state = {
            "table": self.table.snapshot(),
            "service_ids": service_ids,
            "real_ids": real_ids,
            "health": {_skey_text(k): v.to_dict() for k, v in self.health_checks.items()},
            "conns": self.conns,
            "first_traffic": self.first_traffic,
            "ifaces": self.ifaces,
            "tunables": {"max_flows": self.tunables.max_flows},
        }
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, path)

    def close(self) -> None:
        for closer in (self.nfq.unbind, self.control.close, self.sender.close, self.resolver.close, self.health.stop):
            try:
                closer()
            except Exception as exc:  # noqa: BLE001 - keep closing the rest
                log.debug("close: %s", exc)
        self.dp.close()

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

    # -- interfaces ------------------------------------------------------------------------------

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
        self._links.clear()
        used = loader.attach(self.dp.prog_fd, ifname, chosen)
        self.ifaces[ifname] = used.value
        self.maps.add_tx_port(facts.ifindex)
        self.tx_ifindexes.add(facts.ifindex)
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

    # -- configuration ---------------------------------------------------------------------------

    def _resync(self) -> None:
        """Push the configuration into the engine and the maps (services, reals, rules)."""
        owners = {
            r.real_id: (key, r.real) for key, state in self.balancer.services.items() for r in state.reals.values()
        }
        gone = self.balancer.sync(self.table)
        for real_id in gone:
            service, real = owners[real_id]
            check = self.health_checks.get(service)
            if service in self.balancer.services and check is not None and check.dead_flows is DeadFlows.KEEP:
                # `-d` with dead flows kept: the real's flows drain; its slot goes when they are gone.
                self.draining[real_id] = real
                continue
            self._retire_real(real_id)
        wanted = {key: state.service_id for key, state in self.balancer.services.items()}
        current = self.maps.read_services()
        for key in current.keys() - wanted.keys():
            self.maps.delete_service(key)
        for key, sid in wanted.items():
            self.maps.set_service(key, ServiceEntry(sid))
            for rstate in self.balancer.services[key].reals.values():
                real = rstate.real
                self.maps.set_real(rstate.real_id, RealEntry(real.address, real.port, real.forwarding))
        self._update_tunnel_source()
        for key in list(self.health_checks):
            if key not in wanted:
                del self.health_checks[key]
        self.health.configure(self._health_targets())
        self._sync_rules()

    def _retire_real(self, real_id: int) -> None:
        self._expire_real(real_id)
        self.maps.delete_real(real_id)
        self.conns.pop(real_id, None)
        self.first_traffic.pop(real_id, None)
        self.draining.pop(real_id, None)
        self.balancer.release_real_ids([real_id])

    def _update_tunnel_source(self) -> None:
        """IPIP packets leave from the address this host uses toward the (first) tunnelled real,
        unless the operator set one (`lbxdp attach --tunnel-source`)."""
        if self.tunnel_source_override is not None:
            self.maps.set_tunnel_source(self.tunnel_source_override)
            return
        for state in self.balancer.services.values():
            for rstate in state.reals.values():
                if rstate.real.forwarding is Forwarding.TUNNEL:
                    source = self.resolver.source_for(rstate.real.address)
                    if source is not None:
                        self.maps.set_tunnel_source(source)
                        return

    def _sync_rules(self) -> None:
        if self.ifaces:
            iptables.install([key for key in self.balancer.services], QUEUE_NUM)

    def _health_targets(self) -> dict[tuple[ServiceKey, RealKey], tuple[IPv4Address, int, HealthCheck]]:
        targets = {}
        for key, check in self.health_checks.items():
            state = self.balancer.services.get(key)
            if state is None:
                continue
            for rkey, rstate in state.reals.items():
                targets[(key, rkey)] = (rstate.real.address, rstate.real.port, check)
        return targets

    def apply_command(self, command: Command) -> str:
        if command.verb in (Verb.LIST, Verb.SAVE):
            return self._render(command)
        if command.verb is Verb.ZERO:
            self.table.apply(command)
            self._zero(command.service)
            return ""
        change = self.table.apply(command)
        self._resync()
        self.save_state()
        log.info("applied: %s (%s)", command, change.verb.value)
        return ""

    def _zero(self, service: ServiceKey | None) -> None:
        states = [self.balancer.services[service]] if service else list(self.balancer.services.values())
        sids = [s.service_id for s in states]
        rids = [r.real_id for s in states for r in s.reals.values()]
        self.maps.reset_counters(sids, rids)
        for rid in rids:
            self.conns[rid] = 0
            self.first_traffic.pop(rid, None)
        self._last_sample = None

    # -- the first-packet path -------------------------------------------------------------------

    def on_packet(self, pkt: Any) -> None:
        try:
            self._first_packet(pkt)
        except Exception:  # noqa: BLE001 - one bad packet must not stop the daemon
            log.exception("first-packet path failed; packet dropped")
            self.first.bump("error")
            pkt.drop()

    def _first_packet(self, pkt: Any) -> None:
        self.first.packets += 1
        l3 = pkt.get_payload()
        queued = read_packet(l3)
        if queued is None:
            self.first.bump("unschedulable")
            pkt.drop()
            return
        flow = queued.flow
        state = self.balancer.service_for(flow)
        if state is None:
            self.first.bump("no_service")
            pkt.drop()
            return
        entry = self.maps.get_flow(flow)
        now = time.monotonic()
        if entry is not None and self.balancer.real_by_id(entry.real_id) is not None:
            placement = self._placement_for(entry.real_id)
            self.first.bump("existing_flow")
        elif not queued.opens_flow and state.service.scheduler not in HASH_SCHEDULERS:
            # IPVS drops a mid-connection packet it has no entry for (unless sloppy_tcp).
            self.first.bump("no_flow_not_syn")
            pkt.drop()
            return
        elif self._table_full():
            # Never let a new flow push an established one out of the LRU (a SYN flood would):
            # refuse it, as IPVS's drop_entry does under memory pressure. The client retries.
            self.first.bump("refused_table_full")
            pkt.drop()
            return
        else:
            try:
                placement = self.balancer.place(flow, now)
            except NoDestination:
                self.first.bump("no_destination")
                pkt.drop()
                return
            self._install(flow, placement)
            self.first.bump("scheduled")
        self._forward(pkt, l3, flow, placement)

    @property
    def flow_limit(self) -> int:
        """How many flows the daemon lets the table hold. BPF's LRU keeps part of its free list per
        CPU and starts evicting before max_entries, so the limit stays below that by a margin."""
        capacity = self.tunables.max_flows
        return max(1, min(int(capacity * 0.9), capacity - 256 * (os.cpu_count() or 1)))

    def _table_full(self) -> bool:
        if self.flow_count < self.flow_limit:
            return False
        self._prune_half_open()
        return self.flow_count >= self.flow_limit

    def _prune_half_open(self) -> None:
        """Under pressure, half-open flows (no handshake seen) older than a second go first."""
        now_ns = time.monotonic_ns()
        flows, _ = self.maps.read_flows()
        kept = 0
        for flow, entry in flows.items():
            if not entry.tcp_seen and flow.proto.name == "TCP" and now_ns - entry.last_seen_ns > 1e9:
                self._remove_flow(flow, entry.real_id)
                self.first.bump("pruned_half_open")
            else:
                kept += 1
        self.flow_count = kept

    def _placement_for(self, real_id: int) -> Placement:
        found = self.balancer.real_by_id(real_id)
        assert found is not None
        sstate, rstate = found
        return Placement(sstate.service, sstate.service_id, rstate.real, rstate.real_id)

    def _install(self, flow: FlowKey, placement: Placement) -> None:
        tables = self._tables_for(flow, placement)
        tables.install_flow(flow, placement.real_id)
        stamp = time.monotonic_ns()  # the clock bpf_ktime_get_ns() reads: a new flow is not idle
        tables.flows[flow] = FlowEntry(placement.real_id, placement.service_id, stamp)
        for rkey, rentry in list(tables.reverse.items()):
            tables.reverse[rkey] = type(rentry)(rentry.vip, rentry.vport, rentry.real_id, rentry.service_id, stamp)
        self.maps.install_flow(tables, flow)
        self.flow_count += 1
        self.conns[placement.real_id] = self.conns.get(placement.real_id, 0) + 1
        self._dirty = True
        found = self.balancer.real_by_id(placement.real_id)
        if found is not None:
            # Count it now (as a connection not yet established), so lc/wlc/sed/nq see it before
            # the next sweep recounts from the flow table.
            found[1].dest.inactive += 1

    def _tables_for(self, flow: FlowKey, placement: Placement) -> Tables:
        """The slice of the maps the rewrite model needs to treat this one flow as XDP would."""
        tables = Tables(tx_ports=set(self.tx_ifindexes), tunnel_source=self._tunnel_source())
        tables.services[flow.service_key] = ServiceEntry(placement.service_id)
        real = placement.real
        tables.reals[placement.real_id] = RealEntry(real.address, real.port, real.forwarding)
        return tables

    def _tunnel_source(self) -> IPv4Address | None:
        return self.maps.tunnel_source()

    def _link(self, ifindex: int) -> LinkFacts | None:
        """Interface facts by index, cached: netlink round trips have no place on the packet path."""
        facts = self._links.get(ifindex)
        if facts is None:
            try:
                facts = link_facts(socket.if_indextoname(ifindex))
            except OSError:
                return None
            if facts is not None:
                self._links[ifindex] = facts
        return facts

    def _forward(self, pkt: Any, l3: bytes, flow: FlowKey, placement: Placement) -> None:
        ingress = pkt.indev
        facts = self._link(ingress)
        hw = pkt.get_hw()
        src_mac = bytes(hw[:6]) if hw else b"\0" * 6
        frame = wrap_in_frame(l3, facts.mac if facts else b"\0" * 6, src_mac)
        tables = self._tables_for(flow, placement)
        tables.install_flow(flow, placement.real_id)
        result = process(frame, tables, self._fib, ingress)
        if result.verdict in (Verdict.TX, Verdict.REDIRECT):
            assert result.egress_ifindex is not None
            self.sender.send(result.frame_out, result.egress_ifindex)
            pkt.drop()
            self.first.bump("forwarded")
            self._count_first(placement.real_id, len(l3))
            return
        if result.reason is Reason.PASS_NO_NEIGH:
            self.resolver.resolve(placement.real.address)
            if placement.real.forwarding is Forwarding.ROUTE:
                # Only a MAC can carry a direct-routed packet: wait for ARP; the client retries.
                self.first.bump("waiting_for_neighbour")
                pkt.drop()
                return
            # The model rewrote L3; the kernel routes it and resolves the neighbour itself.
            pkt.set_payload(result.frame_out[14:])
            pkt.accept()
            self.first.bump("forwarded_by_kernel")
            self._count_first(placement.real_id, len(l3))
            return
        if result.reason is Reason.PASS_TTL_EXCEEDED:
            pkt.accept()  # the kernel answers with ICMP time exceeded
            self.first.bump("ttl_exceeded")
            return
        self.first.bump(f"dropped_{result.reason.name.lower()}")
        pkt.drop()

    def _count_first(self, real_id: int, ip_bytes: int) -> None:
        counted = self.first_traffic.setdefault(real_id, [0, 0])
        counted[0] += 1
        counted[1] += ip_bytes

    def _fib(self, dst: IPv4Address, ingress_ifindex: int) -> FibResult:
        """bpf_fib_lookup's answer for the first packet, from rtnetlink. A resolved next hop is
        cached for FIB_CACHE_SECONDS (XDP asks the kernel on its own for every later packet)."""
        now = time.monotonic()
        cached = self._fib_cache.get(dst)
        if cached is not None and cached[1] > now:
            return cached[0]
        hop = self.resolver.lookup(dst)
        if hop is None:
            return FibResult(FibStatus.NOT_FWDED)
        if hop.dmac is None:
            return FibResult(FibStatus.NO_NEIGH, hop.ifindex)
        facts = self._link(hop.ifindex)
        result = FibResult(FibStatus.SUCCESS, hop.ifindex, hop.smac, hop.dmac, facts.mtu if facts else 1500)
        self._fib_cache[dst] = (result, now + FIB_CACHE_SECONDS)
        return result

    # -- the periodic tick -----------------------------------------------------------------------

    def tick(self) -> None:
        self._ticks += 1
        self._sweep()
        if self._dirty:
            self.save_state()  # counters a SIGKILLed daemon's successor continues from
            self._dirty = False
        self._sample_rates()
        for (skey, rkey), healthy, detail in self.health.results():
            if self.balancer.set_health(skey, rkey, healthy):
                log.info("real %s of %s is %s: %s", rkey, skey, "up" if healthy else "down", detail)
                check = self.health_checks.get(skey)
                if not healthy and check is not None and check.dead_flows is DeadFlows.EXPIRE:
                    rstate = self.balancer.services[skey].reals.get(rkey)
                    if rstate is not None:
                        self._expire_real(rstate.real_id)

    def _sweep(self) -> None:
        """Expire idle flows by IPVS's timeouts and recount active/inactive connections per real."""
        timeouts = self.timeouts
        now_ns = time.monotonic_ns()
        flows, reverse = self.maps.read_flows()
        counts: dict[int, tuple[int, int]] = {}
        for flow, entry in flows.items():
            rev = reverse.get(self._reverse_key(flow, entry.real_id))
            last = max(entry.last_seen_ns, rev.last_seen_ns if rev else 0)
            seen = int(entry.tcp_seen) | (int(rev.tcp_seen) if rev else 0)
            idle = (now_ns - last) / 1e9
            if is_expired(flow.proto, seen, idle, timeouts):
                self._remove_flow(flow, entry.real_id)
                continue
            active, inactive = counts.get(entry.real_id, (0, 0))
            if phase_of(flow.proto, seen).active:
                active += 1
            else:
                inactive += 1
            counts[entry.real_id] = (active, inactive)
            self.balancer.note_open_flow(flow, time.monotonic())
        self.balancer.set_counts(counts)
        self.balancer.persistence.sweep(time.monotonic())
        self.flow_count = sum(a + i for a, i in counts.values())
        for real_id in [r for r in self.draining if r not in counts]:
            log.info("real id %d drained: removing its slot", real_id)
            self._retire_real(real_id)

    @property
    def timeouts(self) -> Timeouts:
        t = self.table.timeouts
        return Timeouts(tcp=t.tcp, tcpfin=t.tcpfin, udp=t.udp)

    def _real(self, real_id: int) -> RealServer | None:
        found = self.balancer.real_by_id(real_id)
        return found[1].real if found is not None else self.draining.get(real_id)

    def _reverse_key(self, flow: FlowKey, real_id: int) -> FlowKey | None:
        real = self._real(real_id)
        if real is None or real.forwarding is not Forwarding.MASQ:
            return None
        return FlowKey(flow.proto, real.address, real.port, flow.saddr, flow.sport)

    def _remove_flow(self, flow: FlowKey, real_id: int) -> None:
        rkey = self._reverse_key(flow, real_id)
        self.maps.delete_flow(flow)
        if rkey is not None:
            self.maps.delete_reverse(rkey)

    def _expire_real(self, real_id: int) -> None:
        """Remove every flow to a real that is gone or dead, so its clients reconnect elsewhere."""
        flows, reverse = self.maps.read_flows()
        for flow, entry in flows.items():
            if entry.real_id == real_id:
                self.maps.delete_flow(flow)
        for rkey, rentry in reverse.items():
            if rentry.real_id == real_id:
                self.maps.delete_reverse(rkey)

    def _sample_rates(self) -> None:
        now = time.monotonic()
        rids = [r.real_id for s in self.balancer.services.values() for r in s.reals.values()]
        traffic = self.maps.real_traffic(rids)
        sample = {rid: (traffic[rid], self.conns.get(rid, 0)) for rid in rids}
        if self._last_sample is not None:
            then, before = self._last_sample
            dt = max(now - then, 1e-3)
            for rid, (t, conns) in sample.items():
                if rid not in before:
                    continue
                t0, c0 = before[rid]
                self.rates[rid] = {
                    "cps": (conns - c0) / dt,
                    "inpps": (t.in_packets - t0.in_packets) / dt,
                    "outpps": (t.out_packets - t0.out_packets) / dt,
                    "inbps": (t.in_bytes - t0.in_bytes) / dt,
                    "outbps": (t.out_bytes - t0.out_bytes) / dt,
                }
        self._last_sample = (now, sample)

    # -- listings --------------------------------------------------------------------------------

    def numbers(self) -> tuple[dict[ServiceKey, dict[str, float]], dict[tuple[ServiceKey, RealKey], dict[str, float]]]:
        service_numbers: dict[ServiceKey, dict[str, float]] = {}
        real_numbers: dict[tuple[ServiceKey, RealKey], dict[str, float]] = {}
        for key, state in self.balancer.services.items():
            total: dict[str, float] = {}
            traffic = self.maps.real_traffic([r.real_id for r in state.reals.values()])
            for rkey, rstate in state.reals.items():
                t = traffic[rstate.real_id]
                first_packets, first_bytes = self.first_traffic.get(rstate.real_id, (0, 0))
                numbers = {
                    "active": rstate.dest.active,
                    "inactive": rstate.dest.inactive,
                    "conns": self.conns.get(rstate.real_id, 0),
                    "inpkts": t.in_packets + first_packets,
                    "outpkts": t.out_packets,
                    "inbytes": t.in_bytes + first_bytes,
                    "outbytes": t.out_bytes,
                    **self.rates.get(rstate.real_id, {}),
                }
                real_numbers[(key, rkey)] = numbers
                for name, value in numbers.items():
                    total[name] = total.get(name, 0) + value
            service_numbers[key] = total
        return service_numbers, real_numbers

    def connections(self) -> list[dict[str, Any]]:
        rows = []
        now_ns = time.monotonic_ns()
        flows, reverse = self.maps.read_flows()
        timeouts = self.timeouts
        for flow, entry in flows.items():
            real = self._real(entry.real_id)
            if real is None:
                continue
            rev = reverse.get(self._reverse_key(flow, entry.real_id))
            last = max(entry.last_seen_ns, rev.last_seen_ns if rev else 0)
            seen = int(entry.tcp_seen) | (int(rev.tcp_seen) if rev else 0)
            phase = phase_of(flow.proto, seen)
            expire = max(0, timeouts.for_phase(phase) - (now_ns - last) / 1e9)
            rows.append(
                {
                    "proto": flow.proto.name, "expire": int(expire), "state": phase.value,
                    "saddr": str(flow.saddr), "sport": flow.sport, "vaddr": str(flow.daddr), "vport": flow.dport,
                    "daddr": str(real.address), "dport": real.port,
                }
            )
        return rows

    def _render(self, command: Command) -> str:
        service_numbers, real_numbers = self.numbers()
        connections = self.connections() if command.connection else ()
        text = render_command(
            command, self.table, service_numbers, real_numbers, connections, size=self.tunables.max_flows
        )
        if command.verb is Verb.LIST and not command.connection:
            text += render_health(self._health_rows(command.service))
        return text

    def _health_rows(self, only: ServiceKey | None) -> list[tuple[Any, Any, list[tuple[Any, bool, str]]]]:
        rows = []
        states = self.health.states()
        for key, check in self.health_checks.items():
            if only is not None and key != only or key not in self.balancer.services:
                continue
            reals = []
            for rkey in self.balancer.services[key].reals:
                state = states.get((key, rkey))
                reals.append((rkey, state.up if state else True, state.last_result if state else "not checked"))
            rows.append((key, check, reals))
        return rows

    def status_data(self) -> dict[str, Any]:
        """`lbxdp status --json`: the same facts as the text, for scripts and the demo."""
        reasons = self.maps.reason_counts()
        flows, _ = self.maps.read_flows()
        return {
            "pid": os.getpid(),
            "ifaces": dict(self.ifaces),
            "services": len(self.balancer.services),
            "flows": len(flows),
            "xdp_forwarded": sum(n for r, n in reasons.items() if r.verdict in (Verdict.TX, Verdict.REDIRECT)),
            "xdp_reasons": {r.name.lower(): n for r, n in reasons.items()},
            "first_path_packets": self.first.packets,
            "first_path_events": dict(self.first.counts),
        }

    def status_text(self) -> str:
        reasons = self.maps.reason_counts()
        fast = sum(n for r, n in reasons.items() if r.verdict in (Verdict.TX, Verdict.REDIRECT))
        passed = sum(n for r, n in reasons.items() if r.verdict is Verdict.PASS)
        dropped = sum(n for r, n in reasons.items() if r.verdict in (Verdict.DROP, Verdict.ABORTED))
        lines = [f"lbxdp daemon pid {os.getpid()}, up {time.time() - self.started:.0f} s, log {instance.log_path()}"]
        for name, mode in self.ifaces.items():
            lines.append(f"  {name}: XDP {mode}")
        if not self.ifaces:
            lines.append("  no interface attached")
        flows, _ = self.maps.read_flows()
        lines.append(f"  services {len(self.balancer.services)}, flows {len(flows)}")
        lines.append(f"  fast path (XDP) packets: {fast} forwarded, {passed} passed up, {dropped} dropped")
        first = ", ".join(f"{k} {v}" for k, v in sorted(self.first.counts.items())) or "none"
        lines.append(f"  first-packet path (NFQUEUE) packets: {self.first.packets} ({first})")
        for reason, n in reasons.items():
            if n:
                lines.append(f"    {reason.name.lower():<22} {n}")
        return "\n".join(lines) + "\n"

    # -- control requests ------------------------------------------------------------------------

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        try:
            if op == "ping":
                return reply_ok("pong")
            if op == "status":
                return reply_ok(self.status_text(), data=self.status_data())
            if op == "ipvsadm":
                return reply_ok(self.apply_command(Command.from_dict(request.get("command", {}))))
            if op == "attach":
                lines = [self.attach(name, request.get("mode", "auto")) for name in request.get("ifaces", [])]
                if request.get("config"):
                    self._load_config(Path(request["config"]))
                self.save_state()
                return reply_ok("\n".join(lines) + "\n")
            if op == "detach":
                names = request.get("ifaces") or list(self.ifaces)
                unknown = [n for n in names if n not in self.ifaces]
                if unknown:
                    return reply_error(f"not attached to: {', '.join(unknown)}")
                for name in names:
                    self._detach_one(name)
                if not self.ifaces:
                    self.remove_everything()
                    self._stop = True
                    self._stopping_for_detach = True
                    return reply_ok(f"detached {', '.join(names)}; daemon stopping\n", stopping=True)
                self.save_state()
                return reply_ok(f"detached {', '.join(names)}\n")
            if op == "health":
                return reply_ok(self._set_health(request))
        except ConfigError as exc:
            return reply_error(str(exc))
        except (RuntimeError, loader.LoadError, ValueError, OSError) as exc:
            return reply_error(str(exc))
        return reply_error(f"unknown request {op!r}")

    def _load_config(self, path: Path) -> None:
        self.table, health = load_rules_file(path.read_text(), str(path), self.table)
        self._resync()
        for rule in health:
            self.health_checks[rule.service] = rule.check
        self.health.configure(self._health_targets())

    def _set_health(self, request: dict[str, Any]) -> str:
        key = _service_key(request["service"])
        if key not in self.balancer.services:
            raise ConfigError(f"No such service: {key}")
        check = HealthCheck.from_dict(request["check"])
        self.health_checks[key] = check
        self.health.configure(self._health_targets())
        self.save_state()
        return f"health check for {key}: {check.kind.value}\n"

    # -- the loop --------------------------------------------------------------------------------

    def run(self) -> None:
        global _current
        _current = self
        sel = selectors.DefaultSelector()
        sel.register(self.nfq.get_fd(), selectors.EVENT_READ, "nfq")
        sel.register(self.control, selectors.EVENT_READ, "control")
        sel.register(self.health.fileno(), selectors.EVENT_READ, "health")
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        next_tick = time.monotonic() + TICK_SECONDS
        while not self._stop:
            timeout = max(0.0, next_tick - time.monotonic())
            for key, _ in sel.select(timeout):
                if key.data == "nfq":
                    self.nfq.run(block=False)
                elif key.data == "control":
                    self.control.serve_one(self.handle)
                else:
                    self.health.drain_wakeups()
            if time.monotonic() >= next_tick:
                try:
                    self.tick()
                except Exception:  # noqa: BLE001 - the sweeper must not take the daemon down
                    log.exception("periodic tick failed")
                next_tick = time.monotonic() + TICK_SECONDS
        sel.close()
        if not self._stopping_for_detach:
            self.save_state()

    def _on_signal(self, signum: int, _frame: Any) -> None:
        log.info("signal %d: stopping (XDP, rules and flows stay; `lbxdp detach` removes them)", signum)
        self._stop = True


_current: Daemon | None = None


def remove_stale_instances() -> None:
    """Pins and run directories of namespaces deleted without `lbxdp detach` (a test topology torn
    down, a container gone) would hold their maps' memory forever: remove them."""
    import shutil

    for root in (loader.PIN_ROOT, instance.RUN_ROOT):
        for stale in instance.stale_dirs(root):
            log.info("removing %s: its network namespace is gone", stale)
            shutil.rmtree(stale, ignore_errors=True)


def _trampoline(pkt: Any) -> None:
    """netfilterqueue wants a plain callable at bind time, before the daemon is fully built."""
    if _current is None:
        pkt.drop()
        return
    _current.on_packet(pkt)


def _skey_text(key: ServiceKey) -> str:
    return f"{key.proto.name}:{key.vip}:{key.port}"


def _service_key(text: str | dict[str, Any]) -> ServiceKey:
    from lb.model import Protocol

    if isinstance(text, dict):
        return ServiceKey(Protocol[text["proto"]], IPv4Address(text["vip"]), int(text["port"]))
    proto, vip, port = text.split(":")
    return ServiceKey(Protocol[proto], IPv4Address(vip), int(port))


def _real_key(text: str) -> RealKey:
    address, port = text.rsplit(":", 1)
    return RealKey(IPv4Address(address), int(port))

"""The lbxdp daemon: configuration authority, first-packet path and flow sweeper of one namespace.

One loop owns all state: NFQUEUE packets (first packets of flows XDP could not place, lb.daemon.firstpath),
control requests from `lbxdp` commands (read and checked by lb.daemon.control's threads, so a slow
client never holds this loop; run here, one at a time), and a periodic tick (flow expiry and connection counts,
lb.daemon.flows; rates; health transitions; saved state, lb.daemon.statefile). Everything XDP needs is
in the maps of the attached program, so when the daemon dies the program keeps forwarding established
flows, and a new daemon adopts those maps and the saved configuration.
"""

from __future__ import annotations

import logging
import os
import selectors
import shutil
import signal
import time
from collections.abc import Callable
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any, TypeVar

from lb.balancer.engine import Balancer
from lb.balancer.health import DeadFlows, HealthCheck
from lb.balancer.lifetime import Timeouts
from lb.config.health import load_rules_file
from lb.config.ipvsadm import Command, Verb, decode_service
from lb.config.table import ServiceTable
from lb.daemon import instance, statefile
from lb.daemon.control import ControlServer
from lb.daemon.firstpath import FirstPacketPath
from lb.daemon.flows import FlowBook
from lb.daemon.healthmon import HealthMonitor
from lb.daemon.kernelhash import KernelHashing, enabled_by_env
from lb.daemon.protocol import one_line, reply_error, reply_ok
from lb.datapath import iptables, loader, queuestats
from lb.datapath.interfaces import auto_prefers_generic, link_facts
from lb.model import ConfigError, Forwarding, RealKey, RealServer, ServiceKey
from lb.render import render_command, render_health
from lb.rewrite.verdicts import Reason, Verdict
from lb.tables import RealEntry, ServiceEntry, service_flags

log = logging.getLogger("lbxdp")
T = TypeVar("T")

QUEUE_NUM = 4711  # NFQUEUE numbers are per network namespace, so one fixed number never collides
QUEUE_LEN = 4096  # first packets the kernel holds for the daemon; beyond, it drops them (status counts)
TICK_SECONDS = 1.0
# At most this share of the daemon's time goes to sweeping, since first packets wait while it runs:
# a sweep costs ~10 ms with 4.5k flows in a table of 1M slots but grows with the flows (30k: 38 ms
# here). A sweep that took d seconds is next due after max(TICK_SECONDS, d / SWEEP_DUTY); the
# timeouts it applies are tens of seconds.
SWEEP_DUTY = 0.05


class Daemon:
    def __init__(self, tunables: loader.Tunables = loader.Tunables(), adopt_from: list[str] | None = None,
                 queue_bypass: bool | None = None) -> None:
        self.started = time.time()
        self.tunables = tunables
        self.table = ServiceTable()
        self.balancer = Balancer(tunables.max_services - 1, tunables.max_reals - 1)
        self.health_checks: dict[ServiceKey, HealthCheck] = {}
        self.ifaces: dict[str, str] = {}  # name → attach mode used
        self.tx_ifindexes: set[int] = set()
        self.draining: dict[int, RealServer] = {}  # deleted reals whose flows are kept until they end
        self.tunnel_source_override: IPv4Address | None = None
        self.rates: dict[int, dict[str, int]] = {}
        self._last_sample: tuple[float, dict[int, Any]] | None = None
        self._stop = False
        self._stopping_for_detach = False
        self.control = ControlServer()  # first: refuses to start beside another daemon
        remove_stale_instances()
        self.dp = self._load_checked(tunables, adopt_from or [])
        # first packets while no daemon runs: dropped (fail-closed, the default) or let through (fail-open)
        self.queue_bypass = queue_bypass if queue_bypass is not None else bool(self._state and self._state.queue_bypass)
        self.maps = self.dp.maps
        self.flows = FlowBook(self.maps, tunables.max_flows, self._real)
        self._next_sweep = 0.0  # monotonic time the next sweep is due (SWEEP_DUTY)
        self.first = FirstPacketPath(self.balancer, self.maps, self.flows, self.tx_ifindexes)
        # Maglev in XDP (lb.daemon.kernelhash); LBXDP_KERNEL_HASH=0 sends every first packet to NFQUEUE
        self.kernel_hash = KernelHashing(self.maps, tunables.max_hashed_services, enabled_by_env())
        self.health = HealthMonitor()
        self.nfq = self._bind_queue()

    # -- start-up and shutdown -------------------------------------------------------------------

    @staticmethod
    def _bind_queue() -> Any:
        from netfilterqueue import NetfilterQueue

        nfq = NetfilterQueue()
        try:
            nfq.bind(QUEUE_NUM, _trampoline, max_len=QUEUE_LEN)
        except OSError as exc:
            raise RuntimeError(f"cannot bind NFQUEUE {QUEUE_NUM}: {exc}") from exc
        return nfq

    @staticmethod
    def saved() -> statefile.SavedState | None:
        """What the previous daemon of this namespace left (None: nothing, or unreadable; the
        daemon says which when it starts)."""
        try:
            return statefile.read(instance.state_path())
        except ValueError:
            return None

    def _load_checked(self, tunables: loader.Tunables, adopt_from: list[str]) -> loader.Datapath:
        """Load the program on the maps of the one attached to `adopt_from`, if the saved state
        describes them; else on fresh maps, with no saved state (self.unusable says why).

        The flows in adopted maps name services and reals by id: read with another numbering
        (a corrupt, foreign or missing state.json) they would go to the wrong reals."""
        self._state, self.unusable = self._read_state()
        if self.unusable is None and adopt_from:
            loader.ensure_bpffs()
            adopted = loader.pin_maps_of_attached(adopt_from, loader.pin_dir_for())
            if adopted:
                log.info("adopted the maps of the program attached to %s: %s", ", ".join(adopt_from), ", ".join(adopted))
        elif self.unusable is not None:
            loader.unpin()
        dp = loader.load(tunables)
        if self.unusable is None:
            reals = dp.maps.read_reals()
            self.unusable = statefile.mismatch(self._state, dp.maps.read_services(), reals.get, len(reals))
            if self.unusable is not None:  # the maps' numbering is not ours: load again on fresh maps
                dp.close()
                loader.unpin()
                dp = loader.load(tunables)
        if self.unusable is not None:
            self._state = None
            log.warning("saved state %s unusable (%s): starting with an empty configuration and flow table",
                        instance.state_path(), self.unusable)
        return dp

    @staticmethod
    def _read_state() -> tuple[statefile.SavedState | None, str | None]:
        """The saved state, and why it cannot be used (None when it can, or when there is none)."""
        try:
            return statefile.read(instance.state_path()), None
        except ValueError as exc:
            return None, str(exc).removeprefix(f"{instance.state_path()}: ")

    def adopt_saved_state(self) -> bool:
        """Come back as the previous daemon left things: configuration, ids, interfaces, counts,
        provided the saved ids matched the pinned maps (checked in __init__)."""
        state = self._state
        if state is None:
            return False
        self.table = state.table
        self.balancer.adopt_ids(state.service_ids, state.real_ids)
        self.health_checks = dict(state.health)
        self.first.conns = dict(state.conns)
        self.first.first_traffic = dict(state.first_traffic)
        self._resync()
        for name, mode in state.ifaces.items():
            try:
                self.attach(name, mode if mode in ("native", "generic") else "auto")
            except (RuntimeError, loader.LoadError) as exc:
                log.warning("could not re-attach %s: %s", name, exc)
        self._sweep()  # the adopted flow table's counts, before the first command asks for them
        return True

    def save_state(self) -> None:
        services = self.balancer.services
        statefile.write(
            instance.state_path(),
            statefile.SavedState(
                table=self.table,
                service_ids={k: s.service_id for k, s in services.items()},
                real_ids={(k, r): rs.real_id for k, s in services.items() for r, rs in s.reals.items()},
                health=self.health_checks,
                conns=self.first.conns,
                first_traffic=self.first.first_traffic,
                ifaces=self.ifaces,
                max_flows=self.tunables.max_flows,
                queue_bypass=self.queue_bypass,
            ),
        )
        self.first.dirty = False

    def close(self) -> None:
        for closer in (self.nfq.unbind, self.control.close, self.first.close, self.health.stop):
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

    # -- configuration ---------------------------------------------------------------------------

    def _resync(self) -> None:
        """Push the configuration into the engine and the maps (services, reals, rules)."""
        self.balancer.check_capacity(self.table)  # before anything changes: ids are finite
        owners = {
            r.real_id: (key, r.real) for key, state in self.balancer.services.items() for r in state.reals.values()
        }
        for real_id in self.balancer.sync(self.table):
            service, real = owners[real_id]
            check = self.health_checks.get(service)
            if service in self.balancer.services and check is not None and check.dead_flows is DeadFlows.KEEP:
                # `-d` with dead flows kept: the real's flows drain; its slot goes when they are gone.
                self.draining[real_id] = real
                continue
            self._retire_real(real_id)
        wanted = {key: state.service_id for key, state in self.balancer.services.items()}
        for key in self.maps.read_services().keys() - wanted.keys():
            self.maps.delete_service(key)
        for key, sid in wanted.items():
            self.maps.set_service(key, ServiceEntry(sid, service_flags(self.balancer.services[key].scheduler)))
            for rstate in self.balancer.services[key].reals.values():
                real = rstate.real
                self.maps.set_real(rstate.real_id, RealEntry(real.address, real.port, real.forwarding))
        self.kernel_hash.sync(self.balancer.services, flags_reset=True)  # rings, then flags
        self.kernel_hash.grant(self.flows.limit - self.flows.count)
        self._update_tunnel_source()
        for key in [k for k in self.health_checks if k not in wanted]:
            del self.health_checks[key]
        self.health.configure(self._health_targets())
        self._sync_rules()

    def _real(self, real_id: int) -> RealServer | None:
        """A real by id: configured, or deleted but still draining its flows."""
        found = self.balancer.real_by_id(real_id)
        return found[1].real if found is not None else self.draining.get(real_id)

    def _retire_real(self, real_id: int) -> None:
        self.flows.expire_real(real_id)
        self.maps.delete_real(real_id)
        self.maps.reset_hash_conns([real_id])  # a new real given this id starts at 0 Conns
        self.first.forget_real(real_id)
        self.draining.pop(real_id, None)
        self.balancer.release_real_ids([real_id])

    def _update_tunnel_source(self) -> None:
        """IPIP packets leave from the address this host uses toward the (first) tunnelled real,
        unless the operator set one."""
        source = self.tunnel_source_override
        for state in self.balancer.services.values():
            for rstate in state.reals.values():
                if source is None and rstate.real.forwarding is Forwarding.TUNNEL:
                    source = self.first.resolver.source_for(rstate.real.address)
        if source is not None:
            self.maps.set_tunnel_source(source)
            self.first.tunnel_source = source

    def _sync_rules(self) -> None:
        if self.ifaces:
            iptables.install(list(self.balancer.services), QUEUE_NUM, bypass=self.queue_bypass)

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
        applied = self._transaction(lambda: self.table.apply(command))
        self.save_state()
        log.info("applied: %s (%s)", command, applied.verb.value)
        return ""

    def _zero(self, service: ServiceKey | None) -> None:
        states = [self.balancer.services[service]] if service else list(self.balancer.services.values())
        rids = [r.real_id for s in states for r in s.reals.values()]
        self.maps.reset_counters([s.service_id for s in states], rids)
        self.first.zero(rids)
        self._last_sample = None

    def _load_config(self, path: Path) -> None:
        def edit() -> None:
            self.table, health = load_rules_file(path.read_text(), str(path), self.table)
            self.health_checks.update({rule.service: rule.check for rule in health})

        self._transaction(edit)  # its re-sync configures the health monitor too

    def _set_health(self, key: ServiceKey, check: HealthCheck) -> str:
        if key not in self.balancer.services:
            raise ConfigError(f"No such service: {key}")
        self.health_checks[key] = check
        self.health.configure(self._health_targets())
        self.save_state()
        return f"health check for {key}: {check.kind.value}\n"

    # -- the periodic tick -----------------------------------------------------------------------

    @property
    def timeouts(self) -> Timeouts:
        t = self.table.timeouts
        return Timeouts(tcp=t.tcp, tcpfin=t.tcpfin, udp=t.udp)

    def tick(self) -> None:
        if time.monotonic() >= self._next_sweep:
            self._sweep()
            self.kernel_hash.note_sweep()
        if self.first.dirty:
            self.save_state()  # counters a SIGKILLed daemon's successor continues from
        self._sample_rates()
        self._apply_health()
        # Table pressure: new flows of in-kernel services go to NFQUEUE and its refusal policy.
        self.kernel_hash.set_paused(self.flows.count >= self.flows.limit, self.balancer.services)
        self.kernel_hash.grant(self.flows.limit - self.flows.count)  # room XDP may fill until the next sweep

    def _sweep(self) -> None:
        """Expire idle flows and recount connections per real from the flow table."""
        now = time.monotonic()
        try:
            self._sweep_now(now)
        finally:
            took = time.monotonic() - now
            self._next_sweep = now + max(TICK_SECONDS, took / SWEEP_DUTY)

    def _sweep_now(self, now: float) -> None:
        persistent = [s.service_id for s in self.balancer.services.values() if s.service.persistence is not None]
        counts, open_flows = self.flows.sweep(self.timeouts, persistent)
        for flow in open_flows:
            self.balancer.note_open_flow(flow, now)  # open flows keep persistence templates alive
        self.balancer.set_counts(counts)
        self.balancer.persistence.sweep(now)
        for real_id in [r for r in self.draining if r not in counts]:
            log.info("real id %d drained: removing its slot", real_id)
            self._retire_real(real_id)

    def _apply_health(self) -> None:
        """Act on up/down transitions of health checks: called as soon as the monitor reports one,
        so a real that `-L` shows DOWN already gets no new flows."""
        changed = False
        for (skey, rkey), healthy, detail in self.health.results():
            if self.balancer.set_health(skey, rkey, healthy):
                changed = True
                log.info("real %s of %s is %s: %s", rkey, skey, "up" if healthy else "down", detail)
                check = self.health_checks.get(skey)
                rstate = self.balancer.services[skey].reals.get(rkey)
                if not healthy and check is not None and check.dead_flows is DeadFlows.EXPIRE and rstate:
                    self.flows.expire_real(rstate.real_id)
        if changed:
            self.kernel_hash.sync(self.balancer.services)  # a down real's slots go to 0 (Python decides)

    def _conns(self, real_ids: list[int]) -> dict[int, int]:
        """ipvsadm's Conns per real: flows the first-packet path scheduled plus those XDP did."""
        in_kernel = self.maps.hash_conns(real_ids)
        return {rid: self.first.conns.get(rid, 0) + in_kernel[rid] for rid in real_ids}

    def _sample_rates(self) -> None:
        now = time.monotonic()
        rids = [r.real_id for s in self.balancer.services.values() for r in s.reals.values()]
        traffic = self.maps.real_traffic(rids)
        conns = self._conns(rids)
        sample = {rid: (traffic[rid], conns[rid]) for rid in rids}
        if self._last_sample is not None:
            then, before = self._last_sample
            dt = max(now - then, 1e-3)
            for rid, (t, conns) in sample.items():
                if rid not in before:
                    continue
                t0, c0 = before[rid]
                # Whole numbers per second, as ipvsadm shows them (lb.render formats integers).
                self.rates[rid] = {
                    "cps": round((conns - c0) / dt),
                    "inpps": round((t.in_packets - t0.in_packets) / dt),
                    "outpps": round((t.out_packets - t0.out_packets) / dt),
                    "inbps": round((t.in_bytes - t0.in_bytes) / dt),
                    "outbps": round((t.out_bytes - t0.out_bytes) / dt),
                }
        self._last_sample = (now, sample)

    # -- listings --------------------------------------------------------------------------------

    def numbers(self) -> tuple[dict[ServiceKey, dict[str, float]], dict[tuple[ServiceKey, RealKey], dict[str, float]]]:
        """Per-service and per-real figures for `-L --stats/--rate` in lb.render's vocabulary."""
        service_numbers: dict[ServiceKey, dict[str, float]] = {}
        real_numbers: dict[tuple[ServiceKey, RealKey], dict[str, float]] = {}
        for key, state in self.balancer.services.items():
            total: dict[str, float] = {}
            traffic = self.maps.real_traffic([r.real_id for r in state.reals.values()])
            conns = self._conns([r.real_id for r in state.reals.values()])
            for rkey, rstate in state.reals.items():
                t = traffic[rstate.real_id]
                first_packets, first_bytes = self.first.first_traffic.get(rstate.real_id, (0, 0))
                numbers = {
                    "active": rstate.dest.active,
                    "inactive": rstate.dest.inactive,
                    "conns": conns[rstate.real_id],
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

    def _render(self, command: Command) -> str:
        service_numbers, real_numbers = self.numbers()
        connections = self.flows.connections(self.timeouts) if command.connection else ()
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
            if (only is not None and key != only) or key not in self.balancer.services:
                continue
            reals = []
            for rkey, rstate in self.balancer.services[key].reals.items():
                state = states.get((key, rkey))
                # UP/DOWN as scheduling sees it, so the listing never runs ahead of what new flows get.
                reals.append((rkey, rstate.dest.healthy, state.last_result if state else "not checked"))
            rows.append((key, check, reals))
        return rows

    def status_data(self) -> dict[str, Any]:
        """`lbxdp status --json`: the same facts as the text, for scripts and the demo."""
        reasons = self.maps.reason_counts()
        rids = [r.real_id for s in self.balancer.services.values() for r in s.reals.values()]
        events = dict(self.first.counters.counts)
        dropped_in_xdp = reasons.get(Reason.DROP_NO_FLOW_NOT_SYN, 0)
        if dropped_in_xdp:  # one policy, applied in XDP for most services (docs/daemon.md): one count
            events["no_flow_not_syn"] = events.get("no_flow_not_syn", 0) + dropped_in_xdp
        if self.flows.pruned:
            events["pruned_half_open"] = self.flows.pruned
        queued = queuestats.read(QUEUE_NUM) or queuestats.QueueStats(0, 0, 0)
        return {
            "pid": os.getpid(),
            "ifaces": dict(self.ifaces),
            "services": len(self.balancer.services),
            "flows": self.flows.count,  # as of the last sweep, plus flows installed since
            "flow_limit": self.flows.limit,
            "xdp_forwarded": sum(n for r, n in reasons.items() if r.verdict in (Verdict.TX, Verdict.REDIRECT)),
            "xdp_passed": sum(n for r, n in reasons.items() if r.verdict is Verdict.PASS),
            "xdp_dropped": sum(n for r, n in reasons.items() if r.verdict in (Verdict.DROP, Verdict.ABORTED)),
            "xdp_reasons": {r.name.lower(): n for r, n in reasons.items()},
            "first_path_packets": self.first.counters.packets,
            "xdp_scheduled": sum(self.maps.hash_conns(rids).values()),  # flows XDP scheduled itself (mh)
            "kernel_hashed_services": 0 if self.kernel_hash.paused else len(self.kernel_hash.rows),
            "first_path_events": events,
            # the kernel's side of the queue: first packets waiting, and those it dropped (the
            # client resends a dropped SYN; a growing count means first packets come faster than
            # the daemon takes them)
            "queue_bypass": self.queue_bypass,
            "no_daemon_first_packets": no_daemon_policy(self.queue_bypass),
            "first_path_queue": {"length": QUEUE_LEN, "waiting": queued.waiting,
                                 "dropped_full": queued.dropped_full,
                                 "dropped_undelivered": queued.dropped_undelivered},
        }

    def status_text(self) -> str:
        data = self.status_data()
        lines = [f"lbxdp daemon pid {data['pid']}, up {time.time() - self.started:.0f} s, log {instance.log_path()}"]
        lines += [f"  {name}: XDP {mode}" for name, mode in self.ifaces.items()] or ["  no interface attached"]
        lines.append(f"  services {data['services']}, flows {data['flows']} (limit {data['flow_limit']})")
        lines.append(
            f"  fast path (XDP) packets: {data['xdp_forwarded']} forwarded, {data['xdp_passed']} passed up, "
            f"{data['xdp_dropped']} dropped"
        )
        events = ", ".join(f"{k} {v}" for k, v in sorted(data["first_path_events"].items())) or "none"
        lines.append(f"  first-packet path (NFQUEUE) packets: {data['first_path_packets']} ({events})")
        queue = data["first_path_queue"]
        lines.append(f"  first packets with no daemon: {data['no_daemon_first_packets']}")
        lines.append(f"  NFQUEUE {QUEUE_NUM}: {queue['waiting']} waiting of {queue['length']}, kernel drops: "
                     f"{queue['dropped_full']} full, {queue['dropped_undelivered']} undelivered")
        lines.append(f"  flows scheduled in XDP (mh): {data['xdp_scheduled']}, "
                     f"services scheduled in XDP: {data['kernel_hashed_services']}")
        lines += [f"    {name:<22} {n}" for name, n in data["xdp_reasons"].items() if n]
        return "\n".join(lines) + "\n"

    # -- control requests ------------------------------------------------------------------------

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """Answer one control request (lb.daemon.protocol). Never raises: a request's error is its
        one-line reply, and anything unexpected is logged with its traceback and answered too, so
        no request can end the daemon. Configuration changes are all-or-nothing (`_transaction`)."""
        op = request.get("op")
        method = REQUESTS.get(op) if isinstance(op, str) else None
        if method is None:
            return reply_error(f"unknown request {one_line(repr(op), 60)}")
        try:
            return method(self, request)
        except (ConfigError, RequestError, iptables.IptablesError) as exc:
            return reply_error(str(exc))
        except (RuntimeError, loader.LoadError, ValueError, OSError) as exc:
            log.warning("request %s failed: %s", op, exc)
            return reply_error(str(exc))
        except Exception as exc:  # noqa: BLE001 - the daemon outlives every request
            log.exception("request %s failed", op)
            return reply_error(f"internal error in {op}: {type(exc).__name__}: {exc}")

    def _transaction(self, edit: Callable[[], T]) -> T:
        """A configuration change, all or nothing: `edit` changes the table (and health checks),
        then the engine, maps and rules are synced to it. If either step fails (the table, the
        capacity check, a map, iptables), the table and health checks are put back and, when the
        sync had begun, synced again, so a failed `-R` changes nothing; the error is re-raised."""
        table, checks = self.table.copy(), dict(self.health_checks)
        synced = False
        try:
            result = edit()
            synced = True
            self._resync()
            return result
        except BaseException:
            self.table, self.health_checks = table, checks
            if synced:
                try:
                    self._resync()
                except Exception:  # noqa: BLE001 - the first failure is the one to report
                    log.exception("could not restore the previous configuration after a failed change")
            raise

    def _op_ping(self, _request: dict[str, Any]) -> dict[str, Any]:
        return reply_ok("pong")

    def _op_status(self, _request: dict[str, Any]) -> dict[str, Any]:
        return reply_ok(self.status_text(), data=self.status_data())

    def _op_ipvsadm(self, request: dict[str, Any]) -> dict[str, Any]:
        command = request.get("command")
        if not isinstance(command, dict):
            raise RequestError("malformed command: 'command' must be an object")
        return reply_ok(self.apply_command(Command.from_dict(command)))

    def _op_attach(self, request: dict[str, Any]) -> dict[str, Any]:
        names = _names(request, "ifaces")
        mode = request.get("mode", "auto")
        if mode not in ("auto", "native", "generic"):
            raise RequestError("malformed attach: 'mode' must be auto, native or generic")
        config = request.get("config")
        if config is not None and not isinstance(config, str):
            raise RequestError("malformed attach: 'config' must be a path")
        bypass = request.get("queue_bypass")
        if bypass is not None and not isinstance(bypass, bool):
            raise RequestError("malformed attach: 'queue_bypass' must be true, false or null")
        self.set_queue_bypass(bypass)
        lines = [self.attach(name, mode) for name in names]
        if config:
            self._load_config(Path(config))
        self.save_state()
        return reply_ok("\n".join(lines) + "\n")

    def _op_detach(self, request: dict[str, Any]) -> dict[str, Any]:
        return self._detach(_names(request, "ifaces") or list(self.ifaces))

    def _op_health(self, request: dict[str, Any]) -> dict[str, Any]:
        key = decode_service(request.get("service"))  # types and VIP checked, as for ipvsadm commands
        check = HealthCheck.from_dict(request.get("check"))  # ValueError in one line for any bad value
        return reply_ok(self._set_health(key, check))

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

    def _detach(self, names: list[str]) -> dict[str, Any]:
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
        self.control.start()
        while not self._stop:
            for key, _ in sel.select(max(0.0, next_tick - time.monotonic())):
                if key.data == "nfq":
                    self.nfq.run(block=False)
                elif key.data == "control":
                    self.control.serve_pending(self.handle)  # requests the control threads read
                else:
                    self.health.drain_wakeups()
                    self._apply_health()
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


class RequestError(ValueError):
    """A control request with missing or mistyped fields (its message is the reply)."""


def _names(request: dict[str, Any], field: str) -> list[str]:
    names = request.get(field) or []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise RequestError(f"malformed request: '{field}' must be a list of interface names")
    return names


# op → handler: every request the control channel serves (lb.daemon.protocol)
REQUESTS: dict[str, Any] = {
    "ping": Daemon._op_ping,
    "status": Daemon._op_status,
    "ipvsadm": Daemon._op_ipvsadm,
    "attach": Daemon._op_attach,
    "detach": Daemon._op_detach,
    "health": Daemon._op_health,
}

_current: Daemon | None = None


def _trampoline(pkt: Any) -> None:
    """netfilterqueue wants a plain callable at bind time, before the daemon is fully built."""
    if _current is None:
        pkt.drop()
        return
    _current.first.on_packet(pkt)


def no_daemon_policy(bypass: bool) -> str:
    """What happens to first packets while no daemon reads the queue, in status' words."""
    return "passed to the kernel (fail-open, --queue-bypass)" if bypass else "dropped (fail-closed)"


def remove_stale_instances() -> None:
    """Pins and run directories of namespaces deleted without `lbxdp detach` (a test topology torn
    down, a container gone) would hold their maps' memory forever: remove them."""
    for root in (loader.PIN_ROOT, instance.RUN_ROOT):
        for stale in instance.stale_dirs(root):
            log.info("removing %s: its network namespace is gone", stale)
            shutil.rmtree(stale, ignore_errors=True)

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
import selectors
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
from lb.config.ipvsadm import Command, Verb
from lb.config.table import ServiceTable
from lb.daemon import instance, statefile
from lb.daemon.control import ControlServer
from lb.daemon.firstpath import QUEUE_NUM, FirstPacketPath
from lb.daemon.flows import FlowBook
from lb.daemon.healthmon import HealthMonitor
from lb.daemon.kernelsched import KernelSched, base_entry
from lb.daemon.links import Links
from lb.daemon.protocol import reply_error, reply_ok
from lb.daemon.requests import serve
from lb.daemon.schedin import XDP
from lb.daemon.startup import bind_queue, load_checked, remove_stale_instances
from lb.daemon.status import Rates, first_packets_decided, health_rows, numbers, sample_rates
from lb.datapath import loader
from lb.datapath.nfqverdict import DropBatch
from lb.datapath.templatemaps import MapTemplateStore
from lb.model import ConfigError, Forwarding, RealKey, RealServer, ServiceKey
from lb.render import render_command, render_first_packets, render_health
from lb.tables import RealEntry

log = logging.getLogger("lbxdp")
T = TypeVar("T")

TICK_SECONDS = 1.0
# At most this share of the daemon's time goes to sweeping, since first packets wait while it runs:
# a sweep costs ~10 ms with 4.5k flows in a table of 1M slots but grows with the flows (30k: 38 ms
# here). A sweep that took d seconds is next due after max(TICK_SECONDS, d / SWEEP_DUTY); the
# timeouts it applies are tens of seconds.
SWEEP_DUTY = 0.05


class Daemon(Links):
    def __init__(self, tunables: loader.Tunables | None = None, adopt_from: list[str] | None = None,
                 queue_bypass: bool | None = None, sched_in: str = XDP) -> None:
        tunables = tunables or loader.Tunables()
        self.started = time.time()
        self.tunables = tunables
        self.table = ServiceTable()
        self.balancer = Balancer(tunables.max_services - 1, tunables.max_reals - 1)
        self.health_checks: dict[ServiceKey, HealthCheck] = {}
        self.ifaces: dict[str, str] = {}  # name → attach mode used
        self.tx_ifindexes: set[int] = set()
        self.draining: dict[int, RealServer] = {}  # deleted reals whose flows are kept until they end
        self.tunnel_source_override: IPv4Address | None = None
        self.rates = Rates()
        self._stop = False
        self._stopping_for_detach = False
        self.control = ControlServer()  # first: refuses to start beside another daemon
        remove_stale_instances()
        self.dp, self._state, self.unusable = load_checked(tunables, adopt_from or [])
        # first packets while no daemon runs: dropped (fail-closed, the default) or let through (fail-open)
        self.queue_bypass = queue_bypass if queue_bypass is not None else bool(self._state and self._state.queue_bypass)
        self.maps = self.dp.maps
        self.balancer.templates = MapTemplateStore(self.maps)  # the `templates` XDP reads and writes
        self.flows = FlowBook(self.maps, tunables.max_flows, self._real)
        self._next_sweep = 0.0  # monotonic time the next sweep is due (SWEEP_DUTY)
        self.first = FirstPacketPath(self.balancer, self.maps, self.flows, self.tx_ifindexes)
        self.sched_in = sched_in  # lb.daemon.schedin: XDP decides first packets, or the daemon decides all
        self.kernel_sched = KernelSched(self.maps, sched_in == XDP)
        self.balancer.hooks = self.kernel_sched  # rr/wrr's cursor is shared with XDP
        self.health = HealthMonitor()
        self.nfq = bind_queue(_trampoline)
        self.first.drops = DropBatch(self.nfq.get_fd(), QUEUE_NUM)

    # -- start-up and shutdown (the steps before the loop: lb.daemon.startup) --------------------

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
                sched_in=self.sched_in,
            ),
        )
        self.first.dirty = False

    def close(self) -> None:
        # the first-packet path's noted drops go before the queue is unbound
        for closer in (self.first.close, self.nfq.unbind, self.control.close, self.health.stop):
            try:
                closer()
            except Exception as exc:  # noqa: BLE001 - keep closing the rest
                log.debug("close: %s", exc)
        self.dp.close()

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
        for key in wanted:
            self.maps.set_service(key, base_entry(self.balancer.services[key]))
            for rstate in self.balancer.services[key].reals.values():
                real = rstate.real
                self.maps.set_real(rstate.real_id, RealEntry(real.address, real.port, real.forwarding))
        self.kernel_sched.sync(self.balancer.services, rewrite=True)  # rows, then the entries naming them
        self.kernel_sched.grant(self.flows.limit - self.flows.count, self.flows)
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
        self.rates.forget()

    def load_config(self, path: Path) -> None:
        def edit() -> None:
            self.table, health = load_rules_file(path.read_text(), str(path), self.table)
            self.health_checks.update({rule.service: rule.check for rule in health})

        self._transaction(edit)  # its re-sync configures the health monitor too

    def set_health(self, key: ServiceKey, check: HealthCheck) -> str:
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
            self.kernel_sched.note_sweep()
        if self.first.dirty:
            self.save_state()  # counters a SIGKILLed daemon's successor continues from
        sample_rates(self)
        self._apply_health()
        # Table pressure: new flows of in-kernel services go to NFQUEUE and its refusal policy.
        self.kernel_sched.set_paused(self.flows.count >= self.flows.limit, self.balancer.services)
        self.kernel_sched.grant(self.flows.limit - self.flows.count, self.flows)  # XDP's room until the next sweep

    def _sweep(self) -> None:
        """Expire idle flows and recount connections per real from the flow table."""
        now = time.monotonic()
        try:
            self._sweep_now()
        finally:
            took = time.monotonic() - now
            self._next_sweep = now + max(TICK_SECONDS, took / SWEEP_DUTY)

    def _sweep_now(self) -> None:
        persistent = [s.service_id for s in self.balancer.services.values() if s.service.persistence is not None]
        counts, open_flows = self.flows.sweep(self.timeouts, persistent)
        now_ns = time.monotonic_ns()  # the templates' clock (bpf_ktime_get_ns()); open flows keep theirs alive
        self.balancer.note_open_flows(open_flows, now_ns)
        self.balancer.set_counts(counts)
        self.balancer.templates.sweep(now_ns)
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
            self.kernel_sched.sync(self.balancer.services)  # a down real leaves the XDP rows

    # -- listings (figures and status: lb.daemon.status) ---------------------------------------

    def _render(self, command: Command) -> str:
        service_numbers, real_numbers = numbers(self)
        connections = self.flows.connections(self.timeouts) if command.connection else ()
        text = render_command(
            command, self.table, service_numbers, real_numbers, connections, size=self.tunables.max_flows
        )
        if command.verb is Verb.LIST and not command.connection and not command.timeout:
            text += render_first_packets(self.table, first_packets_decided(self), nosort=command.nosort,
                                         service=command.service)
            text += render_health(health_rows(self, command.service))
        return text

    # -- control requests ------------------------------------------------------------------------

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """Answer one control request; never raises (lb.daemon.requests.serve)."""
        return serve(self, request)

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
                except Exception:
                    log.exception("could not restore the previous configuration after a failed change")
            raise

    def detach(self, names: list[str]) -> dict[str, Any]:
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
                    try:
                        self.first.flush_drops()
                    except OSError as exc:  # kept: the next flush covers them
                        log.warning("first-packet path: drop verdicts not sent: %s", exc)
                elif key.data == "control":
                    self.control.serve_pending(self.handle)  # requests the control threads read
                else:
                    self.health.drain_wakeups()
                    self._apply_health()
            if time.monotonic() >= next_tick:
                try:
                    self.tick()
                except Exception:
                    log.exception("periodic tick failed")
                next_tick = time.monotonic() + TICK_SECONDS
        sel.close()
        if not self._stopping_for_detach:
            self.save_state()

    def _on_signal(self, signum: int, _frame: Any) -> None:
        log.info("signal %d: stopping (XDP, rules and flows stay; `lbxdp detach` removes them)", signum)
        self._stop = True


_current: Daemon | None = None


def _trampoline(pkt: Any) -> None:
    """netfilterqueue wants a plain callable at bind time, before the daemon is fully built."""
    if _current is None:
        pkt.drop()
        return
    _current.first.on_packet(pkt)

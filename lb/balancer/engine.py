"""The daemon's judgement, without its I/O: which real a new flow gets, and the numbering the maps use.

`Balancer` holds one scheduler per service and one `Destination` per real, keeps them in step with
the configuration (`sync`), hands out the small integer ids the BPF maps index by (stable for as
long as a service or real exists, so flows keep pointing at the right entry across edits), and
places new flows, honouring persistence. Connection counts and health arrive from outside, and
persistence templates live in a `TemplateStore` handed in (the daemon's reads and writes the
`templates` map XDP uses); this module never touches a socket, a map or a clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Protocol

from lb.balancer.persistence import NS_PER_S, PersistenceTable, TemplateKey, TemplateStore, template_key
from lb.model import ConfigError, FlowKey, RealKey, RealServer, Service, ServiceKey, VirtualService
from lb.sched import get_scheduler
from lb.sched.base import Destination, Scheduler


@dataclass
class RealState:
    real: RealServer
    real_id: int
    dest: Destination
    placement: Placement | None = None  # the last Placement made for it (Balancer.place)


@dataclass
class ServiceState:
    service: Service
    service_id: int
    scheduler: Scheduler
    reals: dict[RealKey, RealState] = field(default_factory=dict)
    # The reals' destinations in order, kept by Balancer._sync_reals (which replaces `reals`):
    # schedulers get this list for every new flow, so it is not rebuilt per packet. Read-only.
    dests: list[Destination] = field(default_factory=list)
    # Destination → its real, kept with `dests`: a Destination hashes by identity (eq=False), so
    # finding the chosen real costs no RealKey hash per new flow.
    by_dest: dict[Destination, RealState] = field(default_factory=dict)


@dataclass(frozen=True)
class Placement:
    """Where a new flow goes."""

    service: Service
    service_id: int
    real: RealServer
    real_id: int


class SchedulerHooks(Protocol):
    """Told before and after the balancer asks a service's scheduler anything (update() or
    schedule()): the daemon keeps schedulers whose state XDP shares (rr/wrr's cursor) in step with
    the kernel's copy (lb.daemon.kernelsched)."""

    def before(self, state: ServiceState) -> None: ...

    def after(self, state: ServiceState) -> None: ...


class NoDestination(LookupError):
    """No real of the service can take a new flow (all quiescent, overloaded or down)."""


class IdPool:
    """Small integers from 1 up, reused after release (0 means "none" in the maps)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._free: list[int] = []
        self._next = 1

    def take(self, preferred: int | None = None) -> int:
        if preferred is not None and preferred not in self._taken_ids():
            self._claim(preferred)
            return preferred
        if self._free:
            return self._free.pop()
        if self._next > self._limit:
            raise OverflowError(f"more than {self._limit} entries; raise the datapath's table size")
        self._next += 1
        return self._next - 1

    def give_back(self, value: int) -> None:
        self._free.append(value)

    @property
    def limit(self) -> int:
        return self._limit

    def available(self) -> int:
        """Ids `take()` can still hand out."""
        return len(self._free) + max(0, self._limit - self._next + 1)

    def _taken_ids(self) -> set[int]:
        return set(range(1, self._next)) - set(self._free)

    def _claim(self, value: int) -> None:
        """Take a specific id (adopting a previous daemon's numbering)."""
        if value in self._free:
            self._free.remove(value)
            return
        self._free += list(range(self._next, value))
        self._next = max(self._next, value + 1)


def update_overload(dest: Destination, real: RealServer) -> None:
    """IPVS's threshold hysteresis (ip_vs_ctl.c): overloaded at the upper threshold, cleared at
    the lower one, or at three quarters of the upper one when no lower threshold is set."""
    total = dest.active + dest.inactive
    if not real.upper_threshold:
        dest.overloaded = False
    elif total >= real.upper_threshold:
        dest.overloaded = True
    elif dest.overloaded:
        limit = real.lower_threshold or (real.upper_threshold * 3) // 4
        if total <= limit:
            dest.overloaded = False


class Balancer:
    def __init__(
        self, max_services: int = 1024, max_reals: int = 4096, templates: TemplateStore | None = None
    ) -> None:
        self.services: dict[ServiceKey, ServiceState] = {}
        self.templates: TemplateStore = PersistenceTable() if templates is None else templates
        self._service_ids = IdPool(max_services)
        self._real_ids = IdPool(max_reals)
        self._preferred_service_ids: dict[ServiceKey, int] = {}
        self._preferred_real_ids: dict[tuple[ServiceKey, RealKey], int] = {}
        # real id → its service and real, rebuilt by sync(): the first-packet path asks per packet
        self._by_real_id: dict[int, tuple[ServiceState, RealState]] = {}
        self.hooks: SchedulerHooks | None = None

    def adopt_ids(
        self, service_ids: dict[ServiceKey, int], real_ids: dict[tuple[ServiceKey, RealKey], int]
    ) -> None:
        """Number services and reals as a previous daemon did, so the flows it left in the pinned
        maps still name the right reals. Call before the first sync()."""
        self._preferred_service_ids = dict(service_ids)
        self._preferred_real_ids = dict(real_ids)

    # -- configuration -------------------------------------------------------------------------

    def sync(self, configured: Iterable[VirtualService]) -> list[int]:
        """Make the runtime state match the configuration; returns the real ids that went away.

        Those ids stay reserved until `release_real_ids()`: flows the datapath still holds may name
        them (a deleted real whose flows are kept to drain), and a new real must not inherit them.

        Destinations of reals that stay keep their counters and health, so an edit never resets
        what lc/wlc know; a scheduler is rebuilt only when its name or flags changed.
        """
        wanted = {vs.service.key: vs for vs in configured}
        gone_real_ids: list[int] = []
        for key in [k for k in self.services if k not in wanted]:
            gone = self.services.pop(key)
            gone_real_ids += [r.real_id for r in gone.reals.values()]
            self._service_ids.give_back(gone.service_id)
            self.templates.forget_service(gone.service_id)
        for key, vs in wanted.items():
            state = self.services.get(key)
            if state is None:
                state = ServiceState(
                    vs.service,
                    self._service_ids.take(self._preferred_service_ids.pop(key, None)),
                    self._make_scheduler(vs.service),
                )
                self.services[key] = state
            elif (state.service.scheduler, state.service.sched_flags) != (
                vs.service.scheduler,
                vs.service.sched_flags,
            ):
                state.scheduler = self._make_scheduler(vs.service)
            state.service = vs.service
            if self.hooks is not None:
                self.hooks.before(state)
            gone_real_ids += self._sync_reals(state, vs)
            state.scheduler.update(state.dests)
        self._by_real_id = {r.real_id: (s, r) for s in self.services.values() for r in s.reals.values()}
        return gone_real_ids

    def check_capacity(self, configured: Iterable[VirtualService]) -> None:
        """Refuse, before anything changes, a configuration with more new services or reals than
        ids are left (the maps are arrays sized at load). Ids of reals this change removes are
        not counted as free: they are released only after the sync (or after draining)."""
        wanted = list(configured)
        new_services = [vs for vs in wanted if vs.service.key not in self.services]
        new_reals = 0
        for vs in wanted:
            state = self.services.get(vs.service.key)
            new_reals += sum(1 for rkey in vs.reals if state is None or rkey not in state.reals)
        removed = sum(1 for key in self.services if key not in {vs.service.key for vs in wanted})
        if len(new_services) > self._service_ids.available() + removed:
            raise ConfigError(
                f"too many virtual services: the datapath holds at most {self._service_ids.limit} "
                "(MAX_SERVICES in bpf/lb_consts.h, loader.Tunables.max_services)"
            )
        if new_reals > self._real_ids.available():
            raise ConfigError(
                f"too many real servers: the datapath holds at most {self._real_ids.limit} "
                "(MAX_REALS in bpf/lb_consts.h, loader.Tunables.max_reals; deleted reals hold "
                "their slot until their flows end)"
            )

    def release_real_ids(self, real_ids: Iterable[int]) -> None:
        """No flow names these ids any more: they may be given to new reals. Their templates go
        too (again: XDP may have written one between the real's removal and its row's update), so a
        real that inherits an id never receives another service's persistent clients."""
        for real_id in real_ids:
            self.templates.forget_real(real_id)
            self._real_ids.give_back(real_id)

    def _sync_reals(self, state: ServiceState, vs: VirtualService) -> list[int]:
        gone = []
        for rkey in [k for k in state.reals if k not in vs.reals]:
            gone.append(state.reals.pop(rkey).real_id)
            self.templates.forget_real(gone[-1])
        reordered: dict[RealKey, RealState] = {}
        for rkey, real in vs.reals.items():
            current = state.reals.get(rkey)
            if current is None:
                preferred = self._preferred_real_ids.pop((state.service.key, rkey), None)
                current = RealState(real, self._real_ids.take(preferred), Destination(rkey, real.weight))
            current.real = real
            current.dest.weight = real.weight
            update_overload(current.dest, real)
            reordered[rkey] = current
        state.reals = reordered
        state.dests = [r.dest for r in reordered.values()]
        state.by_dest = {r.dest: r for r in reordered.values()}
        return gone

    @staticmethod
    def _make_scheduler(service: Service) -> Scheduler:
        return get_scheduler(service.scheduler, service.sched_flags)

    # -- scheduling ----------------------------------------------------------------------------

    def service_for(self, flow: FlowKey) -> ServiceState | None:
        state = self.services.get(flow.service_key)
        if state is None:
            # A port-0 service (persistent, "all ports") matches any port of its VIP.
            state = self.services.get(ServiceKey(flow.proto, flow.daddr, 0))
        return state

    def place(self, flow: FlowKey, now_ns: int, state: ServiceState | None = None) -> Placement:
        """Choose the real for a new flow; raises NoDestination when none can take it. `now_ns` is
        on the clock of the templates' expiry (CLOCK_MONOTONIC, as bpf_ktime_get_ns()). `state`:
        the flow's service, when the caller has looked it up already (service_for(flow))."""
        if state is None:
            state = self.service_for(flow)
        if state is None:
            raise LookupError(f"no virtual service for {flow.proto.name} {flow.daddr}:{flow.dport}")
        service = state.service
        chosen: RealState | None = None
        key = self._template_key(state, flow.saddr)
        if key is not None:
            pinned = self.templates.lookup(key, now_ns)
            found = self._by_real_id.get(pinned) if pinned else None
            # A template never sends a client to a real that cannot take flows now: the scheduler
            # chooses, and the template is rewritten (ip_vs_check_template invalidates it).
            if found is not None and found[0] is state and found[1].dest.available:
                chosen = found[1]
        if chosen is None:
            if self.hooks is not None:
                self.hooks.before(state)
            dest = state.scheduler.schedule(flow, state.dests)
            if self.hooks is not None:
                self.hooks.after(state)
            if dest is None:
                raise NoDestination(f"no destination available for {service.key}")
            chosen = state.by_dest.get(dest) or state.reals[dest.key]
        if key is not None and service.persistence is not None:
            self.templates.record(key, chosen.real_id, now_ns, service.persistence)
        placed = chosen.placement
        # One Placement per real for as long as its service and server stay the same objects (an
        # edit replaces them): the first-packet path places every new flow, a new one costs.
        if placed is None or placed.service is not service or placed.real is not chosen.real \
                or placed.service_id != state.service_id:
            placed = chosen.placement = Placement(service, state.service_id, chosen.real, chosen.real_id)
        return placed

    @staticmethod
    def _template_key(state: ServiceState, client: IPv4Address) -> TemplateKey | None:
        if state.service.persistence is None:
            return None
        return template_key(state.service_id, state.service.netmask, client)

    # -- live numbers --------------------------------------------------------------------------

    def real_by_id(self, real_id: int) -> tuple[ServiceState, RealState] | None:
        return self._by_real_id.get(real_id)

    def set_counts(self, counts: dict[int, tuple[int, int]]) -> None:
        """Active/inactive connections per real id, as the daemon counted them from the flow table."""
        for state in self.services.values():
            for real in state.reals.values():
                real.dest.active, real.dest.inactive = counts.get(real.real_id, (0, 0))
                update_overload(real.dest, real.real)

    def set_health(self, service: ServiceKey, real: RealKey, healthy: bool) -> bool:
        """Returns True when this changed the real's state."""
        state = self.services.get(service)
        if state is None or real not in state.reals:
            return False
        dest = state.reals[real].dest
        if dest.healthy == healthy:
            return False
        dest.healthy = healthy
        if self.hooks is not None:
            self.hooks.before(state)
        state.scheduler.update(state.dests)
        if not healthy:
            self.templates.forget_real(state.reals[real].real_id)
        return True

    def note_open_flows(self, flows: Iterable[tuple[FlowKey, int]], now_ns: int) -> None:
        """These flows (with their real ids) are still open: the templates that placed them must
        outlive them, so each lives at least a persistence timeout from now."""
        until: dict[tuple[TemplateKey, int], int] = {}
        for flow, real_id in flows:
            state = self.service_for(flow)
            key = self._template_key(state, flow.saddr) if state is not None else None
            if key is not None and state is not None and state.service.persistence is not None:
                until[key, real_id] = now_ns + state.service.persistence * NS_PER_S
        self.templates.touch_all(until)

    def client_template(self, service: ServiceKey, client: IPv4Address, now_ns: int) -> RealKey | None:
        """The real `client`'s live template of `service` names, if any."""
        state = self.services.get(service)
        key = self._template_key(state, client) if state is not None else None
        if key is None:
            return None
        found = self._by_real_id.get(self.templates.lookup(key, now_ns) or 0)
        return found[1].real.key if found is not None else None

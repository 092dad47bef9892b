"""The daemon's judgement, without its I/O: which real a new flow gets, and the numbering the maps use.

`Balancer` holds one scheduler per service and one `Destination` per real, keeps them in step with
the configuration (`sync`), hands out the small integer ids the BPF maps index by (stable for as
long as a service or real exists, so flows keep pointing at the right entry across edits), and
places new flows, honouring persistence. Connection counts and health arrive from outside; this
module never touches a socket, a map or a clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from lb.balancer.persistence import PersistenceTable
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
    def __init__(self, max_services: int = 1024, max_reals: int = 4096) -> None:
        self.services: dict[ServiceKey, ServiceState] = {}
        self.persistence = PersistenceTable()
        self._service_ids = IdPool(max_services)
        self._real_ids = IdPool(max_reals)
        self._preferred_service_ids: dict[ServiceKey, int] = {}
        self._preferred_real_ids: dict[tuple[ServiceKey, RealKey], int] = {}
        # real id → its service and real, rebuilt by sync(): the first-packet path asks per packet
        self._by_real_id: dict[int, tuple[ServiceState, RealState]] = {}

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
            self.persistence.forget_service(key)
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
        """No flow names these ids any more: they may be given to new reals."""
        for real_id in real_ids:
            self._real_ids.give_back(real_id)

    def _sync_reals(self, state: ServiceState, vs: VirtualService) -> list[int]:
        gone = []
        for rkey in [k for k in state.reals if k not in vs.reals]:
            gone.append(state.reals.pop(rkey).real_id)
            self.persistence.forget_real(state.service.key, rkey)
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

    def place(self, flow: FlowKey, now: float, state: ServiceState | None = None) -> Placement:
        """Choose the real for a new flow; raises NoDestination when none can take it. `state`:
        the flow's service, when the caller has looked it up already (service_for(flow))."""
        if state is None:
            state = self.service_for(flow)
        if state is None:
            raise LookupError(f"no virtual service for {flow.proto.name} {flow.daddr}:{flow.dport}")
        service = state.service
        chosen: RealState | None = None
        if service.persistence is not None:
            pinned = self.persistence.lookup(service, flow.saddr, now)
            candidate = state.reals.get(pinned) if pinned else None
            # A template never sends a client to a real that cannot take flows now.
            if candidate is not None and candidate.dest.available:
                chosen = candidate
        if chosen is None:
            dest = state.scheduler.schedule(flow, state.dests)
            if dest is None:
                raise NoDestination(f"no destination available for {service.key}")
            chosen = state.by_dest.get(dest) or state.reals[dest.key]
        if service.persistence is not None:
            self.persistence.record(service, flow.saddr, chosen.real.key, now)
        placed = chosen.placement
        # One Placement per real for as long as its service and server stay the same objects (an
        # edit replaces them): the first-packet path places every new flow, a new one costs.
        if placed is None or placed.service is not service or placed.real is not chosen.real \
                or placed.service_id != state.service_id:
            placed = chosen.placement = Placement(service, state.service_id, chosen.real, chosen.real_id)
        return placed

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
        state.scheduler.update(state.dests)
        if not healthy:
            self.persistence.forget_real(service, real)
        return True

    def note_open_flow(self, flow: FlowKey, now: float) -> None:
        """A flow is still open: its persistence template must outlive it."""
        state = self.service_for(flow)
        if state is not None and state.service.persistence is not None:
            self.persistence.touch(state.service, flow.saddr, now)

    def client_template(self, service: ServiceKey, client: IPv4Address, now: float) -> RealKey | None:
        state = self.services.get(service)
        if state is None or state.service.persistence is None:
            return None
        return self.persistence.lookup(state.service, client, now)

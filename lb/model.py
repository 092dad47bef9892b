"""The balancer's vocabulary: virtual services, real servers and flow keys.

Pure values with the validation ipvsadm(8) states. Nothing here does I/O; the daemon, the config
language, the schedulers and the rewrite model all speak in these types.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address


class Protocol(enum.IntEnum):
    """IP protocol numbers of the services lbxdp balances."""

    TCP = 6
    UDP = 17

    @property
    def label(self) -> str:
        """ipvsadm's spelling in listings (`TCP`, `UDP`)."""
        return self.name


class Forwarding(enum.Enum):
    """ipvsadm's packet-forwarding methods, by their option letter."""

    ROUTE = "g"  # gatewaying / direct routing: only the destination MAC changes
    TUNNEL = "i"  # IPIP: the packet is wrapped in an outer IPv4 header to the real
    MASQ = "m"  # masquerading / NAT: destination rewritten, replies translated back

    @property
    def label(self) -> str:
        """The Forward column of `ipvsadm -L`."""
        return {"g": "Route", "i": "Tunnel", "m": "Masq"}[self.value]


class ConfigError(ValueError):
    """A request ipvsadm would refuse; the message says why, in one line."""


MAX_WEIGHT = 65535
DEFAULT_PERSISTENCE = 300  # ipvsadm(8): -p without a value means 300 seconds
DEFAULT_SCHEDULER = "wlc"  # ipvsadm(8): the default scheduling method
HOST_NETMASK = IPv4Address("255.255.255.255")


@dataclass(frozen=True, order=True)
class ServiceKey:
    """What identifies a virtual service: protocol, virtual address and port."""

    proto: Protocol
    vip: IPv4Address
    port: int

    def __post_init__(self) -> None:
        # Port 0 means "every port", which ipvsadm(8) allows only for persistent services (Service checks).
        _check_port(self.port, "service port", allow_zero=True)

    def __hash__(self) -> int:
        # Cached as FlowKey's is: the first-packet path finds a flow's service by this key, and
        # hashing the IPv4Address field each time costs more than the lookup.
        cached = self.__dict__.get("_hash")
        if cached is None:
            cached = self.__dict__["_hash"] = hash((self.proto, int(self.vip), self.port))
        return cached

    def __str__(self) -> str:
        return f"{self.proto.label} {self.vip}:{self.port}"


@dataclass(frozen=True)
class Service:
    """A virtual service and how it schedules.

    `persistence` is the persistent timeout in seconds (None when not persistent); `netmask` groups
    clients for persistence (ipvsadm -M), so clients in one subnet share a real.
    """

    key: ServiceKey
    scheduler: str = DEFAULT_SCHEDULER
    sched_flags: frozenset[str] = frozenset()
    persistence: int | None = None
    netmask: IPv4Address = HOST_NETMASK

    def __post_init__(self) -> None:
        if not self.scheduler:
            raise ConfigError("scheduler name is empty")
        if self.persistence is not None and not 1 <= self.persistence <= 2**31 - 1:
            raise ConfigError(f"persistence timeout {self.persistence} is out of range (1..{2**31 - 1})")
        if not _is_contiguous_netmask(self.netmask):
            raise ConfigError(f"netmask {self.netmask} is not a contiguous prefix mask")
        if self.key.port == 0 and self.persistence is None:
            raise ConfigError("zero port specified for non-persistent service")

    def edited(self, **changes: object) -> Service:
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True, order=True)
class RealKey:
    """What identifies a real server within a service: address and port."""

    address: IPv4Address
    port: int

    def __str__(self) -> str:
        return f"{self.address}:{self.port}"


@dataclass(frozen=True)
class RealServer:
    """A real server behind a service.

    Weight 0 is quiescent: the real keeps its flows but gets no new ones (ipvsadm(8), -w).
    Thresholds of 0 mean no limit (ipvsadm(8), -x/-y).
    """

    address: IPv4Address
    port: int
    forwarding: Forwarding = Forwarding.ROUTE
    weight: int = 1
    upper_threshold: int = 0
    lower_threshold: int = 0

    def __post_init__(self) -> None:
        _check_port(self.port, "real server port", allow_zero=False)
        if not 0 <= self.weight <= MAX_WEIGHT:
            raise ConfigError(f"weight {self.weight} is out of range (0..{MAX_WEIGHT})")
        for name, value in (("upper", self.upper_threshold), ("lower", self.lower_threshold)):
            if not 0 <= value <= 2**31 - 1:
                raise ConfigError(f"{name} threshold {value} is out of range")
        if self.upper_threshold and self.lower_threshold > self.upper_threshold:
            raise ConfigError("lower threshold is greater than upper threshold")

    @property
    def key(self) -> RealKey:
        return RealKey(self.address, self.port)

    def edited(self, **changes: object) -> RealServer:
        return replace(self, **changes)  # type: ignore[arg-type]


def check_real_for_service(service: ServiceKey, real: RealServer) -> None:
    """ipvsadm(8): with gatewaying and tunnelling the real's port must equal the service's.

    Only masquerading can map a port, because only NAT rewrites the destination port.
    """
    if real.forwarding is not Forwarding.MASQ and real.port != service.port:
        raise ConfigError(
            f"real server {real.key}: port differs from the service port {service.port}, "
            f"which only masquerading (-m) can map; {real.forwarding.label} keeps the port"
        )


@dataclass(frozen=True, order=True)
class FlowKey:
    """A flow as the balancer sees it on the way in: client → VIP."""

    proto: Protocol
    saddr: IPv4Address
    sport: int
    daddr: IPv4Address
    dport: int

    def __hash__(self) -> int:
        # Cached like service_key below: a flow key is hashed for every dict it meets on the
        # first-packet path, and hashing its two IPv4Address fields (hash(hex(int))) each time
        # was a visible share of that path. Equal keys have equal fields, so equal hashes.
        cached = self.__dict__.get("_hash")
        if cached is None:
            cached = self.__dict__["_hash"] = hash(
                (self.proto, int(self.saddr), self.sport, int(self.daddr), self.dport))
        return cached

    @property
    def service_key(self) -> ServiceKey:
        # Cached in the instance's __dict__ (a frozen dataclass allows writing there directly): the
        # first-packet path asks several times per packet. Not functools.cached_property, whose
        # lock (Python 3.11) costs more than building the key.
        cached = self.__dict__.get("_service_key")
        if cached is None:
            cached = self.__dict__["_service_key"] = ServiceKey(self.proto, self.daddr, self.dport)
        return cached


_object_new = object.__new__


def flow_key(proto: Protocol, saddr: IPv4Address, sport: int, daddr: IPv4Address, dport: int) -> FlowKey:
    """FlowKey(proto, saddr, sport, daddr, dport), made without the frozen dataclass's __init__ (one
    object.__setattr__ per field): readers of packets and of the flow maps make one per packet or
    entry. The same object in every respect."""
    key = _object_new(FlowKey)
    fields = key.__dict__
    fields["proto"] = proto
    fields["saddr"] = saddr
    fields["sport"] = sport
    fields["daddr"] = daddr
    fields["dport"] = dport
    return key


@dataclass
class VirtualService:
    """A service with its reals, in the order they were added (listings and rr follow that order)."""

    service: Service
    reals: dict[RealKey, RealServer] = field(default_factory=dict)


def _check_port(port: int, what: str, *, allow_zero: bool) -> None:
    low = 0 if allow_zero else 1
    if not low <= port <= 65535:
        raise ConfigError(f"{what} {port} is out of range ({low}..65535)")


def _is_contiguous_netmask(mask: IPv4Address) -> bool:
    value = int(mask)
    inverted = ~value & 0xFFFFFFFF
    return (inverted & (inverted + 1)) == 0

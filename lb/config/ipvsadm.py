"""One ipvsadm command line → a `Command` value, with ipvsadm's own rules and error wording.

Follows ipvsadm(8) and ipvsadm.c (1.31): the option table (`-A -t VIP:PORT -s rr`, long forms such
as `--add-service --tcp-service`), popt's habits (short options bundle, `-w2` and `--weight=2` both
work, `-p` takes the next word as its timeout only when it is a number), the default real port
(the service's, when `-r` names no port), and `generic_opt_check`'s table of which options each
command requires, forbids or takes one of. Messages start with ipvsadm's wording (`Illegal
'forwarding-method' option with the 'add-service' command`) and add why when ipvsadm is terse.

Deliberate differences, each stricter and each explained in its message: addresses and ports are
numeric (pure code resolves no names, so `-n` is implied); with gatewaying or tunnelling a real's
port must equal the service's (ipvsadm silently rewrites it, which hides typos); scheduler names and
flags are checked here against lbxdp's registry (ipvsadm leaves that to the kernel).

Input hardening (issue 14): every number is written in ASCII digits (Python's int() also reads '٨٠'
and '８０' as 80, and str.isdigit() is true of '²', which int() then refuses with a traceback); a
VIP must be an address clients can send to (not 0.0.0.0, the limited broadcast, multicast
224.0.0.0/4 or the reserved 240.0.0.0/4; loopback VIPs stay allowed, see `vip_problem`); a real
must be another unicast host (not 0.0.0.0, broadcast, multicast, loopback, nor the service's own
VIP). The same checks run on a Command that arrives as JSON (`Command.from_dict`): `validate`
holds them, so the socket cannot smuggle in what the command line refuses.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from ipaddress import AddressValueError, IPv4Address, IPv4Network
from typing import Any

from lb.model import (
    DEFAULT_PERSISTENCE,
    DEFAULT_SCHEDULER,
    HOST_NETMASK,
    MAX_WEIGHT,
    ConfigError,
    Forwarding,
    Protocol,
    RealKey,
    RealServer,
    Service,
    ServiceKey,
    check_real_for_service,
)
from lb.sched import builtin_schedulers, scheduler_class, scheduler_names

MAX_TIMEOUT = 86400 * 31  # ipvsadm.c: MAX_TIMEOUT, 31 days
INT_MAX = 2**31 - 1
# ipvsadm(8) -b: flag-1, flag-2, flag-3 are the generic names of the kernel's three scheduler bits
# (IP_VS_SVC_F_SCHED1..3); a scheduler names its own in `flag_bits` (sh: flag-1 is sh-fallback).
GENERIC_FLAGS = ("flag-1", "flag-2", "flag-3")


def _builtin_flags() -> list[str]:
    """Every flag name ipvsadm itself knows, in its print order: the built-ins' own names (fallback
    before port, sh before mh), then the generic ones."""
    return [flag for cls in builtin_schedulers() for flag in cls.flag_bits] + list(GENERIC_FLAGS)


def _flag_aliases(scheduler: str) -> dict[str, str]:
    """flag-N → the scheduler's own name for bit N (empty for schedulers that name no bits)."""
    try:
        bits = scheduler_class(scheduler).flag_bits
    except ConfigError:
        return {}
    return dict(zip(GENERIC_FLAGS, bits, strict=False))  # the kernel has three bits


class Verb(enum.Enum):
    """ipvsadm's commands; the value is ipvsadm's own name for each, used in its messages."""

    ADD_SERVICE = "add-service"
    EDIT_SERVICE = "edit-service"
    DELETE_SERVICE = "delete-service"
    ADD_REAL = "add-server"
    EDIT_REAL = "edit-server"
    DELETE_REAL = "delete-server"
    CLEAR = "flush"
    RESTORE = "restore"
    SAVE = "save"
    LIST = "list"
    ZERO = "zero"
    SET = "set"

    @property
    def flag(self) -> str:
        """The switch that selects the command (`-A`, `--set`)."""
        return _VERB_FLAGS[self]

    @property
    def mutating(self) -> bool:
        """Changes the configuration (and so may appear in a rules file)."""
        return self in MUTATING_VERBS


_VERB_FLAGS = {
    Verb.ADD_SERVICE: "-A",
    Verb.EDIT_SERVICE: "-E",
    Verb.DELETE_SERVICE: "-D",
    Verb.ADD_REAL: "-a",
    Verb.EDIT_REAL: "-e",
    Verb.DELETE_REAL: "-d",
    Verb.CLEAR: "-C",
    Verb.RESTORE: "-R",
    Verb.SAVE: "-S",
    Verb.LIST: "-L",
    Verb.ZERO: "-Z",
    Verb.SET: "--set",
}
MUTATING_VERBS = frozenset(
    {
        Verb.ADD_SERVICE,
        Verb.EDIT_SERVICE,
        Verb.DELETE_SERVICE,
        Verb.ADD_REAL,
        Verb.EDIT_REAL,
        Verb.DELETE_REAL,
        Verb.CLEAR,
        Verb.SET,
    }
)


@dataclass(frozen=True)
class Command:
    """One parsed ipvsadm command line.

    Fields left None were not given on the line: `-e` changes only what is given, and `-A`/`-E` fill
    ipvsadm's defaults through `service_config()`. `real` already carries the port ipvsadm would use
    (the service's when `-r` named none). `commands` is the payload of RESTORE: the rules, in order.
    """

    verb: Verb
    service: ServiceKey | None = None
    scheduler: str | None = None
    sched_flags: frozenset[str] | None = None
    persistence: int | None = None
    netmask: IPv4Address | None = None
    real: RealKey | None = None
    forwarding: Forwarding | None = None
    weight: int | None = None
    upper_threshold: int | None = None
    lower_threshold: int | None = None
    numeric: bool = False
    connection: bool = False
    stats: bool = False
    rate: bool = False
    exact: bool = False
    nosort: bool = False
    timeout: bool = False
    timeouts: tuple[int, int, int] | None = None
    commands: tuple[Command, ...] = field(default=())

    def service_config(self) -> Service:
        """The service `-A`/`-E` asks for, with ipvsadm's defaults for what the line left out.

        As in ipvsadm, `-E` replaces the service's settings (an edit without `-s` goes back to wlc,
        without `-p` it stops being persistent); the netmask only matters for persistent services.
        """
        if self.service is None:
            raise ConfigError(f"the '{self.verb.value}' command names no service")
        persistent = self.persistence is not None
        return Service(
            key=self.service,
            scheduler=self.scheduler or DEFAULT_SCHEDULER,
            sched_flags=self.sched_flags or frozenset(),
            persistence=self.persistence,
            netmask=(self.netmask or HOST_NETMASK) if persistent else HOST_NETMASK,
        )

    def real_config(self) -> RealServer:
        """The real `-a` adds, with ipvsadm's defaults (gatewaying, weight 1, no thresholds)."""
        if self.real is None:
            raise ConfigError(f"the '{self.verb.value}' command names no real server")
        return RealServer(
            address=self.real.address,
            port=self.real.port,
            forwarding=self.forwarding or Forwarding.ROUTE,
            weight=1 if self.weight is None else self.weight,
            upper_threshold=self.upper_threshold or 0,
            lower_threshold=self.lower_threshold or 0,
        )

    def edit_real(self, current: RealServer) -> RealServer:
        """`-e`: the real with only the given settings changed."""
        changes: dict[str, object] = {}
        for name in ("forwarding", "weight", "upper_threshold", "lower_threshold"):
            value = getattr(self, name)
            if value is not None:
                changes[name] = value
        return current.edited(**changes)

    def argv(self) -> list[str]:
        """The command as a canonical ipvsadm argument list (short options, numeric)."""
        out = [self.verb.flag]
        if self.verb is Verb.SET and self.timeouts is not None:
            out += [str(t) for t in self.timeouts]
        if self.service is not None:
            out += [service_switch(self.service.proto), f"{self.service.vip}:{self.service.port}"]
        if self.scheduler is not None:
            out += ["-s", self.scheduler]
        if self.persistence is not None:
            out += ["-p", str(self.persistence)]
        if self.netmask is not None:
            out += ["-M", str(self.netmask)]
        if self.sched_flags:
            out += ["-b", format_sched_flags(self.sched_flags)]
        if self.real is not None:
            out += ["-r", str(self.real)]
        if self.forwarding is not None:
            out.append("-" + self.forwarding.value)
        for switch, value in (("-w", self.weight), ("-x", self.upper_threshold), ("-y", self.lower_threshold)):
            if value is not None:
                out += [switch, str(value)]
        for switch, on in (
            ("-n", self.numeric),
            ("-c", self.connection),
            ("--timeout", self.timeout),
            ("--stats", self.stats),
            ("--rate", self.rate),
            ("--exact", self.exact),
            ("--nosort", self.nosort),
        ):
            if on:
                out.append(switch)
        return out

    def __str__(self) -> str:
        return " ".join(self.argv())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (the CLI sends it to the daemon); only fields that differ from the default."""
        out: dict[str, Any] = {"verb": self.verb.name}
        if self.service is not None:
            out["service"] = {"proto": self.service.proto.name, "vip": str(self.service.vip), "port": self.service.port}
        if self.real is not None:
            out["real"] = {"address": str(self.real.address), "port": self.real.port}
        for name in ("scheduler", "persistence", "weight", "upper_threshold", "lower_threshold"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if self.sched_flags is not None:
            out["sched_flags"] = sorted(self.sched_flags)
        if self.netmask is not None:
            out["netmask"] = str(self.netmask)
        if self.forwarding is not None:
            out["forwarding"] = self.forwarding.value
        for name in ("numeric", "connection", "stats", "rate", "exact", "nosort", "timeout"):
            if getattr(self, name):
                out[name] = True
        if self.timeouts is not None:
            out["timeouts"] = list(self.timeouts)
        if self.commands:
            out["commands"] = [c.to_dict() for c in self.commands]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Command:
        """The inverse of `to_dict`, validated exactly as a parsed line is (the socket is untrusted)."""
        return _command_from_dict(data, nested=False)


def parse_command(argv: Sequence[str]) -> Command:
    """Parse one ipvsadm command line (a leading `ipvsadm` word is dropped). Raises ConfigError."""
    words = list(argv)
    if words and words[0] == "ipvsadm":
        words = words[1:]
    scan = _Scan()
    scan.run(words)
    command = scan.build()
    validate(command)
    return command


def validate(command: Command) -> None:
    """ipvsadm's checks after parsing: option legality per command, then what the values imply."""
    _check_options(command.verb, _given_options(command))
    check_values(command)
    if command.verb is Verb.LIST and (command.connection or command.timeout) and (command.stats or command.rate):
        raise ConfigError("options conflicts in the list command")
    if command.verb is Verb.SET and command.timeouts is None:
        raise ConfigError("--set option requires 3 timeout values")
    if command.verb in (Verb.ADD_SERVICE, Verb.EDIT_SERVICE):
        assert command.service is not None
        if command.service.port == 0 and command.persistence is None:
            raise ConfigError("Zero port specified for non-persistent service")
        scheduler = command.scheduler or DEFAULT_SCHEDULER
        check_scheduler(scheduler)
        if command.sched_flags:
            check_sched_flags(scheduler, command.sched_flags)
        command.service_config()
    if command.verb is Verb.ADD_REAL:
        assert command.service is not None
        check_real_for_service(command.service, command.real_config())
    if command.verb in (Verb.ADD_REAL, Verb.EDIT_REAL):
        assert command.service is not None and command.real is not None
        check_real_is_not_vip(command.service, command.real)
    if command.verb is Verb.EDIT_REAL and command.forwarding is not None:
        assert command.service is not None and command.real is not None
        check_real_for_service(command.service, RealServer(command.real.address, command.real.port, command.forwarding))
    if command.verb is Verb.RESTORE:
        for inner in command.commands:
            if not inner.verb.mutating:
                raise ConfigError(f"'{inner.verb.flag}' cannot be part of a restore (only -A -E -D -a -e -d -C --set)")
            validate(inner)


def check_values(command: Command) -> None:
    """The ranges and address classes a parsed line already obeys, checked again on the Command.

    A Command built from JSON (the control socket) skips the parsers; this keeps it to the same
    bounds, with the same messages as the command line gives.
    """
    if command.service is not None:
        check_virtual_address(command.service.vip)
    if command.real is not None:
        check_real_address(command.real.address)
        if not 0 <= command.real.port <= 65535:
            raise ConfigError(f"illegal real server address[:port] specified: '{command.real}' (port must be a number 0..65535)")
    if command.persistence is not None and not 1 <= command.persistence <= MAX_TIMEOUT:
        raise ConfigError(f"invalid timeout value `{command.persistence}' specified (must be 1..{MAX_TIMEOUT} seconds)")
    for value in command.timeouts or ():
        if not 0 <= value <= MAX_TIMEOUT:
            raise ConfigError(f"invalid timeout value `{value}' specified (must be 0..{MAX_TIMEOUT} seconds)")
    for value, low, high, message in (
        (command.weight, 0, MAX_WEIGHT, "illegal weight specified"),
        (command.upper_threshold, 0, INT_MAX, "illegal u_threshold specified"),
        (command.lower_threshold, 0, INT_MAX, "illegal l_threshold specified"),
    ):
        if value is not None and not low <= value <= high:
            raise ConfigError(f"{message}: '{value}' (must be an integer {low}..{high})")
    if command.netmask is not None and not _is_contiguous(command.netmask):
        raise ConfigError(f"illegal virtual server persistent mask specified: '{command.netmask}' (not a contiguous netmask)")


# Address classes no VIP can be (RFC 5735 / RFC 6890 names). A client cannot address a service at the
# unspecified address, and broadcast or multicast destinations are delivered to many hosts at once,
# which a connection-tracking balancer cannot serve; 240.0.0.0/4 is reserved and dropped by routers.
_UNSPECIFIED = IPv4Address("0.0.0.0")
_BROADCAST = IPv4Address("255.255.255.255")
_MULTICAST = IPv4Network("224.0.0.0/4")
_RESERVED = IPv4Network("240.0.0.0/4")
_LOOPBACK = IPv4Network("127.0.0.0/8")


def vip_problem(address: IPv4Address) -> str | None:
    """Why `address` cannot be a virtual service address, or None when it can.

    Loopback VIPs (127.0.0.0/8) are allowed: no packet arriving on a NIC carries one (the kernel
    drops such martians), so a live balancer never sees traffic for them, but replaying recorded
    captures with BPF_PROG_RUN does (pcaps/corpus-rules/zeek.rules balances Zeek's 127.0.0.1
    captures), and refusing them would break those rules for no safety gained.
    """
    if address == _UNSPECIFIED:
        return "the unspecified address 0.0.0.0 is no destination a client can send to"
    if address == _BROADCAST:
        return "the limited broadcast address reaches every host of the link, not a service"
    if address in _MULTICAST:
        return "a multicast address (224.0.0.0/4); lbxdp balances unicast traffic only"
    if address in _RESERVED:
        return "a reserved address (240.0.0.0/4) that routers do not forward"
    return None


def real_problem(address: IPv4Address) -> str | None:
    """Why `address` cannot be a real server, or None when it can.

    A real is one other host that XDP forwards to (by MAC, tunnel or NAT); an address that is no
    host, or many, or this machine's own loopback, cannot receive forwarded packets. 240.0.0.0/4
    stays allowed for reals: Linux routes it as unicast on a local network, where reals live.
    """
    if address == _UNSPECIFIED:
        return "the unspecified address 0.0.0.0 names no host"
    if address == _BROADCAST:
        return "the limited broadcast address is every host of the link, not one real"
    if address in _MULTICAST:
        return "a multicast address (224.0.0.0/4) is a group, not one real"
    if address in _LOOPBACK:
        return "a loopback address (127.0.0.0/8): XDP forwards to other hosts, never to this one (no IPVS local node)"
    return None


def check_virtual_address(address: IPv4Address) -> None:
    problem = vip_problem(address)
    if problem is not None:
        raise ConfigError(f"illegal virtual server address {address}: {problem}")


def check_real_address(address: IPv4Address) -> None:
    problem = real_problem(address)
    if problem is not None:
        raise ConfigError(f"illegal real server address {address}: {problem}")


def check_real_is_not_vip(service: ServiceKey, real: RealKey) -> None:
    """A real at the service's own address is the balancer itself: with -g the frame would be sent to
    the VIP's owner (us), with -i tunnelled to ourselves, with -m translated to our own address. IPVS
    can deliver such packets locally (its local node); XDP has no local delivery, so every packet
    would loop or be dropped."""
    if real.address == service.vip:
        raise ConfigError(
            f"real server {real}: same address as the virtual service {service.vip}; "
            "a real must be another host (lbxdp cannot deliver to itself, for -g, -i and -m alike)"
        )


# --- scheduler registry -------------------------------------------------------------------------


def known_schedulers() -> tuple[str, ...]:
    """Scheduler names from lb.sched's registry: built-ins, loaded plugins, installed entry points."""
    return tuple(scheduler_names())


def check_scheduler(name: str) -> None:
    names = known_schedulers()
    if name not in names:
        raise ConfigError(f"Scheduler not found: '{name}' (available: {', '.join(names)})")


def check_sched_flags(scheduler: str, flags: Iterable[str]) -> None:
    """ipvsadm's parse_sched_flags: unknown names are invalid, another scheduler's are incompatible."""
    allowed = _flags_allowed(scheduler)
    for flag in sorted(flags):
        if flag in allowed:
            continue
        if flag in _builtin_flags():
            raise ConfigError(f"incompatible scheduler flag `{flag}' (scheduler {scheduler} takes: {_list(allowed)})")
        raise ConfigError(f"invalid scheduler flag `{flag}' (scheduler {scheduler} takes: {_list(allowed)})")


def normalize_sched_flags(scheduler: str, flags: Iterable[str]) -> frozenset[str]:
    """Map ipvsadm's generic names (flag-1, flag-2) to the scheduler's own (sh-fallback, sh-port)."""
    aliases = _flag_aliases(scheduler)
    return frozenset(aliases.get(f, f) for f in flags)


def format_sched_flags(flags: Iterable[str]) -> str:
    """Flags in ipvsadm's print order (print_sched_flags: fallback before port), comma-separated."""
    order = _builtin_flags()
    return ",".join(sorted(flags, key=lambda f: (order.index(f) if f in order else len(order), f)))


def _flags_allowed(scheduler: str) -> frozenset[str]:
    """The flags the registered scheduler class accepts (its `flags_allowed`), without building one."""
    try:
        return scheduler_class(scheduler).flags_allowed
    except ConfigError:
        return frozenset()


def _list(names: Iterable[str]) -> str:
    items = sorted(names)
    return ", ".join(items) if items else "no flags"


# --- value parsers: pure functions with ipvsadm's messages --------------------------------------


def service_switch(proto: Protocol) -> str:
    return "-t" if proto is Protocol.TCP else "-u"


def parse_address_port(text: str, what: str) -> tuple[IPv4Address, int | None]:
    """`A.B.C.D[:PORT]`; `what` is ipvsadm's noun ('virtual server' or 'real server').

    Only the syntax: whether the address may serve as a VIP or a real is `validate`'s business.
    """
    prefix = f"illegal {what} address[:port] specified: '{_shown(text)}'"
    if text.startswith("[") or text.count(":") > 1:
        raise ConfigError(f"{prefix} (IPv6 is not supported by lbxdp)")
    host, colon, port_text = text.partition(":")
    if not host.isascii():
        raise ConfigError(f"{prefix} (not an IPv4 address: write it in ASCII digits 0-9)")
    try:
        address = IPv4Address(host)
    except AddressValueError:
        raise ConfigError(f"{prefix} (not an IPv4 address; lbxdp does not resolve names)") from None
    if not colon:
        return address, None
    port = _ascii_int(port_text, signed=False)
    if port is None or port > 65535:
        ascii_hint = "" if port_text.isascii() else ", in ASCII digits 0-9"
        raise ConfigError(f"{prefix} (port must be a number 0..65535{ascii_hint})")
    return address, port


def parse_address(text: str, what: str) -> IPv4Address:
    """A bare dotted-quad IPv4 address, ASCII only (the JSON path's twin of parse_address_port)."""
    if not text.isascii():
        raise ConfigError(f"illegal {what} address specified: '{_shown(text)}' (not an IPv4 address: write it in ASCII digits 0-9)")
    try:
        return IPv4Address(text)
    except AddressValueError:
        raise ConfigError(f"illegal {what} address specified: '{_shown(text)}' (not an IPv4 address)") from None


def parse_number(text: str, low: int, high: int, message: str) -> int:
    """ipvsadm's string_to_number: a whole decimal string within [low, high], in ASCII digits."""
    value = _ascii_int(text, signed=True)
    if value is None or not low <= value <= high:
        ascii_hint = "" if text.isascii() else ", in ASCII digits 0-9"
        raise ConfigError(f"{message}: '{_shown(text)}' (must be an integer {low}..{high}{ascii_hint})")
    return value


def parse_timeout(text: str, low: int) -> int:
    value = _ascii_int(text, signed=True)
    if value is None or not low <= value <= MAX_TIMEOUT:
        ascii_hint = "" if text.isascii() else ", in ASCII digits 0-9"
        raise ConfigError(f"invalid timeout value `{_shown(text)}' specified (must be {low}..{MAX_TIMEOUT} seconds{ascii_hint})")
    return value


def _shown(text: str, limit: int = 40) -> str:
    """`text` as an error message quotes it: cut short, so a megabyte of input is not echoed back."""
    return text if len(text) <= limit else text[:limit] + "…"


def _ascii_int(text: str, *, signed: bool) -> int | None:
    """The value of a decimal written in ASCII digits 0-9 (an optional sign when `signed`), else None.

    str.isdigit() is true of '²' and '٨٠', and int() reads '٨٠' and '８０' as 80 (and raises on '²'),
    so neither alone tells a number a user typed from one that only looks like it. Twenty digits
    are more than any bound here needs, and keep int() clear of its 4300-digit limit.
    """
    body = text[1:] if signed and text[:1] in ("+", "-") else text
    if not (body.isascii() and body.isdigit()) or len(body) > 20:
        return None
    return int(text)


def parse_netmask(text: str) -> IPv4Address:
    if not text.isascii():
        raise ConfigError(f"illegal virtual server persistent mask specified: '{text}' (not a dotted netmask)")
    try:
        mask = IPv4Address(text)
    except AddressValueError:
        raise ConfigError(f"illegal virtual server persistent mask specified: '{text}' (not a dotted netmask)") from None
    if not _is_contiguous(mask):
        raise ConfigError(f"illegal virtual server persistent mask specified: '{text}' (not a contiguous netmask)")
    return mask


def _is_contiguous(mask: IPv4Address) -> bool:
    """Ones then zeros (a prefix mask): the inverted mask plus one is a power of two."""
    inverted = ~int(mask) & 0xFFFFFFFF
    return not inverted & (inverted + 1)


def parse_sched_flag_list(text: str) -> frozenset[str]:
    flags = [f for f in text.split(",")]
    if not text or any(not f for f in flags):
        raise ConfigError(f"invalid scheduler flag list `{text}' (comma-separated names, e.g. sh-port,sh-fallback)")
    return frozenset(flags)


# --- the option table ----------------------------------------------------------------------------


class _Kind(enum.Enum):
    VERB = 1
    FLAG = 2  # takes no value
    VALUE = 3  # takes one value
    OPTIONAL = 4  # -p: takes the next word only when it is a number


@dataclass(frozen=True)
class _Opt:
    short: str | None
    long: str
    kind: _Kind
    name: str  # ipvsadm's optnames[] entry (messages, duplicate detection); for verbs, the Verb name


_TABLE = (
    _Opt("A", "add-service", _Kind.VERB, "ADD_SERVICE"),
    _Opt("E", "edit-service", _Kind.VERB, "EDIT_SERVICE"),
    _Opt("D", "delete-service", _Kind.VERB, "DELETE_SERVICE"),
    _Opt("C", "clear", _Kind.VERB, "CLEAR"),
    _Opt("R", "restore", _Kind.VERB, "RESTORE"),
    _Opt("S", "save", _Kind.VERB, "SAVE"),
    _Opt("a", "add-server", _Kind.VERB, "ADD_REAL"),
    _Opt("e", "edit-server", _Kind.VERB, "EDIT_REAL"),
    _Opt("d", "delete-server", _Kind.VERB, "DELETE_REAL"),
    _Opt("L", "list", _Kind.VERB, "LIST"),
    _Opt("l", "list", _Kind.VERB, "LIST"),
    _Opt("Z", "zero", _Kind.VERB, "ZERO"),
    _Opt(None, "set", _Kind.VERB, "SET"),
    _Opt("t", "tcp-service", _Kind.VALUE, "service-address"),
    _Opt("u", "udp-service", _Kind.VALUE, "service-address"),
    _Opt("s", "scheduler", _Kind.VALUE, "scheduler"),
    _Opt("b", "sched-flags", _Kind.VALUE, "sched-flags"),
    _Opt("p", "persistent", _Kind.OPTIONAL, "persistent"),
    _Opt("M", "netmask", _Kind.VALUE, "netmask"),
    _Opt("r", "real-server", _Kind.VALUE, "real-server"),
    _Opt("g", "gatewaying", _Kind.FLAG, "forwarding-method"),
    _Opt("i", "ipip", _Kind.FLAG, "forwarding-method"),
    _Opt("m", "masquerading", _Kind.FLAG, "forwarding-method"),
    _Opt("w", "weight", _Kind.VALUE, "weight"),
    _Opt("x", "u-threshold", _Kind.VALUE, "u-threshold"),
    _Opt("y", "l-threshold", _Kind.VALUE, "l-threshold"),
    _Opt("n", "numeric", _Kind.FLAG, "numeric"),
    _Opt("c", "connection", _Kind.FLAG, "connection"),
    _Opt(None, "timeout", _Kind.FLAG, "timeout"),
    _Opt(None, "stats", _Kind.FLAG, "stats"),
    _Opt(None, "rate", _Kind.FLAG, "rate"),
    _Opt("X", "exact", _Kind.FLAG, "exact"),
    _Opt(None, "nosort", _Kind.FLAG, "nosort"),
    _Opt(None, "sort", _Kind.FLAG, "sort"),  # ipvsadm: "does nothing, for backwards compatibility"
)
_SHORT = {o.short: o for o in _TABLE if o.short}
_LONG = {o.long: o for o in _TABLE}

# ipvsadm.c commands_v_options, cut to the options lbxdp has, in optnames[] order (which decides
# which complaint comes first). '+' compulsory, 'x' illegal, '1' at most one of, ' ' optional.
_OPTION_ORDER = (
    "numeric", "connection", "service-address", "scheduler", "persistent", "netmask", "real-server",
    "forwarding-method", "weight", "u-threshold", "l-threshold", "timeout", "stats", "rate", "nosort",
    "exact", "sched-flags",
)  # fmt: skip
_RULES = {
    #                   -n   -c  svc  -s   -p   -M   -r  fwd   -w   -x   -y  tmo  -st  -rt  srt  -ex  -b
    Verb.ADD_SERVICE:    ("x", "x", "+", " ", " ", " ", "x", "x", "x", "x", "x", "x", "x", "x", "x", "x", " "),
    Verb.EDIT_SERVICE:   ("x", "x", "+", " ", " ", " ", "x", "x", "x", "x", "x", "x", "x", "x", "x", "x", " "),
    Verb.DELETE_SERVICE: ("x", "x", "+", "x", "x", "x", "x", "x", "x", "x", "x", "x", "x", "x", "x", "x", "x"),
    Verb.CLEAR:          ("x", "x", "x", "x", "x", "x", "x", "x", "x", "x", "x", "x", "x", "x", "x", "x", "x"),
    Verb.LIST:           (" ", "1", "1", "x", "x", "x", "x", "x", "x", "x", "x", "1", " ", " ", " ", " ", "x"),
    Verb.ADD_REAL:       ("x", "x", "+", "x", "x", "x", "+", " ", " ", " ", " ", "x", "x", "x", "x", "x", "x"),
    Verb.DELETE_REAL:    ("x", "x", "+", "x", "x", "x", "+", "x", "x", "x", "x", "x", "x", "x", "x", "x", "x"),
    Verb.EDIT_REAL:      ("x", "x", "+", "x", "x", "x", "+", " ", " ", " ", " ", "x", "x", "x", "x", "x", "x"),
    Verb.SET:            ("x", "x", "x", "x", "x", "x", "x", "x", "x", "x", "x", "x", "x", "x", "x", "x", "x"),
    Verb.RESTORE:        ("x", "x", "x", "x", "x", "x", "x", "x", "x", "x", "x", "x", "x", "x", "x", "x", "x"),
    Verb.SAVE:           (" ", "x", "x", "x", "x", "x", "x", "x", "x", "x", "x", "x", "x", "x", " ", "x", "x"),
    Verb.ZERO:           ("x", "x", " ", "x", "x", "x", "x", "x", "x", "x", "x", "x", "x", "x", "x", "x", "x"),
}  # fmt: skip
assert all(len(row) == len(_OPTION_ORDER) for row in _RULES.values())


def _check_options(verb: Verb, given: set[str]) -> None:
    """ipvsadm.c generic_opt_check, message for message."""
    first_exclusive: str | None = None
    for name, rule in zip(_OPTION_ORDER, _RULES[verb]):
        if name not in given:
            if rule == "+":
                raise ConfigError(f"You need to supply the '{name}' option for the '{verb.value}' command")
            continue
        if rule == "x":
            raise ConfigError(f"Illegal '{name}' option with the '{verb.value}' command")
        if rule == "1":
            if first_exclusive is not None:
                raise ConfigError(
                    f"The option '{name}' conflicts with the '{first_exclusive}' option in the '{verb.value}' command"
                )
            first_exclusive = name


def _given_options(c: Command) -> set[str]:
    present = {
        "numeric": c.numeric,
        "connection": c.connection,
        "service-address": c.service is not None,
        "scheduler": c.scheduler is not None,
        "persistent": c.persistence is not None,
        "netmask": c.netmask is not None,
        "real-server": c.real is not None,
        "forwarding-method": c.forwarding is not None,
        "weight": c.weight is not None,
        "u-threshold": c.upper_threshold is not None,
        "l-threshold": c.lower_threshold is not None,
        "timeout": c.timeout,
        "stats": c.stats,
        "rate": c.rate,
        "nosort": c.nosort,
        "exact": c.exact,
        "sched-flags": c.sched_flags is not None,
    }
    return {name for name, on in present.items() if on}


class _Scan:
    """popt's walk over the words, collecting values; `build()` turns them into a Command."""

    def __init__(self) -> None:
        self.verb: Verb | None = None
        self.seen: set[str] = set()
        self.values: dict[str, Any] = {}
        self.positionals: list[str] = []

    def run(self, words: list[str]) -> None:
        i = 0
        while i < len(words):
            word = words[i]
            i += 1
            if word == "--":
                self.positionals.extend(words[i:])
                return
            if word.startswith("--"):
                name, eq, inline = word[2:].partition("=")
                opt = _LONG.get(name)
                if opt is None:
                    raise ConfigError(f"invalid option `{word}'")
                if opt.kind in (_Kind.VERB, _Kind.FLAG):
                    if eq:
                        raise ConfigError(f"option `--{name}' takes no value")
                    self.take(opt, None, f"--{name}")
                elif opt.kind is _Kind.VALUE:
                    if not eq:
                        if i >= len(words):
                            raise ConfigError(f"--{name}: missing argument")
                        inline, i = words[i], i + 1
                    self.take(opt, inline, f"--{name}")
                else:
                    if not eq and i < len(words) and words[i].isdigit():
                        inline, eq, i = words[i], "=", i + 1
                    self.take(opt, inline if eq else None, f"--{name}")
            elif word.startswith("-") and len(word) > 1:
                cluster = word[1:]
                j = 0
                while j < len(cluster):
                    letter = cluster[j]
                    j += 1
                    opt = _SHORT.get(letter)
                    if opt is None:
                        raise ConfigError(f"invalid option `-{letter}'")
                    if opt.kind in (_Kind.VERB, _Kind.FLAG):
                        self.take(opt, None, f"-{letter}")
                        continue
                    rest = cluster[j:]
                    if opt.kind is _Kind.VALUE:
                        if not rest:
                            if i >= len(words):
                                raise ConfigError(f"-{letter}: missing argument")
                            rest, i = words[i], i + 1
                        self.take(opt, rest, f"-{letter}")
                    else:
                        if not rest and i < len(words) and words[i].isdigit():
                            rest, i = words[i], i + 1
                        self.take(opt, rest or None, f"-{letter}")
                    break
            else:
                self.positionals.append(word)

    def take(self, opt: _Opt, value: str | None, spelled: str) -> None:
        if opt.kind is _Kind.VERB:
            if self.verb is not None:
                raise ConfigError("multiple commands specified")
            self.verb = Verb[opt.name]
            return
        if opt.name == "sort":
            return
        if opt.name in self.seen:
            raise ConfigError(f"multiple '{opt.name}' options specified")
        self.seen.add(opt.name)
        v = self.values
        match opt.name:
            case "service-address":
                v["proto"] = Protocol.TCP if opt.long == "tcp-service" else Protocol.UDP
                v["service"] = parse_address_port(_val(value), "virtual server")
            case "real-server":
                v["real"] = parse_address_port(_val(value), "real server")
            case "scheduler":
                if not value:
                    raise ConfigError("Scheduler not found: '' (the scheduler name is empty)")
                v["scheduler"] = value
            case "sched-flags":
                v["sched_flags"] = parse_sched_flag_list(_val(value))
            case "persistent":
                v["persistence"] = DEFAULT_PERSISTENCE if value is None else parse_timeout(value, 1)
            case "netmask":
                v["netmask"] = parse_netmask(_val(value))
            case "forwarding-method":
                v["forwarding"] = Forwarding(opt.short)
            case "weight":
                v["weight"] = parse_number(_val(value), 0, MAX_WEIGHT, "illegal weight specified")
            case "u-threshold":
                v["upper_threshold"] = parse_number(_val(value), 0, INT_MAX, "illegal u_threshold specified")
            case "l-threshold":
                v["lower_threshold"] = parse_number(_val(value), 0, INT_MAX, "illegal l_threshold specified")
            case _:
                v[opt.name] = True

    def build(self) -> Command:
        if self.verb is None:
            raise ConfigError("no command specified (one of -A -E -D -a -e -d -C -R -S -L -Z --set)")
        v = self.values
        timeouts = None
        words = self.positionals
        if self.verb is Verb.SET:
            if len(words) < 3:
                raise ConfigError("--set option requires 3 timeout values")
            timeouts = (parse_timeout(words[0], 0), parse_timeout(words[1], 0), parse_timeout(words[2], 0))
            words = words[3:]
        if words:
            raise ConfigError(f"unexpected argument {words[0]}")
        service = None
        if "service" in v:
            vip, port = v["service"]
            service = ServiceKey(v["proto"], vip, port or 0)
        real = None
        if "real" in v:
            address, rport = v["real"]
            # ipvsadm.c: "copy vport to dport if not specified"
            real = RealKey(address, rport if rport is not None else (service.port if service else 0))
        scheduler = v.get("scheduler")
        flags = v.get("sched_flags")
        if flags is not None:
            flags = normalize_sched_flags(scheduler or DEFAULT_SCHEDULER, flags)
        return Command(
            verb=self.verb,
            service=service,
            scheduler=scheduler,
            sched_flags=flags,
            persistence=v.get("persistence"),
            netmask=v.get("netmask"),
            real=real,
            forwarding=v.get("forwarding"),
            weight=v.get("weight"),
            upper_threshold=v.get("upper_threshold"),
            lower_threshold=v.get("lower_threshold"),
            numeric=v.get("numeric", False),
            connection=v.get("connection", False),
            stats=v.get("stats", False),
            rate=v.get("rate", False),
            exact=v.get("exact", False),
            nosort=v.get("nosort", False),
            timeout=v.get("timeout", False),
            timeouts=timeouts,
        )


def _val(value: str | None) -> str:
    assert value is not None  # VALUE options always carry one
    return value


# --- dict decoding -------------------------------------------------------------------------------

_FIELD_NAMES = frozenset(f.name for f in fields(Command))


def _decode_fields(data: Mapping[str, Any], *, nested: bool = False) -> dict[str, Any]:
    """Command fields from a JSON object, every type checked (the socket is not trusted).

    Addresses and netmasks must be strings (IPv4Address would also take an int), numbers JSON
    integers (not booleans, floats or strings), lists lists of strings: anything else is a
    ConfigError naming the field, never a TypeError. A restore's rules cannot nest another restore,
    checked before recursing so a deep nest cannot exhaust the stack.
    """
    if not isinstance(data, Mapping):
        raise ConfigError("malformed command: not a JSON object")
    unknown = set(data) - _FIELD_NAMES
    if unknown:
        raise ConfigError(f"malformed command: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
    out: dict[str, Any] = {"verb": Verb[_str(data["verb"], "verb")]}
    if data.get("service") is not None:
        out["service"] = decode_service(data["service"])
    if data.get("real") is not None:
        r = _object(data["real"], "real", ("address", "port"))
        out["real"] = RealKey(parse_address(_str(r["address"], "real address"), "real server"), _int(r["port"]))
    for name in ("persistence", "weight", "upper_threshold", "lower_threshold"):
        if data.get(name) is not None:
            out[name] = _int(data[name])
    if data.get("scheduler") is not None:
        out["scheduler"] = _str(data["scheduler"], "scheduler")
    if data.get("sched_flags") is not None:
        out["sched_flags"] = frozenset(_str(f, "sched_flags") for f in _json_list(data["sched_flags"], "sched_flags"))
    if data.get("netmask") is not None:
        out["netmask"] = parse_netmask(_str(data["netmask"], "netmask"))
    if data.get("forwarding") is not None:
        out["forwarding"] = Forwarding(_str(data["forwarding"], "forwarding"))
    for name in ("numeric", "connection", "stats", "rate", "exact", "nosort", "timeout"):
        if name in data:
            if not isinstance(data[name], bool):
                raise ConfigError(f"malformed command: {name} must be true or false")
            out[name] = data[name]
    if data.get("timeouts") is not None:
        t = [_int(x) for x in _json_list(data["timeouts"], "timeouts")]
        if len(t) != 3:
            raise ConfigError("--set option requires 3 timeout values")
        out["timeouts"] = (t[0], t[1], t[2])
    if data.get("commands"):
        if nested:
            raise ConfigError("malformed command: a restore's rules cannot hold another restore")
        out["commands"] = tuple(_command_from_dict(c, nested=True) for c in _json_list(data["commands"], "commands"))
    return out


def decode_service(data: Any) -> ServiceKey:
    """A service key from JSON (`{"proto": "TCP", "vip": "10.0.0.1", "port": 80}`), types checked and
    the VIP held to `check_virtual_address`; ConfigError in one line otherwise. Also what the daemon
    uses for the service of a `health` request."""
    s = _object(data, "service", ("proto", "vip", "port"))
    proto = _str(s["proto"], "service proto")
    if proto not in Protocol.__members__:
        raise ConfigError("malformed command: service proto must be TCP or UDP")
    key = ServiceKey(Protocol[proto], parse_address(_str(s["vip"], "service vip"), "virtual server"), _int(s["port"]))
    check_virtual_address(key.vip)
    return key


def _command_from_dict(data: Any, *, nested: bool) -> Command:
    """A Command from JSON, or ConfigError in one line whatever the JSON held."""
    try:
        command = Command(**_decode_fields(data, nested=nested))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"malformed command: {exc}") from None
    validate(command)
    return command


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"malformed command: {_shown(repr(value))} is not an integer")
    return value


def _str(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"malformed command: {name} must be a string, not {type(value).__name__}")
    return value


def _json_list(value: Any, name: str) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(f"malformed command: {name} must be a list, not {type(value).__name__}")
    return value


def _object(value: Any, name: str, keys: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"malformed command: {name} must be an object, not {type(value).__name__}")
    missing = [k for k in keys if k not in value]
    if missing:
        raise ConfigError(f"malformed command: {name} lacks {', '.join(missing)}")
    return value

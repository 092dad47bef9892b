"""The `Command` value: one ipvsadm command line, its checks (`validate`), and its JSON form.

`validate` holds every check a parsed line passes, so a Command that arrives as JSON
(`Command.from_dict`, the control socket) is held to the same rules with the same messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from ipaddress import IPv4Address
from typing import Any

from lb.config.addresses import check_real_address, check_real_is_not_vip, check_virtual_address
from lb.config.jsontypes import json_int, json_list, json_object, json_str
from lb.config.options import check_options, service_switch
from lb.config.schedflags import check_sched_flags, check_scheduler, format_sched_flags
from lb.config.values import INT_MAX, MAX_TIMEOUT, is_contiguous, parse_address, parse_netmask
from lb.config.verbs import Verb
from lb.model import (
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


def validate(command: Command) -> None:
    """ipvsadm's checks after parsing: option legality per command, then what the values imply."""
    check_options(command.verb, _given_options(command))
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
            raise ConfigError(
                f"illegal real server address[:port] specified: '{command.real}' (port must be a number 0..65535)"
            )
    if command.persistence is not None and not 1 <= command.persistence <= MAX_TIMEOUT:
        raise ConfigError(f"invalid timeout value `{command.persistence}' specified (must be 1..{MAX_TIMEOUT} seconds)")
    for timeout in command.timeouts or ():
        if not 0 <= timeout <= MAX_TIMEOUT:
            raise ConfigError(f"invalid timeout value `{timeout}' specified (must be 0..{MAX_TIMEOUT} seconds)")
    for value, low, high, message in (
        (command.weight, 0, MAX_WEIGHT, "illegal weight specified"),
        (command.upper_threshold, 0, INT_MAX, "illegal u_threshold specified"),
        (command.lower_threshold, 0, INT_MAX, "illegal l_threshold specified"),
    ):
        if value is not None and not low <= value <= high:
            raise ConfigError(f"{message}: '{value}' (must be an integer {low}..{high})")
    if command.netmask is not None and not is_contiguous(command.netmask):
        raise ConfigError(
            f"illegal virtual server persistent mask specified: '{command.netmask}' (not a contiguous netmask)"
        )


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
    out: dict[str, Any] = {"verb": Verb[json_str(data["verb"], "verb")]}
    if data.get("service") is not None:
        out["service"] = decode_service(data["service"])
    if data.get("real") is not None:
        r = json_object(data["real"], "real", ("address", "port"))
        out["real"] = RealKey(parse_address(json_str(r["address"], "real address"), "real server"), json_int(r["port"]))
    for name in ("persistence", "weight", "upper_threshold", "lower_threshold"):
        if data.get(name) is not None:
            out[name] = json_int(data[name])
    if data.get("scheduler") is not None:
        out["scheduler"] = json_str(data["scheduler"], "scheduler")
    if data.get("sched_flags") is not None:
        flags = json_list(data["sched_flags"], "sched_flags")
        out["sched_flags"] = frozenset(json_str(f, "sched_flags") for f in flags)
    if data.get("netmask") is not None:
        out["netmask"] = parse_netmask(json_str(data["netmask"], "netmask"))
    if data.get("forwarding") is not None:
        out["forwarding"] = Forwarding(json_str(data["forwarding"], "forwarding"))
    for name in ("numeric", "connection", "stats", "rate", "exact", "nosort", "timeout"):
        if name in data:
            if not isinstance(data[name], bool):
                raise ConfigError(f"malformed command: {name} must be true or false")
            out[name] = data[name]
    if data.get("timeouts") is not None:
        t = [json_int(x) for x in json_list(data["timeouts"], "timeouts")]
        if len(t) != 3:
            raise ConfigError("--set option requires 3 timeout values")
        out["timeouts"] = (t[0], t[1], t[2])
    if data.get("commands"):
        if nested:
            raise ConfigError("malformed command: a restore's rules cannot hold another restore")
        out["commands"] = tuple(_command_from_dict(c, nested=True) for c in json_list(data["commands"], "commands"))
    return out


def decode_service(data: Any) -> ServiceKey:
    """A service key from JSON (`{"proto": "TCP", "vip": "10.0.0.1", "port": 80}`), types checked and
    the VIP held to `check_virtual_address`; ConfigError in one line otherwise. Also what the daemon
    uses for the service of a `health` request."""
    s = json_object(data, "service", ("proto", "vip", "port"))
    proto = json_str(s["proto"], "service proto")
    if proto not in Protocol.__members__:
        raise ConfigError("malformed command: service proto must be TCP or UDP")
    vip = parse_address(json_str(s["vip"], "service vip"), "virtual server")
    key = ServiceKey(Protocol[proto], vip, json_int(s["port"]))
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

"""The service table: the configuration the daemon is the authority on, edited by ipvsadm commands.

Semantics follow ipvsadm(8) and the kernel's answers to it (libipvs ipvs_strerror, ip_vs_ctl.c):
`-A` on an existing service is "Service already exists", `-a` on a missing one is "Service not
defined", `-E` replaces the service's settings but keeps its reals, `--set` values of 0 leave that
timeout unchanged (ip_vs_set_timeout). One lbxdp difference: `-e` changes only the settings given on
its line (ipvsadm resets the others to their defaults, a well-known way to turn a NAT real into a
direct-routing one by changing its weight).

Every command is validated in full before anything changes, so a refused edit leaves the table as it
was; RESTORE applies its rules to a copy and swaps it in only when all of them succeed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any

from lb.config.ipvsadm import Command, Verb, validate
from lb.config.jsontypes import json_int, json_list, json_str
from lb.model import (
    ConfigError,
    Forwarding,
    Protocol,
    RealKey,
    RealServer,
    Service,
    ServiceKey,
    VirtualService,
    check_real_for_service,
)

HOST_MASK = IPv4Address("255.255.255.255")  # ipvsadm's default persistence netmask: not written out


@dataclass(frozen=True)
class Timeouts:
    """Flow timeouts in seconds (`ipvsadm --set tcp tcpfin udp`); IPVS's defaults."""

    tcp: int = 900
    tcpfin: int = 120
    udp: int = 300


@dataclass(frozen=True)
class Change:
    """What an applied command changed, so the daemon resyncs only that.

    `touched`: services whose settings or reals changed (or that were added), in table order;
    `removed`: services that no longer exist; `timeouts`: the --set values changed.
    """

    verb: Verb
    touched: tuple[ServiceKey, ...] = ()
    removed: tuple[ServiceKey, ...] = ()
    timeouts: bool = False


class ServiceTable:
    """Ordered services, each with its reals in the order they were added."""

    def __init__(self) -> None:
        self._services: dict[ServiceKey, VirtualService] = {}
        self.timeouts = Timeouts()

    # --- reading ----------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[VirtualService]:
        return iter(self._services.values())

    def __len__(self) -> int:
        return len(self._services)

    def __contains__(self, key: object) -> bool:
        return key in self._services

    def get(self, key: ServiceKey) -> VirtualService:
        """The service, or ConfigError "No such service"."""
        try:
            return self._services[key]
        except KeyError:
            raise ConfigError(f"No such service: {key}") from None

    def services(self) -> list[VirtualService]:
        return list(self._services.values())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ServiceTable):
            return NotImplemented
        return self.snapshot() == other.snapshot()

    # --- editing ----------------------------------------------------------------------------------

    def apply(self, command: Command) -> Change:
        """Apply one mutating command (or ZERO, which only checks its service exists).

        Raises ConfigError with ipvsadm's message; the table is unchanged when it does.
        """
        validate(command)
        verb = command.verb
        if verb is Verb.RESTORE:
            return self._restore(command)
        if verb is Verb.CLEAR:
            removed = tuple(self._services)
            self._services.clear()
            return Change(verb, removed=removed)
        if verb is Verb.SET:
            assert command.timeouts is not None
            tcp, tcpfin, udp = command.timeouts
            old = self.timeouts
            # ip_vs_set_timeout: a zero leaves that timeout as it was.
            self.timeouts = Timeouts(tcp or old.tcp, tcpfin or old.tcpfin, udp or old.udp)
            return Change(verb, timeouts=True)
        if verb is Verb.ZERO:
            if command.service is not None:
                self.get(command.service)
            return Change(verb)
        if not verb.mutating:
            raise ConfigError(f"'{verb.flag}' does not change the configuration")
        key = command.service
        assert key is not None  # validate() guarantees a service for the verbs below
        if verb is Verb.ADD_SERVICE:
            service = command.service_config()
            if key in self._services:
                raise ConfigError(f"Service already exists: {key}")
            self._services[key] = VirtualService(service)
            return Change(verb, touched=(key,))
        if verb is Verb.EDIT_SERVICE:
            self.get(key).service = command.service_config()
            return Change(verb, touched=(key,))
        if verb is Verb.DELETE_SERVICE:
            self.get(key)
            del self._services[key]
            return Change(verb, removed=(key,))
        vs = self._services.get(key)
        if vs is None:
            raise ConfigError(f"Service not defined: {key}")
        rkey = command.real
        assert rkey is not None
        if verb is Verb.ADD_REAL:
            real = command.real_config()
            check_real_for_service(key, real)
            if rkey in vs.reals:
                raise ConfigError(f"Destination already exists: {rkey} in {key}")
            vs.reals[rkey] = real
        elif verb is Verb.EDIT_REAL:
            current = vs.reals.get(rkey)
            if current is None:
                raise ConfigError(f"No such destination: {rkey} in {key}")
            real = command.edit_real(current)
            check_real_for_service(key, real)
            vs.reals[rkey] = real
        else:
            if rkey not in vs.reals:
                raise ConfigError(f"No such destination: {rkey} in {key}")
            del vs.reals[rkey]
        return Change(verb, touched=(key,))

    def _restore(self, command: Command) -> Change:
        scratch = self.copy()
        for number, inner in enumerate(command.commands, start=1):
            try:
                scratch.apply(inner)
            except ConfigError as exc:
                raise ConfigError(f"restore rule {number} ({inner}): {exc}") from None
        removed = tuple(k for k in self._services if k not in scratch._services)
        self._services = scratch._services
        self.timeouts = scratch.timeouts
        return Change(Verb.RESTORE, touched=tuple(self._services), removed=removed, timeouts=True)

    def copy(self) -> ServiceTable:
        """A deep copy (services and reals are frozen values; only the containers are copied)."""
        other = ServiceTable()
        other.timeouts = self.timeouts
        for key, vs in self._services.items():
            other._services[key] = VirtualService(vs.service, dict(vs.reals))
        return other

    # --- persistence --------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """A JSON-able dict of the whole table, in order (the daemon persists and reloads it)."""
        return {
            "timeouts": {"tcp": self.timeouts.tcp, "tcpfin": self.timeouts.tcpfin, "udp": self.timeouts.udp},
            "services": [
                {
                    "proto": vs.service.key.proto.name,
                    "vip": str(vs.service.key.vip),
                    "port": vs.service.key.port,
                    "scheduler": vs.service.scheduler,
                    "sched_flags": sorted(vs.service.sched_flags),
                    "persistence": vs.service.persistence,
                    "netmask": str(vs.service.netmask),
                    "reals": [
                        {
                            "address": str(r.address),
                            "port": r.port,
                            "forwarding": r.forwarding.value,
                            "weight": r.weight,
                            "upper_threshold": r.upper_threshold,
                            "lower_threshold": r.lower_threshold,
                        }
                        for r in vs.reals.values()
                    ],
                }
                for vs in self._services.values()
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ServiceTable:
        """The inverse of `snapshot()`; every value goes through the same validation as a command."""
        table = cls()
        try:
            t = data.get("timeouts") or {}
            defaults = Timeouts()
            table.timeouts = Timeouts(
                json_int(t.get("tcp", defaults.tcp)), json_int(t.get("tcpfin", defaults.tcpfin)),
                json_int(t.get("udp", defaults.udp)),
            )
            for s in data.get("services", []):
                key = ServiceKey(Protocol[json_str(s["proto"], "proto")], _address(s["vip"]), json_int(s["port"]))
                flags = json_list(s.get("sched_flags", []), "sched_flags")
                service = Service(
                    key=key,
                    scheduler=json_str(s["scheduler"], "scheduler"),
                    sched_flags=frozenset(json_str(f, "sched_flags") for f in flags),
                    persistence=None if s.get("persistence") is None else json_int(s["persistence"]),
                    netmask=_address(s.get("netmask", "255.255.255.255")),
                )
                validate(
                    Command(
                        Verb.ADD_SERVICE,
                        service=key,
                        scheduler=service.scheduler,
                        sched_flags=service.sched_flags or None,
                        persistence=service.persistence,
                        netmask=service.netmask,
                    )
                )
                if key in table._services:
                    raise ConfigError(f"Service already exists: {key}")
                vs = VirtualService(service)
                for r in s.get("reals", []):
                    real = RealServer(
                        address=_address(r["address"]),
                        port=json_int(r["port"]),
                        forwarding=Forwarding(json_str(r.get("forwarding", "g"), "forwarding")),
                        weight=json_int(r.get("weight", 1)),
                        upper_threshold=json_int(r.get("upper_threshold", 0)),
                        lower_threshold=json_int(r.get("lower_threshold", 0)),
                    )
                    check_real_for_service(key, real)
                    if real.key in vs.reals:
                        raise ConfigError(f"Destination already exists: {real.key} in {key}")
                    vs.reals[real.key] = real
                table._services[key] = vs
        except ConfigError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(f"malformed service table: {exc}") from None
        return table

    def commands(self) -> list[Command]:
        """Commands that rebuild this table from empty (what a save file says)."""
        out: list[Command] = []
        for vs in self._services.values():
            s = vs.service
            out.append(
                Command(
                    Verb.ADD_SERVICE,
                    service=s.key,
                    scheduler=s.scheduler,
                    sched_flags=s.sched_flags or None,
                    persistence=s.persistence,
                    netmask=s.netmask if s.persistence is not None and s.netmask != HOST_MASK else None,
                )
            )
            for r in vs.reals.values():
                out.append(
                    Command(
                        Verb.ADD_REAL,
                        service=s.key,
                        real=RealKey(r.address, r.port),
                        forwarding=r.forwarding,
                        weight=r.weight,
                        upper_threshold=r.upper_threshold or None,
                        lower_threshold=r.lower_threshold or None,
                    )
                )
        return out


def _address(value: Any) -> IPv4Address:
    """An address saved as a dotted string (IPv4Address would also take an int or a bool)."""
    return IPv4Address(json_str(value, "address"))

"""ipvsadm's save format: write a table as `ipvsadm -S -n` prints it, and read rules files back.

The layout is ipvsadm.c's print_service_entry under FMT_RULE (1.31): services sorted by protocol,
address and port, each as `-A -t VIP:PORT -s SCHED [-p TIMEOUT [-M MASK]] [-b FLAGS]`, followed by
its reals sorted by address and port as `-a -t VIP:PORT -r RIP:RPORT -g|-i|-m -w WEIGHT`. ipvsadm
leaves the -x/-y thresholds out of its save output, so restoring loses them; lbxdp appends
` -x N` / ` -y N` when they are set, so that `-S` then `-C` and `-R` gives back the same table (a
table without thresholds saves exactly as ipvsadm would).

A rules file is one command per line, as ipvsadm-restore reads it, plus blank lines, `#` comments and
an optional leading `ipvsadm` word; errors name the place as `FILE:LINE: message`.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from dataclasses import dataclass

from lb.config.ipvsadm import Command, Verb, format_sched_flags, parse_command, service_switch
from lb.config.table import ServiceTable
from lb.model import HOST_NETMASK, ConfigError, RealServer, VirtualService


class RulesError(ConfigError):
    """A rules file line that does not parse or apply; `str()` is `FILE:LINE: message`."""

    def __init__(self, filename: str, line: int, message: str) -> None:
        super().__init__(f"{filename}:{line}: {message}")
        self.filename = filename
        self.line = line
        self.message = message


@dataclass(frozen=True)
class Rule:
    """One command from a rules file and the line it came from."""

    line: int
    command: Command


def save(table: ServiceTable, *, nosort: bool = False) -> str:
    """The table as `ipvsadm -S -n` prints it ('' for an empty table)."""
    return "".join(line + "\n" for line in save_lines(table, nosort=nosort))


def save_lines(table: ServiceTable, *, nosort: bool = False) -> list[str]:
    lines: list[str] = []
    for vs in sorted_services(table, nosort=nosort):
        lines.append(service_rule(vs))
        lines.extend(real_rule(vs, r) for r in sorted_reals(vs, nosort=nosort))
    return lines


def sorted_services(table: Iterable[VirtualService], *, nosort: bool = False) -> list[VirtualService]:
    """ipvsadm's listing order (libipvs ipvs_cmp_services: protocol, address, port) unless --nosort."""
    services = list(table)
    if nosort:
        return services
    return sorted(services, key=lambda vs: (int(vs.service.key.proto), int(vs.service.key.vip), vs.service.key.port))


def sorted_reals(vs: VirtualService, *, nosort: bool = False) -> list[RealServer]:
    """ipvsadm's order for reals (ipvs_cmp_dests: address, port) unless --nosort."""
    reals = list(vs.reals.values())
    return reals if nosort else sorted(reals, key=lambda r: (int(r.address), r.port))


def service_rule(vs: VirtualService) -> str:
    s = vs.service
    out = f"-A {_service_name(vs)} -s {s.scheduler}"
    if s.persistence is not None:
        out += f" -p {s.persistence}"
        if s.netmask != HOST_NETMASK:
            out += f" -M {s.netmask}"
    if s.sched_flags:
        out += f" -b {format_sched_flags(s.sched_flags)}"
    return out


def real_rule(vs: VirtualService, real: RealServer) -> str:
    out = f"-a {_service_name(vs)} -r {real.address}:{real.port} -{real.forwarding.value} -w {real.weight}"
    if real.upper_threshold:
        out += f" -x {real.upper_threshold}"
    if real.lower_threshold:
        out += f" -y {real.lower_threshold}"
    return out


def _service_name(vs: VirtualService) -> str:
    key = vs.service.key
    return f"{service_switch(key.proto)} {key.vip}:{key.port}"


def parse_rules(text: str, filename: str = "<rules>") -> list[Rule]:
    """Parse a rules file into commands; only configuration commands may appear in one."""
    rules: list[Rule] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        try:
            words = shlex.split(raw, comments=True)
        except ValueError as exc:
            raise RulesError(filename, number, f"cannot split the line into words: {exc}") from None
        if words[:1] == ["ipvsadm"]:
            words = words[1:]
        if not words:
            continue
        try:
            command = parse_command(words)
        except ConfigError as exc:
            raise RulesError(filename, number, str(exc)) from None
        if not command.verb.mutating:
            raise RulesError(
                filename,
                number,
                f"'{command.verb.flag}' cannot appear in a rules file (only -A -E -D -a -e -d -C --set)",
            )
        rules.append(Rule(number, command))
    return rules


def load_rules(text: str, filename: str = "<rules>", base: ServiceTable | None = None) -> ServiceTable:
    """Parse a rules file and apply it, in order, to a copy of `base` (an empty table by default).

    Applying catches what parsing cannot (a real for a service the file never added, a duplicate);
    either way the error is `FILE:LINE: message`. `base` itself is never changed.
    """
    target = base.copy() if base is not None else ServiceTable()
    for rule in parse_rules(text, filename):
        try:
            target.apply(rule.command)
        except ConfigError as exc:
            raise RulesError(filename, rule.line, str(exc)) from None
    return target


def restore_command(rules: Iterable[Rule]) -> Command:
    """The RESTORE command that carries a parsed rules file to the daemon."""
    return Command(Verb.RESTORE, commands=tuple(r.command for r in rules))

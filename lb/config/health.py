"""Health-check settings in lbxdp's own syntax, next to ipvsadm's (which has none).

ipvsadm leaves liveness to keepalived; lbxdp checks reals itself, so it needs a line to say how:

    lbxdp health -t 10.0.0.100:80 --check http --path /healthz --expect 200 \\
                 --interval 2 --timeout 1 --rise 2 --fall 3 --dead-flows expire

The same words, starting with `health`, may stand in a rules file among the ipvsadm lines (see
`split_rules`). Pure parsing: the daemon applies the result.
"""

from __future__ import annotations

import argparse
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from lb.balancer.health import (
    MAX_COUNT,
    MAX_INTERVAL,
    MAX_PATH,
    MIN_INTERVAL,
    MIN_TIMEOUT,
    CheckKind,
    DeadFlows,
    HealthCheck,
)
from lb.config.ipvsadm import check_virtual_address, parse_address_port
from lb.config.savefmt import RulesError, load_rules
from lb.config.table import ServiceTable
from lb.model import ConfigError, Protocol, ServiceKey

HEALTH_EXAMPLES = """\
examples:
  lbxdp health -t 10.0.0.100:80 --check tcp                      # TCP connect every 2 s
  lbxdp health -t 10.0.0.100:80 --check http --path /healthz --expect 200 --interval 1 --fall 2
  lbxdp health -u 10.0.0.100:53 --check tcp --port 53           # a UDP service checked over TCP
  lbxdp health -t 10.0.0.100:80 --check none                     # stop checking (reals stay as they are)
  lbxdp health -t 10.0.0.100:80 --check tcp --dead-flows keep    # a dead real keeps its flows
"""


@dataclass(frozen=True)
class HealthRule:
    service: ServiceKey
    check: HealthCheck

    def argv(self) -> list[str]:
        c = self.check
        switch = "-t" if self.service.proto is Protocol.TCP else "-u"
        out = ["health", switch, f"{self.service.vip}:{self.service.port}", "--check", c.kind.value]
        if c.kind is CheckKind.HTTP:
            out += ["--path", c.path, "--expect", str(c.expect)]
        out += ["--interval", f"{c.interval:g}", "--timeout", f"{c.timeout:g}"]
        out += ["--rise", str(c.rise), "--fall", str(c.fall)]
        if c.port is not None:
            out += ["--port", str(c.port)]
        out += ["--dead-flows", c.dead_flows.value]
        return out


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"health: {message}")


def _seconds(text: str) -> float:
    """A duration as a plain decimal in ASCII digits ('2', '0.5'): float() would also take 'nan',
    'inf', '1e9' and Arabic-Indic digits, none of which a user means as a probe interval."""
    if not (text.isascii() and _DECIMAL.fullmatch(text)):
        raise argparse.ArgumentTypeError(f"'{text[:40]}' is not a number of seconds (a decimal such as 0.5)")
    return float(text)


def _whole(text: str) -> int:
    """A whole number in ASCII digits (int() would also read '٢' and '２' as 2)."""
    if not (text.isascii() and text.isdigit() and len(text) <= 10):
        raise argparse.ArgumentTypeError(f"'{text[:40]}' is not a whole number (ASCII digits 0-9)")
    return int(text)


_DECIMAL = re.compile(r"[0-9]{1,10}(\.[0-9]{0,9})?|\.[0-9]{1,9}")


def parser(add_help: bool = True) -> argparse.ArgumentParser:
    """The `lbxdp health` options. `add_help=False` for rules-file lines, where `-h` must be an
    error: argparse answers it by printing and exiting, which would end the daemon loading the file."""
    p = _Parser(
        prog="lbxdp health",
        description="Set how lbxdp checks the real servers of a service (keepalived's knobs).",
        epilog=HEALTH_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        add_help=add_help,
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("-t", "--tcp-service", metavar="VIP:PORT")
    which.add_argument("-u", "--udp-service", metavar="VIP:PORT")
    p.add_argument(
        "--check", choices=[k.value for k in CheckKind], required=True, help="tcp connect, http GET, or none"
    )
    p.add_argument(
        "--path", default="/",
        help=f"HTTP path to GET (default /): starts with /, printable ASCII without spaces, "
        f"at most {MAX_PATH} characters",
    )
    p.add_argument("--expect", type=_whole, default=200, help="HTTP status that means healthy, 100..599 (default 200)")
    p.add_argument(
        "--interval", type=_seconds, default=2.0,
        help=f"seconds between checks, {MIN_INTERVAL:g}..{MAX_INTERVAL:g} (default 2)",
    )
    p.add_argument(
        "--timeout", type=_seconds, default=1.0,
        help=f"seconds a whole check may take (connect, request and status line), "
        f"{MIN_TIMEOUT:g}..interval (default 1)",
    )
    p.add_argument(
        "--rise", type=_whole, default=2, help=f"successes that bring a real back, 1..{MAX_COUNT} (default 2)"
    )
    p.add_argument("--fall", type=_whole, default=3, help=f"failures that take a real out, 1..{MAX_COUNT} (default 3)")
    p.add_argument("--port", type=_whole, help="port to check, 1..65535 (default: the real's own port)")
    p.add_argument(
        "--dead-flows",
        choices=[d.value for d in DeadFlows],
        default="expire",
        help="a dead real's established flows: expire them so clients reconnect elsewhere (default), or keep them",
    )
    return p


def parse_health(argv: Sequence[str]) -> HealthRule:
    """One `health …` line (the word `health` optional) → a HealthRule, or ConfigError in one line."""
    words = list(argv)
    if words and words[0] == "health":
        words = words[1:]
    args = parser(add_help=False).parse_args(words)
    proto = Protocol.TCP if args.tcp_service else Protocol.UDP
    vip, port = parse_address_port(args.tcp_service or args.udp_service, "service address")
    if port is None:
        raise ConfigError("health: the service address needs a port (VIP:PORT)")
    try:
        check_virtual_address(vip)
    except ConfigError as exc:
        raise ConfigError(f"health: {exc}") from None
    if args.port is not None and not 1 <= args.port <= 65535:
        raise ConfigError(f"health: port {args.port} is out of range (1..65535)")
    try:
        check = HealthCheck(
            CheckKind(args.check), args.interval, args.timeout, args.rise, args.fall, args.path, args.expect,
            args.port, DeadFlows(args.dead_flows),
        )
    except ValueError as exc:
        raise ConfigError(f"health: {exc}") from None
    return HealthRule(ServiceKey(proto, vip, port), check)


def split_rules(text: str) -> tuple[str, list[tuple[int, str]]]:
    """Separate `health …` lines from the ipvsadm lines of a rules file.

    Returns the ipvsadm text with health lines blanked (so line numbers in errors stay true) and
    the health lines with their numbers.
    """
    kept, health = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip().startswith("health"):
            health.append((number, line.strip()))
            kept.append("")
        else:
            kept.append(line)
    return "\n".join(kept) + ("\n" if text.endswith("\n") else ""), health


def load_rules_file(
    text: str, filename: str, base: ServiceTable | None = None
) -> tuple[ServiceTable, list[HealthRule]]:
    """A rules file with ipvsadm lines and `health` lines: the table it builds and its health rules.

    Errors are RulesError (`FILE:LINE: message`); a health line must name a service the file (or
    `base`) defines.
    """
    ipvsadm_text, health_lines = split_rules(text)
    table = load_rules(ipvsadm_text, filename, base)
    rules = []
    for number, line in health_lines:
        try:
            rule = parse_health(shlex.split(line))
        except (ConfigError, ValueError) as exc:
            raise RulesError(filename, number, str(exc)) from None
        if rule.service not in table:
            raise RulesError(filename, number, f"health: No such service: {rule.service}")
        rules.append(rule)
    return table, rules

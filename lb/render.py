"""`lbxdp -L` output in ipvsadm's exact layout, as pure functions of the table and plain numbers.

The column widths, the truncation of names (33 characters for a service, 28 for a real), the K/M/G/T
scaling of large numbers and its `--exact` escape all follow ipvsadm.c 1.31 (print_title,
print_service_entry, print_largenum, list_conn, print_conn), so scripts that read `ipvsadm -L -n`
read `lbxdp -L -n`. Trailing blanks in the real server rows are ipvsadm's too ("%-10u" is the last
column). Addresses are always numeric: lbxdp resolves no names, so `-n` changes nothing.

Inputs are what the daemon has at hand: the ServiceTable, per-service and per-real numbers as plain
dicts keyed by the names below (missing means 0), and connection rows as dicts. Nothing here reads
a map or a clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from lb.config import lbxdp_version
from lb.config.ipvsadm import Command, Verb, format_sched_flags
from lb.config.savefmt import save, sorted_reals, sorted_services
from lb.config.table import ServiceTable, Timeouts
from lb.model import HOST_NETMASK, ConfigError, Protocol, RealKey, RealServer, ServiceKey, VirtualService

Numbers = Mapping[str, int]
"""Counters for one service or real: active, inactive (connections held); conns, inpkts, outpkts,
inbytes, outbytes (--stats totals); cps, inpps, outpps, inbps, outbps (--rate, per second)."""

STATS_COLUMNS = ("conns", "inpkts", "outpkts", "inbytes", "outbytes")
RATE_COLUMNS = ("cps", "inpps", "outpps", "inbps", "outbps")
_PLAIN_TITLE = (
    "Prot LocalAddress:Port Scheduler Flags\n"
    "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
)


def header(size: int, version: str | None = None) -> str:
    """ipvsadm's first line of `-L`, naming lbxdp; `size` is the flow table's capacity."""
    return f"IP Virtual Server version lbxdp-{version or lbxdp_version()} (size={size})\n"


def largenum(value: int, *, exact: bool = False) -> str:
    """ipvsadm.c print_largenum: 9 columns, scaled by 1000s past 100 million unless exact."""
    if exact:
        text = str(value)
        return f"{value:>{9 if len(text) <= 8 else len(text) + 1}}"
    if value < 100_000_000:
        return f"{value:>9}"
    for limit, divisor, unit in (
        (1_000_000_000, 1_000, "K"),
        (100_000_000_000, 1_000_000, "M"),
        (100_000_000_000_000, 1_000_000_000, "G"),
    ):
        if value < limit:
            return f"{value // divisor:>8}{unit}"
    return f"{value // 1_000_000_000_000:>8}T"


def service_name(key: ServiceKey) -> str:
    """`TCP  10.0.0.1:80`: protocol padded to 4, cut at 33 characters as ipvsadm does for IPv4."""
    return f"{key.proto.label:<4} {key.vip}:{key.port}"[:33]


def real_name(real: RealServer | RealKey) -> str:
    return f"{real.address}:{real.port}"[:28]


def render_list(
    table: ServiceTable,
    service_numbers: Mapping[ServiceKey, Numbers] | None = None,
    real_numbers: Mapping[tuple[ServiceKey, RealKey], Numbers] | None = None,
    *,
    stats: bool = False,
    rate: bool = False,
    exact: bool = False,
    nosort: bool = False,
    service: ServiceKey | None = None,
    size: int = 0,
    version: str | None = None,
) -> str:
    """`-L -n` (and `--stats` / `--rate`; stats wins when both are given, as in ipvsadm).

    With `service`, only that service and no header line (ipvsadm's list_service); a missing one
    raises ConfigError "No such service".
    """
    snums = service_numbers or {}
    rnums = real_numbers or {}
    if service is not None:
        chosen = [table.get(service)]
        out = ""
    else:
        chosen = sorted_services(table, nosort=nosort)
        out = header(size, version)
    out += _title(stats=stats, rate=rate)
    for vs in chosen:
        key = vs.service.key
        out += _service_line(vs, snums.get(key, {}), stats=stats, rate=rate, exact=exact)
        for real in sorted_reals(vs, nosort=nosort):
            out += _real_line(real, rnums.get((key, real.key), {}), stats=stats, rate=rate, exact=exact)
    return out


def _title(*, stats: bool, rate: bool) -> str:
    if stats or rate:
        names = ("Conns", "InPkts", "OutPkts", "InBytes", "OutBytes") if stats else (
            "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS")  # fmt: skip
        cols = " ".join(f"{n:>8}" for n in names)
        return f"{'Prot LocalAddress:Port':<33} {cols}\n  -> RemoteAddress:Port\n"
    return _PLAIN_TITLE


def _service_line(vs: VirtualService, nums: Numbers, *, stats: bool, rate: bool, exact: bool) -> str:
    s = vs.service
    name = service_name(s.key)
    if stats or rate:
        columns = STATS_COLUMNS if stats else RATE_COLUMNS
        return f"{name:<33}" + "".join(largenum(nums.get(c, 0), exact=exact) for c in columns) + "\n"
    line = f"{name} {s.scheduler}"
    if s.sched_flags:
        line += f" ({format_sched_flags(s.sched_flags)})"
    if s.persistence is not None:
        line += f" persistent {s.persistence}"
        if s.netmask != HOST_NETMASK:
            line += f" mask {s.netmask}"
    return line + "\n"


def _real_line(real: RealServer, nums: Numbers, *, stats: bool, rate: bool, exact: bool) -> str:
    name = real_name(real)
    if stats:
        return f"  -> {name:<28}" + "".join(largenum(nums.get(c, 0), exact=exact) for c in STATS_COLUMNS) + "\n"
    if rate:
        # ipvsadm prints the per-real cps/pps unscaled and only the byte rates through print_largenum.
        head = f"  -> {name:<28} {nums.get('cps', 0):>8} {nums.get('inpps', 0):>8} {nums.get('outpps', 0):>8}"
        return head + largenum(nums.get("inbps", 0), exact=exact) + largenum(nums.get("outbps", 0), exact=exact) + "\n"
    active, inactive = nums.get("active", 0), nums.get("inactive", 0)
    return f"  -> {name:<28} {real.forwarding.label:<7} {real.weight:<6} {active:<10} {inactive:<10}\n"


def render_connections(rows: Iterable[Mapping[str, Any]]) -> str:
    """`-L -c`: ipvsadm's list_conn. Each row: proto (TCP/UDP or 6/17), expire (seconds left),
    state (e.g. ESTABLISHED, FIN_WAIT, UDP), saddr, sport, vaddr, vport, daddr, dport."""
    out = "IPVS connection entries\n"
    out += f"pro expire {'state':<11} {'source':<18} {'virtual':<18} destination\n"
    for row in rows:
        proto = row["proto"]
        label = proto if isinstance(proto, str) else Protocol(proto).label
        expire = int(row["expire"])
        clock = f"{expire // 60:02d}:{expire % 60:02d}"
        source = f"{row['saddr']}:{row['sport']}"
        virtual = f"{row['vaddr']}:{row['vport']}"
        dest = f"{row['daddr']}:{row['dport']}"
        out += f"{label:<3} {clock:<6} {row['state']:<11} {source:<18} {virtual:<18} {dest}\n"
    return out


def render_timeouts(timeouts: Timeouts) -> str:
    """`-L --timeout`: ipvsadm's list_timeout."""
    return f"Timeout (tcp tcpfin udp): {timeouts.tcp} {timeouts.tcpfin} {timeouts.udp}\n"


def render_command(
    command: Command,
    table: ServiceTable,
    service_numbers: Mapping[ServiceKey, Numbers] | None = None,
    real_numbers: Mapping[tuple[ServiceKey, RealKey], Numbers] | None = None,
    connections: Sequence[Mapping[str, Any]] = (),
    *,
    size: int = 0,
) -> str:
    """The text `-L …` or `-S` prints, chosen the way ipvsadm's process_options chooses it."""
    if command.verb is Verb.SAVE:
        return save(table, nosort=command.nosort)
    if command.verb is not Verb.LIST:
        raise ConfigError(f"'{command.verb.flag}' prints nothing")
    if command.connection:
        return render_connections(connections)
    if command.timeout:
        return render_timeouts(table.timeouts)
    return render_list(
        table,
        service_numbers,
        real_numbers,
        stats=command.stats,
        rate=command.rate,
        exact=command.exact,
        nosort=command.nosort,
        service=command.service,
        size=size,
    )


def render_health(entries: Sequence[tuple[Any, Any, Sequence[tuple[Any, bool, str]]]]) -> str:
    """lbxdp's addition to `-L`: each checked service's check, and each real's state and last result.

    `entries` rows are (ServiceKey, HealthCheck, [(RealKey, up, last result)]). Printed after
    ipvsadm's table, so scripts that parse ipvsadm's layout still read it unchanged above.
    """
    if not entries:
        return ""
    lines = ["Health checks:"]
    for service, check, reals in entries:
        what = check.kind.value
        if what == "http":
            what += f" GET {check.path} expect {check.expect}"
        lines.append(
            f"{service.proto.name:<4} {service.vip}:{service.port} {what} every {check.interval:g}s "
            f"timeout {check.timeout:g}s rise {check.rise} fall {check.fall}, dead flows {check.dead_flows.value}"
        )
        for real, up, last in reals:
            lines.append(f"  -> {real!s:<26} {'UP' if up else 'DOWN':<5} {last}")
    return "\n".join(lines) + "\n"


def render_first_packets(table: ServiceTable, decided: Mapping[ServiceKey, str], *, nosort: bool = False,
                         service: ServiceKey | None = None) -> str:
    """lbxdp's addition to `-L`: where each service's first packets are decided, `xdp` or
    `daemon (why)` (lb.daemon.schedin), in the listing's order.

    Printed after ipvsadm's table as its own section, each line indented, so no line reads as
    ipvsadm's service lines (which start at column 0) or real lines (`  -> `).
    """
    chosen = [table.get(service)] if service is not None else sorted_services(table, nosort=nosort)
    lines = [f"  {service_name(vs.service.key)}  {decided[vs.service.key]}"
             for vs in chosen if vs.service.key in decided]
    return "\n".join(["First packets decided in:", *lines]) + "\n" if lines else ""

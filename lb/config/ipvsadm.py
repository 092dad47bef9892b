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

This module is the front door (`parse_command`, and the public names of the parts below); each job
lives in its own module of lb.config: `verbs` (the commands), `options` (the option table and which
options each command takes), `scan` (popt's walk over argv), `values` (one word → one value),
`addresses` (what may be a VIP or a real), `schedflags` (scheduler names and -b flags), `command`
(the Command value, `validate`, its JSON form) and `jsontypes` (type checks on JSON input).
"""

from __future__ import annotations

from collections.abc import Sequence

from lb.config.addresses import (
    check_real_address,
    check_real_is_not_vip,
    check_virtual_address,
    real_problem,
    vip_problem,
)
from lb.config.command import Command, check_values, decode_service, validate
from lb.config.options import service_switch
from lb.config.scan import Scan
from lb.config.schedflags import (
    GENERIC_FLAGS,
    check_sched_flags,
    check_scheduler,
    format_sched_flags,
    known_schedulers,
    normalize_sched_flags,
)
from lb.config.values import (
    INT_MAX,
    MAX_TIMEOUT,
    parse_address,
    parse_address_port,
    parse_netmask,
    parse_number,
    parse_sched_flag_list,
    parse_timeout,
)
from lb.config.verbs import MUTATING_VERBS, Verb

__all__ = [
    "GENERIC_FLAGS",
    "INT_MAX",
    "MAX_TIMEOUT",
    "MUTATING_VERBS",
    "Command",
    "Verb",
    "check_real_address",
    "check_real_is_not_vip",
    "check_sched_flags",
    "check_scheduler",
    "check_values",
    "check_virtual_address",
    "decode_service",
    "format_sched_flags",
    "known_schedulers",
    "normalize_sched_flags",
    "parse_address",
    "parse_address_port",
    "parse_command",
    "parse_netmask",
    "parse_number",
    "parse_sched_flag_list",
    "parse_timeout",
    "real_problem",
    "service_switch",
    "validate",
    "vip_problem",
]


def parse_command(argv: Sequence[str]) -> Command:
    """Parse one ipvsadm command line (a leading `ipvsadm` word is dropped). Raises ConfigError."""
    words = list(argv)
    if words and words[0] == "ipvsadm":
        words = words[1:]
    scan = Scan()
    scan.run(words)
    command = scan.build()
    validate(command)
    return command

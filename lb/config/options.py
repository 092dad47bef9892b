"""ipvsadm's option table: each switch's short and long spelling and what it takes, and
generic_opt_check's table of which options each command requires, forbids or takes one of.

Data and one check; the walk over argv that uses the table is lb.config.scan.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from lb.config.verbs import Verb
from lb.model import ConfigError, Protocol


def service_switch(proto: Protocol) -> str:
    return "-t" if proto is Protocol.TCP else "-u"


class Kind(enum.Enum):
    VERB = 1
    FLAG = 2  # takes no value
    VALUE = 3  # takes one value
    OPTIONAL = 4  # -p: takes the next word only when it is a number


@dataclass(frozen=True)
class Opt:
    short: str | None
    long: str
    kind: Kind
    name: str  # ipvsadm's optnames[] entry (messages, duplicate detection); for verbs, the Verb name


TABLE = (
    Opt("A", "add-service", Kind.VERB, "ADD_SERVICE"),
    Opt("E", "edit-service", Kind.VERB, "EDIT_SERVICE"),
    Opt("D", "delete-service", Kind.VERB, "DELETE_SERVICE"),
    Opt("C", "clear", Kind.VERB, "CLEAR"),
    Opt("R", "restore", Kind.VERB, "RESTORE"),
    Opt("S", "save", Kind.VERB, "SAVE"),
    Opt("a", "add-server", Kind.VERB, "ADD_REAL"),
    Opt("e", "edit-server", Kind.VERB, "EDIT_REAL"),
    Opt("d", "delete-server", Kind.VERB, "DELETE_REAL"),
    Opt("L", "list", Kind.VERB, "LIST"),
    Opt("l", "list", Kind.VERB, "LIST"),
    Opt("Z", "zero", Kind.VERB, "ZERO"),
    Opt(None, "set", Kind.VERB, "SET"),
    Opt("t", "tcp-service", Kind.VALUE, "service-address"),
    Opt("u", "udp-service", Kind.VALUE, "service-address"),
    Opt("s", "scheduler", Kind.VALUE, "scheduler"),
    Opt("b", "sched-flags", Kind.VALUE, "sched-flags"),
    Opt("p", "persistent", Kind.OPTIONAL, "persistent"),
    Opt("M", "netmask", Kind.VALUE, "netmask"),
    Opt("r", "real-server", Kind.VALUE, "real-server"),
    Opt("g", "gatewaying", Kind.FLAG, "forwarding-method"),
    Opt("i", "ipip", Kind.FLAG, "forwarding-method"),
    Opt("m", "masquerading", Kind.FLAG, "forwarding-method"),
    Opt("w", "weight", Kind.VALUE, "weight"),
    Opt("x", "u-threshold", Kind.VALUE, "u-threshold"),
    Opt("y", "l-threshold", Kind.VALUE, "l-threshold"),
    Opt("n", "numeric", Kind.FLAG, "numeric"),
    Opt("c", "connection", Kind.FLAG, "connection"),
    Opt(None, "timeout", Kind.FLAG, "timeout"),
    Opt(None, "stats", Kind.FLAG, "stats"),
    Opt(None, "rate", Kind.FLAG, "rate"),
    Opt("X", "exact", Kind.FLAG, "exact"),
    Opt(None, "nosort", Kind.FLAG, "nosort"),
    Opt(None, "sort", Kind.FLAG, "sort"),  # ipvsadm: "does nothing, for backwards compatibility"
)
SHORT = {o.short: o for o in TABLE if o.short}
LONG = {o.long: o for o in TABLE}

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


def check_options(verb: Verb, given: set[str]) -> None:
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

"""popt's walk over an ipvsadm argument list: bundled short options, `--long=value`, `-p`'s optional
timeout; the values found become a `Command` (not yet validated: lb.config.ipvsadm.parse_command does that)."""

from __future__ import annotations

from typing import Any

from lb.config.command import Command
from lb.config.options import LONG, SHORT, Kind, Opt
from lb.config.schedflags import normalize_sched_flags
from lb.config.values import (
    INT_MAX,
    parse_address_port,
    parse_netmask,
    parse_number,
    parse_sched_flag_list,
    parse_timeout,
)
from lb.config.verbs import Verb
from lb.model import (
    DEFAULT_PERSISTENCE,
    DEFAULT_SCHEDULER,
    MAX_WEIGHT,
    ConfigError,
    Forwarding,
    Protocol,
    RealKey,
    ServiceKey,
)


class Scan:
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
                opt = LONG.get(name)
                if opt is None:
                    raise ConfigError(f"invalid option `{word}'")
                if opt.kind in (Kind.VERB, Kind.FLAG):
                    if eq:
                        raise ConfigError(f"option `--{name}' takes no value")
                    self.take(opt, None, f"--{name}")
                elif opt.kind is Kind.VALUE:
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
                    opt = SHORT.get(letter)
                    if opt is None:
                        raise ConfigError(f"invalid option `-{letter}'")
                    if opt.kind in (Kind.VERB, Kind.FLAG):
                        self.take(opt, None, f"-{letter}")
                        continue
                    rest = cluster[j:]
                    if opt.kind is Kind.VALUE:
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

    def take(self, opt: Opt, value: str | None, spelled: str) -> None:
        if opt.kind is Kind.VERB:
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

"""Scheduler names and `-b` flags as ipvsadm checks and prints them, from lb.sched's registry.

ipvsadm leaves unknown schedulers to the kernel; lbxdp checks them here, with the registry's list in
the message. Flag names are a scheduler's own (`sh-fallback`) or the kernel's generic `flag-N`.
"""

from __future__ import annotations

from collections.abc import Iterable

from lb.model import ConfigError
from lb.sched import builtin_schedulers, scheduler_class, scheduler_names

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

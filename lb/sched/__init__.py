"""Schedulers by name, as ipvsadm's `-s` names them (sshuttle's get_method() pattern).

`get_scheduler("wlc", frozenset({...}))` returns a fresh instance; built-ins register on import (the
registry itself is lb.sched.registry, which no scheduler module needs this package for).
Researchers add their own without touching lbxdp (see docs/schedulers.md):

- an installed package declares an entry point in the group `lbxdp.schedulers`
  (`myrr = "mypkg.sched:MyRR"`); it is imported only when its name is asked for;
- a spec `module:Class` or `path/to/file.py:Class`, given to `load_plugin()` or listed,
  comma-separated, in the environment variable LBXDP_SCHEDULERS (read on first use).
"""

from __future__ import annotations

from lb.sched.base import Destination, Scheduler
from lb.sched.registry import (
    ENV_VAR,
    builtin_schedulers,
    get_scheduler,
    load_plugin,
    register,
    scheduler_class,
    scheduler_names,
)

# The built-ins register as they are imported, in ipvsadm(8)'s order, which is the order help texts
# list them in (registry.builtin_schedulers()): keep it.
# isort: off
from lb.sched import rr, wrr, lc, wlc, sed, nq, sh, dh, mh, fo, ovf  # noqa: F401
# isort: on

__all__ = [
    "ENV_VAR",
    "Destination",
    "Scheduler",
    "builtin_schedulers",
    "get_scheduler",
    "load_plugin",
    "register",
    "scheduler_class",
    "scheduler_names",
]

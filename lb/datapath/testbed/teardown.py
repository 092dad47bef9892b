"""Taking a topology down, and clearing what crashed runs left behind.

Order matters: processes first (a namespace whose name is removed lives on, anonymously, while a
process is in it), then sockets, then the decapsulator's map entries, then the namespaces (which
takes their veths, bridges and XDP programs with them); Topology.teardown takes those steps in
that order, with the helpers here. Each step is guarded on its own: a failure is reported and the
next step still runs.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import time

from pyroute2 import netns

from .links import remove_netns
from .naming import STALE_GLOB, creator_pid
from .nsenter import kill_pids, pids_in_netns

log = logging.getLogger(__name__)


def guarded_step(problems: list[str], label: str, fn: object, *args: object) -> None:
    """One teardown step on its own: a failure is added to `problems` and the next step still runs."""
    try:
        fn(*args)  # type: ignore[operator]
    except Exception as exc:  # noqa: BLE001 - teardown goes on; the problem is reported
        problems.append(f"{label}: {exc}")


def remove_namespace(name: str, problems: list[str]) -> None:
    """Kill every process in the namespace, then delete it."""
    guarded_step(problems, f"kill processes in {name}", kill_pids, pids_in_netns(name), 0.5)
    guarded_step(problems, f"remove {name}", remove_netns, name)


def log_problems(problems: list[str]) -> None:
    """Every problem of a teardown as a warning: teardown never raises, so this is how they show."""
    for problem in problems:
        log.warning("testbed teardown: %s", problem)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cleanup_stale(prefix_glob: str = STALE_GLOB) -> list[str]:
    """Delete namespaces matching `prefix_glob` that a dead run created; return their names.

    Only names of our shape (`lbx-<pid>-<tag>-…`) are touched, and only when <pid> is no longer
    a live process: other engineers' concurrent runs on the same machine keep their topologies.
    The current process's own namespaces are left alone too (its topologies tear themselves down).
    """
    if not prefix_glob.startswith("lbx-"):
        raise ValueError(f"cleanup_stale only manages lbx- namespaces, not {prefix_glob!r}")
    removed: list[str] = []
    problems: list[str] = []
    me = os.getpid()
    for name in sorted(netns.listnetns()):
        if not fnmatch.fnmatchcase(name, prefix_glob):
            continue
        pid = creator_pid(name)
        if pid is None or pid == me or _pid_alive(pid):
            continue
        remove_namespace(name, problems)
        removed.append(name)
    for problem in problems:
        log.warning("cleanup_stale: %s", problem)
    return removed


def wait_gone(prefix: str, timeout: float = 2.0) -> bool:
    """True once no namespace with `prefix` is listed (for tests of teardown)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(n.startswith(prefix) for n in netns.listnetns()):
            return True
        time.sleep(0.02)
    return False

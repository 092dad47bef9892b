"""Taking a topology down, and clearing what crashed runs left behind.

Order matters: processes first (a namespace whose name is removed lives on, anonymously, while a
process is in it), then sockets, then the decapsulator's map entries, then the namespaces (which
takes their veths, bridges and XDP programs with them). Each step is guarded on its own: a failure
is reported and the next step still runs.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import shutil
import time
from typing import TYPE_CHECKING

from pyroute2 import netns

from . import decap
from .links import remove_netns
from .naming import STALE_GLOB, creator_pid
from .nsenter import kill_pids, pids_in_netns

if TYPE_CHECKING:
    from .topology import Topology

log = logging.getLogger(__name__)


def _step(problems: list[str], label: str, fn: object, *args: object) -> None:
    try:
        fn(*args)  # type: ignore[operator]
    except Exception as exc:  # noqa: BLE001 - teardown goes on; the problem is reported
        problems.append(f"{label}: {exc}")


def remove_namespace(name: str, problems: list[str]) -> None:
    """Kill every process in the namespace, then delete it."""
    _step(problems, f"kill processes in {name}", kill_pids, pids_in_netns(name), 0.5)
    _step(problems, f"remove {name}", remove_netns, name)


def teardown_topology(topo: Topology) -> list[str]:
    problems: list[str] = []
    if topo._closed:
        return problems
    topo._closed = True
    for conn in topo._held:
        _step(problems, "close held connection", conn.close)
    topo._held.clear()
    _step(problems, "stop processes", topo.procs.stop_all)
    for address in topo._decap_addrs:
        _step(problems, f"forget decap address {address}", decap.remove_local, address)
    for name in topo.namespaces:
        remove_namespace(name, problems)
    left = [n for n in netns.listnetns() if n.startswith(topo.prefix)]
    if left:
        problems.append(f"namespaces left behind: {', '.join(left)}")
    if not os.environ.get("LBX_KEEP_WORKDIR"):
        _step(problems, "remove workdir", shutil.rmtree, topo.workdir)
    for problem in problems:
        log.warning("testbed teardown: %s", problem)
    return problems


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

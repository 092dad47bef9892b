"""Doing things inside a named network namespace from this process, without a subprocess.

A network namespace is a per-thread attribute on Linux: setns(2) with CLONE_NEWNET moves only the
calling thread. `in_netns_call` runs a function on a short-lived helper thread that has entered the
namespace, so the caller's threads never change namespace (nothing can leave the test process
stranded in a topology), while objects made there keep their namespace: a socket stays bound to
the namespace it was created in, and a /proc/sys/net file opened there names that namespace's
setting (the kernel resolves /proc/sys/net against the opening task's namespace).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

NETNS_RUN_DIR = "/run/netns"
_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)

T = TypeVar("T")


def ns_path(netns: str) -> str:
    return os.path.join(NETNS_RUN_DIR, netns)


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def in_netns_call(netns: str, fn: Callable[[], T], timeout: float = 10.0) -> T:
    """Run `fn()` on a helper thread inside `netns` and return its result (or raise its error)."""
    result: list[T] = []
    error: list[BaseException] = []

    def body() -> None:
        try:
            fd = os.open(ns_path(netns), os.O_RDONLY | os.O_CLOEXEC)
            try:
                _setns(fd)
            finally:
                os.close(fd)
            result.append(fn())
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller's thread
            error.append(exc)

    thread = threading.Thread(target=body, name=f"netns:{netns}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"operation in namespace {netns} did not finish in {timeout:.1f}s")
    if error:
        raise error[0]
    return result[0]


def ns_socket(netns: str, family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM) -> socket.socket:
    """A socket living in `netns`, usable from any thread of this process."""
    return in_netns_call(netns, lambda: socket.socket(family, kind))


def write_sysctls(netns: str, settings: Mapping[str, str | int]) -> None:
    """Set `net.*` sysctls (dotted names) inside `netns`."""

    def apply() -> None:
        for key, value in settings.items():
            if not key.startswith("net."):
                raise ValueError(f"only net.* sysctls are per namespace, not {key}")
            with open("/proc/sys/" + key.replace(".", "/"), "w") as handle:
                handle.write(f"{value}\n")

    in_netns_call(netns, apply)


def read_sysctl(netns: str, key: str) -> str:
    def read() -> str:
        with open("/proc/sys/" + key.replace(".", "/")) as handle:
            return handle.read().strip()

    return in_netns_call(netns, read)


def netns_inode(netns: str) -> tuple[int, int] | None:
    try:
        st = os.stat(ns_path(netns))
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def pids_in_netns(netns: str) -> list[int]:
    """Every process whose network namespace is `netns` (what `ip netns pids` reports).

    This catches what a tracked Popen cannot: daemons that double-forked out of their parent
    (e.g. `lbxdp attach` leaving its daemon behind).
    """
    ident = netns_inode(netns)
    if ident is None:
        return []
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            st = os.stat(f"/proc/{entry}/ns/net")
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == ident:
            found.append(int(entry))
    return found


def kill_pids(pids: Iterable[int], grace: float = 1.0) -> None:
    """SIGTERM, wait up to `grace` seconds, then SIGKILL whatever is left."""
    pending = set(pids)
    for pid in list(pending):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pending.discard(pid)
    deadline = time.monotonic() + grace
    while pending and time.monotonic() < deadline:
        pending = {pid for pid in pending if _alive(pid)}
        if pending:
            time.sleep(0.02)
    for pid in pending:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            # A zombie has exited; only its parent's wait() is missing.
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ESRCH):
            return False
        raise

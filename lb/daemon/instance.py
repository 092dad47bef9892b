"""Where one lbxdp instance keeps its files: one instance per network namespace.

Two namespaces on one host share /run and /sys/fs/bpf, so every path is keyed by the namespace's
identity (the inode of /proc/self/ns/net), never by a name the operator might reuse.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

RUN_ROOT = Path("/run/lbxdp")


def netns_id() -> str:
    return f"netns-{os.stat('/proc/self/ns/net').st_ino}"


def run_dir() -> Path:
    """/run/lbxdp/<netns id>/: the daemon's log and saved state."""
    return RUN_ROOT / netns_id()


def log_path() -> Path:
    return run_dir() / "daemon.log"


def state_path() -> Path:
    """The configuration the daemon last had, so a restarted daemon comes back with it."""
    return run_dir() / "state.json"


SO_NETNS_COOKIE = 71  # include/uapi/asm-generic/socket.h, Linux 5.14


def netns_cookie() -> str:
    """The namespace's cookie: unlike its inode, never reused while the machine is up."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        return str(int.from_bytes(sock.getsockopt(socket.SOL_SOCKET, SO_NETNS_COOKIE, 8), "little"))


def forget_previous_incarnation(pin_root: Path) -> bool:
    """Remove this namespace's run directory and pins if they belong to an earlier namespace that
    had the same inode (deleted without `lbxdp detach`; the kernel reuses inode numbers quickly).
    A new daemon would otherwise adopt that namespace's services and flows. The run directory
    remembers the cookie of the namespace that made it. Returns True when something was removed."""
    marker = run_dir() / "netns-cookie"
    current = netns_cookie()
    try:
        made_by = marker.read_text().strip()
    except FileNotFoundError:
        made_by = None
    except OSError:
        made_by = ""
    removed = made_by is not None and made_by != current
    if removed:
        shutil.rmtree(run_dir(), ignore_errors=True)
        shutil.rmtree(pin_root / netns_id(), ignore_errors=True)
    make_run_dir()
    marker.write_text(current + "\n")
    return removed


def make_run_dir() -> Path:
    """The run directory, root's alone (0700): the log and state name every real and check."""
    RUN_ROOT.mkdir(mode=0o755, parents=True, exist_ok=True)
    path = run_dir()
    path.mkdir(mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)  # one an older lbxdp made with the umask's bits
    return path


def live_netns_ids() -> set[str]:
    """Identities of every network namespace that still exists: those a process is in and those
    bound under /run/netns (`ip netns add` keeps a namespace alive with no process in it)."""
    ids = set()
    for ns_link in Path("/proc").glob("[0-9]*/ns/net"):
        try:
            ids.add(f"netns-{os.stat(ns_link).st_ino}")
        except OSError:
            continue
    for bound in Path("/run/netns").glob("*"):
        try:
            ids.add(f"netns-{os.stat(bound).st_ino}")
        except OSError:
            continue
    return ids


def stale_dirs(root: Path) -> list[Path]:
    """Per-namespace directories under `root` whose namespace is gone (deleted without a detach)."""
    if not root.is_dir():
        return []
    live = live_netns_ids()
    return [d for d in root.iterdir() if d.name.startswith("netns-") and d.name not in live]


def remove_stale(roots: list[Path]) -> list[Path]:
    """Remove the per-namespace directories under `roots` whose namespace is gone; returns them."""
    removed = []
    for root in roots:
        for stale in stale_dirs(root):
            shutil.rmtree(stale, ignore_errors=True)
            removed.append(stale)
    return removed

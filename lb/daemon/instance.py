"""Where one lbxdp instance keeps its files: one instance per network namespace.

Two namespaces on one host share /run and /sys/fs/bpf, so every path is keyed by the namespace's
identity (the inode of /proc/self/ns/net), never by a name the operator might reuse.
"""

from __future__ import annotations

import os
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

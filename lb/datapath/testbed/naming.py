"""Per-run names: one prefix from which every namespace name and the run's subnet derive.

The prefix `lbx-<pid>-<random4>-` is unique per run (the pid separates concurrent runs, the random
part separates topologies of one run), and it carries its creator's pid so that `cleanup_stale` can
tell a crashed run's leftovers from a concurrent run that is still alive.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import string

PREFIX_ROOT = "lbx-"
STALE_GLOB = "lbx-*"
_PREFIX_RE = re.compile(r"^lbx-(?P<pid>[0-9]+)-(?P<tag>[a-z0-9]{4})-")
_ALPHABET = string.ascii_lowercase + string.digits


def make_prefix() -> str:
    """A new prefix for this process: `lbx-<pid>-<4 random chars>-`."""
    tag = "".join(secrets.choice(_ALPHABET) for _ in range(4))
    return f"{PREFIX_ROOT}{os.getpid()}-{tag}-"


def check_prefix(prefix: str) -> str:
    """Return `prefix` if it has our shape, else raise ValueError (we only manage our names)."""
    if not _PREFIX_RE.match(prefix) or not prefix.endswith("-"):
        raise ValueError(f"testbed prefix must look like lbx-<pid>-<abcd>-, got {prefix!r}")
    return prefix


def creator_pid(name: str) -> int | None:
    """The pid encoded in one of our namespace names, or None if the name is not ours."""
    match = _PREFIX_RE.match(name)
    return int(match.group("pid")) if match else None


def subnet_index(prefix: str) -> int:
    """A second octet in 1..254 derived from the prefix, for addresses 10.<x>.0.0/16.

    Uniqueness is a convenience for reading captures, not a necessity: every topology lives in
    its own namespaces, so two runs that draw the same <x> never see each other's addresses.
    """
    digest = hashlib.sha256(prefix.encode()).digest()
    return 1 + digest[0] % 254


def ns_name(prefix: str, host: str) -> str:
    """The namespace name of a host: `<prefix><host>`, e.g. `lbx-4242-k3x9-client`."""
    return f"{prefix}{host}"

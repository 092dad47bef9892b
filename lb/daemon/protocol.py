"""The control channel between `lbxdp` commands and the daemon of the same network namespace.

Transport: an abstract Unix stream socket, `\\0lbxdp-control`. The kernel scopes abstract names by
network namespace, so every namespace has its own and two instances on one host never answer each
other's commands.

Who may talk (checked with SO_PEERCRED on both ends, before a byte is read or written):

- the daemon serves a client whose uid is 0, or which holds CAP_NET_ADMIN (CapEff bit 12) in the
  daemon's own user namespace, as IPVS's netlink family does for ipvsadm, and did not get it by a
  privilege-raising exec (AT_SECURE: see may_configure); anyone else gets one error line and the
  connection is closed without reading from it; at most one line a minute about refusals goes to
  the log;
- a client sends only to a listener whose uid is 0. Abstract names carry no permissions: any user
  can bind `lbxdp-control` first, and would then receive root's `-R` rules and forge `-L` replies.
  Checking the listener's credentials closes that; a daemon that finds its name taken says who
  holds it.

One connection carries one request:

    request  one JSON object on one line (UTF-8, at most MAX_REQUEST bytes, "\\n"-terminated),
             complete within REQUEST_DEADLINE seconds of the connection being accepted (one
             deadline for the whole request, not per read): {"op": NAME, ...fields}
    reply    one or more lines, each one JSON object:
             {"ok": true, "output": CHUNK, "more": true}   zero or more partial lines, then
             {"ok": true, "output": CHUNK, ...extra}       the last line, or
             {"ok": false, "error": ONE_LINE}              an error (always a single line)
             A reply's output is the concatenation of its chunks; each chunk holds at most
             CHUNK_CHARS characters, so `-L -c` of a full flow table streams instead of
             meeting a message limit.

Everything here is pure: bytes in, values out. The sockets live in lb.daemon.control (server) and
lb.daemon.client (client).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

ADDRESS = "\0lbxdp-control"
MAX_REQUEST = 16 * 1024 * 1024  # a -R of thousands of services still fits; anything bigger is refused
REQUEST_DEADLINE = 5.0  # seconds from accept to the request's last byte
CHUNK_CHARS = 1024 * 1024  # characters of output per reply line
MAX_REPLY_LINE = 8 * CHUNK_CHARS  # a chunk's line, JSON escapes included, is far below this

CAP_NET_ADMIN = 12  # include/uapi/linux/capability.h

PERMISSION_DENIED = (
    "permission denied: lbxdp needs root or CAP_NET_ADMIN in this network namespace (as ipvsadm)"
)
BUSY = "the lbxdp daemon is busy with other control requests; try again"


class ProtocolError(ValueError):
    """A request that cannot be served; the message is the one line the client gets back."""


@dataclass(frozen=True)
class PeerCreds:
    """SO_PEERCRED of the other end, as the kernel translated it into our namespaces (pid 0: the
    peer is not visible in our pid namespace)."""

    pid: int
    uid: int
    gid: int


def cap_eff(status_text: str) -> int | None:
    """The effective capability set from the text of /proc/PID/status (None: no CapEff line)."""
    for line in status_text.splitlines():
        name, _, value = line.partition(":")
        if name == "CapEff":
            try:
                return int(value.strip(), 16)
            except ValueError:
                return None
    return None


AT_SECURE = 23  # include/uapi/linux/auxvec.h


def at_secure(auxv: bytes) -> bool | None:
    """AT_SECURE from the raw /proc/PID/auxv (pairs of native unsigned longs); None when absent.
    The kernel sets it when an exec raised privileges (setuid, or file capabilities)."""
    pair = struct.calcsize("@LL")
    for offset in range(0, len(auxv) - pair + 1, pair):
        kind, value = struct.unpack_from("@LL", auxv, offset)
        if kind == AT_SECURE:
            return bool(value)
        if kind == 0:  # AT_NULL ends the vector
            break
    return None


def may_configure(uid: int, effective: int | None, peer_userns: int | None, own_userns: int,
                  elevated_exec: bool | None = False) -> bool:
    """May this peer use the control channel? Root, or CAP_NET_ADMIN in *our* user namespace: a
    process in a child user namespace has the bit in CapEff, but it means nothing here (it is how
    an unprivileged user gets "root" in a container), hence the namespace comparison.

    The capability is read from /proc now, not recorded when the peer connected (the kernel keeps
    only uid and gid for SO_PEERCRED). An unprivileged process could connect, write a request,
    and exec a program that carries CAP_NET_ADMIN as a file capability (same pid, capability
    now). Such an exec sets AT_SECURE; a process that holds the capability by inheritance
    (ambient capabilities, as a systemd unit's AmbientCapabilities= gives) already held it when
    it connected. So a non-root peer whose image came from a privilege-raising exec, or whose
    auxv cannot be read, is refused."""
    if uid == 0:
        return True
    if effective is None or peer_userns is None or elevated_exec is not False:
        return False
    return bool(effective >> CAP_NET_ADMIN & 1) and peer_userns == own_userns


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    """One JSON object from one line. Raises ProtocolError and nothing else, whatever the bytes:
    not UTF-8, not JSON, nested deeper than the parser's recursion limit, numbers with more digits
    than Python converts, or JSON that is not an object."""
    try:
        text = line.decode("utf-8")
        value = json.loads(text)
    except UnicodeDecodeError:
        raise ProtocolError("bad control request: not UTF-8") from None
    except RecursionError:
        raise ProtocolError("bad control request: nested too deeply") from None
    except (ValueError, TypeError) as exc:  # JSONDecodeError is a ValueError; so is int overflow
        raise ProtocolError(f"bad control request: {one_line(str(exc))}") from None
    if not isinstance(value, dict):
        raise ProtocolError("bad control request: not a JSON object")
    return value


def one_line(text: str, limit: int = 300) -> str:
    """A message fit for a one-line error: no newlines, bounded length."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def reply_ok(output: str = "", **extra: Any) -> dict[str, Any]:
    return {"ok": True, "output": output, **extra}


def reply_error(message: str) -> dict[str, Any]:
    return {"ok": False, "error": one_line(message)}


def reply_lines(reply: dict[str, Any]) -> Iterator[bytes]:
    """The encoded lines of one reply: partial lines of CHUNK_CHARS characters of output while
    more follows, then the last line with the rest of the output and every other field."""
    output = reply.get("output")
    if not reply.get("ok") or not isinstance(output, str) or len(output) <= CHUNK_CHARS:
        yield encode(reply)
        return
    last = (len(output) - 1) // CHUNK_CHARS * CHUNK_CHARS
    for start in range(0, last, CHUNK_CHARS):
        yield encode({"ok": True, "output": output[start : start + CHUNK_CHARS], "more": True})
    yield encode({**reply, "output": output[last:]})


def is_partial(message: dict[str, Any]) -> bool:
    """A partial reply line (more lines of the same reply follow)."""
    return message.get("more") is True and message.get("ok") is True

"""The daemon's end of the control channel, served off the packet loop (protocol: lb.daemon.protocol).

A slow or hostile client must never hold the loop that reads NFQUEUE, sweeps flows and grants XDP
its budget, so sockets are handled by threads and only finished requests reach the loop:

- an acceptor thread accepts, checks the peer's credentials before reading anything (refusing
  with one line), and gives each admitted connection to a worker thread, at most MAX_WORKERS at
  once (beyond that: one "busy" line);
- the worker reads the request under one deadline and a size limit, decodes it (nothing it does
  raises past it), and queues it for the loop, which `fileno()` wakes;
- the loop runs the handler in `serve_pending()` (daemon state stays single-threaded) and hands
  the reply back; the worker sends it, in chunks, under a deadline of its own.
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import select
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lb.daemon.protocol import (
    ADDRESS,
    BUSY,
    MAX_REQUEST,
    PERMISSION_DENIED,
    REQUEST_DEADLINE,
    PeerCreds,
    ProtocolError,
    at_secure,
    cap_eff,
    decode,
    encode,
    may_configure,
    reply_error,
    reply_lines,
)

log = logging.getLogger("lbxdp")

Handler = Callable[[dict[str, Any]], dict[str, Any]]

MAX_WORKERS = 8  # connections being read or answered at once; more get "busy"
REPLY_DEADLINE = 60.0  # seconds to send a whole reply (a -L -c of a million flows is ~100 MB)
ACCEPT_POLL = 0.2  # how often the acceptor looks whether the daemon is stopping
SO_PEERPIDFD = 77  # Linux 6.5: a pidfd of the peer, so its pid cannot be recycled under our check


class AddressInUse(RuntimeError):
    """The control socket's name is taken: by a running daemon, or by a squatter (the message says)."""


def peer_creds(sock: socket.socket) -> PeerCreds:
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return PeerCreds(*struct.unpack("3i", raw))


def _own_userns() -> int:
    return os.stat("/proc/self/ns/user").st_ino


def authorised(sock: socket.socket, creds: PeerCreds, own_userns: int) -> bool:
    """Root, or CAP_NET_ADMIN in our user namespace (protocol.may_configure), read from /proc.

    The uid comes from the socket itself (what the peer was when it connected); the capability
    has to be read from the peer's /proc entry, so a pidfd (SO_PEERPIDFD) pins the process: if it
    is still alive after the read, the pid was not recycled in between; and AT_SECURE in its auxv
    says whether it got the capability by an exec after connecting (protocol.may_configure)."""
    if creds.uid == 0:
        return True
    if creds.pid <= 0:
        return False  # not visible in our pid namespace: no way to see its capabilities
    pidfd = -1
    try:
        pidfd = struct.unpack("i", sock.getsockopt(socket.SOL_SOCKET, SO_PEERPIDFD, 4))[0]
    except OSError as exc:
        if exc.errno not in (errno.ENOPROTOOPT, errno.EINVAL):
            return False  # the kernel knows the option: the peer is gone, its pid may be another's now
        # an older kernel: the pid alone
    try:
        with open(f"/proc/{creds.pid}/status", encoding="utf-8", errors="replace") as status:
            effective = cap_eff(status.read())
        userns = os.stat(f"/proc/{creds.pid}/ns/user").st_ino
        with open(f"/proc/{creds.pid}/auxv", "rb") as auxv:
            elevated = at_secure(auxv.read())
        if pidfd >= 0:
            try:
                signal.pidfd_send_signal(pidfd, 0)
            except PermissionError:
                pass  # alive, merely not ours to signal
    except OSError:
        return False  # gone (or recycled): refuse
    finally:
        if pidfd >= 0:
            os.close(pidfd)
    return may_configure(creds.uid, effective, userns, own_userns, elevated)


def describe_holder() -> str:
    """Who holds the control socket's name, for the message of a daemon that cannot bind it."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2.0)
    try:
        probe.connect(ADDRESS)
        creds = peer_creds(probe)
    except OSError:
        return ("the control socket name lbxdp-control of this network namespace is taken by a socket "
                "that accepts no connections (see: ss -xlp | grep lbxdp-control); remove that process")
    finally:
        probe.close()
    if creds.uid == 0:
        return f"an lbxdp daemon is already running in this network namespace (pid {creds.pid})"
    return (f"the control socket name lbxdp-control of this network namespace is held by pid {creds.pid} "
            f"(uid {creds.uid}), not a root lbxdp daemon: remove that process")


@dataclass
class Pending:
    """A decoded request waiting for the loop, and the reply the loop gives it."""

    request: dict[str, Any]
    done: threading.Event = field(default_factory=threading.Event)
    reply: dict[str, Any] | None = None


class ControlServer:
    def __init__(self, max_workers: int = MAX_WORKERS, deadline: float = REQUEST_DEADLINE) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._sock.bind(ADDRESS)
        except OSError as exc:
            self._sock.close()
            if exc.errno != errno.EADDRINUSE:
                raise
            raise AddressInUse(describe_holder()) from exc
        self._sock.listen(64)
        self._deadline = deadline
        self._own_userns = _own_userns()
        self._slots = threading.BoundedSemaphore(max_workers)
        self._pending: queue.SimpleQueue[Pending] = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._closed = threading.Event()
        self._acceptor: threading.Thread | None = None
        self._workers: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self._refused = 0
        self._next_refusal_log = 0.0

    def fileno(self) -> int:
        """Readable when requests wait for `serve_pending()` (the loop's selector watches it)."""
        return self._wake_r

    def start(self) -> None:
        """Begin accepting; until then connections wait in the listen backlog."""
        self._acceptor = threading.Thread(target=self._accept_loop, name="lbxdp-control", daemon=True)
        self._acceptor.start()

    # -- the loop's side -------------------------------------------------------------------------

    def serve_pending(self, handler: Handler) -> None:
        """Run the handler for every request that is waiting (called on the loop's thread)."""
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        while True:
            try:
                item = self._pending.get_nowait()
            except queue.Empty:
                return
            try:
                item.reply = handler(item.request)
            except Exception as exc:  # the handler should not raise; never let it end the loop
                log.exception("control request %r failed", item.request.get("op"))
                item.reply = reply_error(f"internal error: {type(exc).__name__}: {exc}")
            item.done.set()

    # -- the threads' side -----------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                ready, _, _ = select.select([self._sock], [], [], ACCEPT_POLL)
                if not ready:
                    continue
                conn, _ = self._sock.accept()
            except (OSError, ValueError):
                if self._closed.is_set():
                    return
                time.sleep(ACCEPT_POLL)  # e.g. EMFILE: let workers finish and free descriptors
                continue
            try:
                self._admit(conn)
            except Exception:  # one connection must not end the acceptor
                log.exception("control: could not admit a connection")
                conn.close()

    def _admit(self, conn: socket.socket) -> None:
        """Credentials first, nothing read before; then a worker slot or "busy"."""
        conn.setblocking(False)
        creds = peer_creds(conn)
        if not authorised(conn, creds, self._own_userns):
            self._refused += 1
            now = time.monotonic()
            if now >= self._next_refusal_log:  # at most one line a minute: a user must not fill the log
                log.warning("control: refused pid %d uid %d (neither root nor CAP_NET_ADMIN here); "
                            "%d refusals since the last such line", creds.pid, creds.uid, self._refused)
                self._refused, self._next_refusal_log = 0, now + 60.0
            _send_and_close(conn, encode(reply_error(PERMISSION_DENIED)))
            return
        if not self._slots.acquire(blocking=False):
            _send_and_close(conn, encode(reply_error(BUSY)))
            return
        worker = threading.Thread(target=self._serve, args=(conn,), name="lbxdp-control-worker", daemon=True)
        with self._lock:
            self._workers.add(worker)
        try:
            worker.start()
        except RuntimeError:
            with self._lock:
                self._workers.discard(worker)
            self._slots.release()
            _send_and_close(conn, encode(reply_error(BUSY)))

    def _serve(self, conn: socket.socket) -> None:
        try:
            with conn:
                deadline = time.monotonic() + self._deadline
                try:
                    request = decode(read_request(conn, deadline))
                except ProtocolError as exc:
                    reply = reply_error(str(exc))
                else:
                    reply = self._ask_loop(request)
                send_reply(conn, reply, time.monotonic() + REPLY_DEADLINE)
        except OSError:
            pass  # the client went away; nothing to tell it
        except Exception:  # a worker dies alone, never the daemon
            log.exception("control: a worker failed")
        finally:
            with self._lock:
                self._workers.discard(threading.current_thread())
            self._slots.release()

    def _ask_loop(self, request: dict[str, Any]) -> dict[str, Any]:
        item = Pending(request)
        self._pending.put(item)
        try:
            os.write(self._wake_w, b"!")
        except BlockingIOError:
            pass  # the pipe is full of wake-ups already
        while not item.done.wait(0.5):
            if self._closed.is_set():
                return reply_error("the lbxdp daemon is stopping")
        return item.reply or reply_error("no reply")

    def close(self, grace: float = 3.0) -> None:
        """Stop accepting, let workers send what they have (a detach's reply), close everything."""
        self._closed.set()
        if self._acceptor is not None:
            self._acceptor.join(ACCEPT_POLL * 5)
        self._sock.close()  # the name is free from here on
        deadline = time.monotonic() + grace
        with self._lock:
            workers = list(self._workers)
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass


def read_request(conn: socket.socket, deadline: float, limit: int = MAX_REQUEST) -> bytes:
    """Bytes up to the first newline (or the end of the stream), all by `deadline`: a client that
    trickles a byte at a time gets the same few seconds as one that sends at once."""
    buf = bytearray()
    poller = select.poll()
    poller.register(conn, select.POLLIN)
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ProtocolError("bad control request: not complete in time")
        if not poller.poll(remaining * 1000):
            continue
        try:
            chunk = conn.recv(65536)
        except BlockingIOError:
            continue
        if not chunk:
            if not buf:
                raise ProtocolError("bad control request: empty")
            return bytes(buf)
        end = chunk.find(b"\n")
        buf += chunk if end < 0 else chunk[:end]
        if len(buf) > limit:
            raise ProtocolError(f"bad control request: larger than {limit} bytes")
        if end >= 0:
            return bytes(buf)


def send_reply(conn: socket.socket, reply: dict[str, Any], deadline: float) -> None:
    """Every line of the reply (protocol.reply_lines), all by `deadline`."""
    poller = select.poll()
    poller.register(conn, select.POLLOUT)
    for line in reply_lines(reply):
        view = memoryview(line)
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return  # the client does not read: drop it
            if not poller.poll(remaining * 1000):
                continue
            try:
                sent = conn.send(view)
            except BlockingIOError:
                continue
            view = view[sent:]


def _send_and_close(conn: socket.socket, line: bytes) -> None:
    """A refusal: one short line into the (empty) socket buffer, never a wait."""
    try:
        conn.send(line)
    except OSError:
        pass
    finally:
        conn.close()

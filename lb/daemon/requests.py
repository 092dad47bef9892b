"""The control channel's request table: op → handler, each handler reading one request's fields
and calling the daemon (lb.daemon.protocol defines the wire form).

A handler checks the request's shape (`RequestError`, its message is the reply) and leaves every
decision to the daemon (`Authority`); `serve` turns every error into a one-line reply.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from lb.balancer.health import HealthCheck
from lb.config.ipvsadm import Command, decode_service
from lb.daemon import schedin
from lb.daemon.protocol import one_line, reply_error, reply_ok
from lb.daemon.status import Observed, status_data, status_text
from lb.datapath import iptables, loader
from lb.model import ConfigError, ServiceKey

log = logging.getLogger("lbxdp")


class RequestError(ValueError):
    """A control request with missing or mistyped fields (its message is the reply)."""


class Authority(Observed, Protocol):
    """What the handlers ask of the daemon: each a whole change, saved when it succeeds."""

    def apply_command(self, command: Command) -> str: ...

    def attach(self, ifname: str, mode: str) -> str: ...

    def set_queue_bypass(self, bypass: object) -> None: ...

    def set_sched_in(self, sched_in: object) -> None: ...

    def load_config(self, path: Path) -> None: ...

    def save_state(self) -> None: ...

    def detach(self, names: list[str]) -> dict[str, Any]: ...

    def set_health(self, key: ServiceKey, check: HealthCheck) -> str: ...


def names(request: dict[str, Any], field: str) -> list[str]:
    """The request's list of interface names (empty when absent)."""
    found = request.get(field) or []
    if not isinstance(found, list) or not all(isinstance(n, str) for n in found):
        raise RequestError(f"malformed request: '{field}' must be a list of interface names")
    return found


def ping(_daemon: Authority, _request: dict[str, Any]) -> dict[str, Any]:
    return reply_ok("pong")


def status(daemon: Authority, _request: dict[str, Any]) -> dict[str, Any]:
    return reply_ok(status_text(daemon), data=status_data(daemon))


def ipvsadm(daemon: Authority, request: dict[str, Any]) -> dict[str, Any]:
    command = request.get("command")
    if not isinstance(command, dict):
        raise RequestError("malformed command: 'command' must be an object")
    return reply_ok(daemon.apply_command(Command.from_dict(command)))


def attach(daemon: Authority, request: dict[str, Any]) -> dict[str, Any]:
    ifaces = names(request, "ifaces")
    mode = request.get("mode", "auto")
    if mode not in ("auto", "native", "generic"):
        raise RequestError("malformed attach: 'mode' must be auto, native or generic")
    config = request.get("config")
    if config is not None and not isinstance(config, str):
        raise RequestError("malformed attach: 'config' must be a path")
    bypass = request.get("queue_bypass")
    if bypass is not None and not isinstance(bypass, bool):
        raise RequestError("malformed attach: 'queue_bypass' must be true, false or null")
    sched_in = request.get("sched_in")
    if sched_in is not None and sched_in not in schedin.CHOICES:
        raise RequestError("malformed attach: 'sched_in' must be xdp, daemon or null")
    daemon.set_queue_bypass(bypass)
    daemon.set_sched_in(sched_in)
    lines = [daemon.attach(name, mode) for name in ifaces]
    if config:
        daemon.load_config(Path(config))
    daemon.save_state()
    return reply_ok("\n".join(lines) + "\n")


def detach(daemon: Authority, request: dict[str, Any]) -> dict[str, Any]:
    return daemon.detach(names(request, "ifaces") or list(daemon.ifaces))


def health(daemon: Authority, request: dict[str, Any]) -> dict[str, Any]:
    key = decode_service(request.get("service"))  # types and VIP checked, as for ipvsadm commands
    check = HealthCheck.from_dict(request.get("check"))  # ValueError in one line for any bad value
    return reply_ok(daemon.set_health(key, check))


Handler = Callable[[Authority, dict[str, Any]], dict[str, Any]]

# op → handler: every request the control channel serves (lb.daemon.protocol)
REQUESTS: dict[str, Handler] = {
    "ping": ping,
    "status": status,
    "ipvsadm": ipvsadm,
    "attach": attach,
    "detach": detach,
    "health": health,
}


def serve(daemon: Authority, request: dict[str, Any]) -> dict[str, Any]:
    """Answer one control request (lb.daemon.protocol). Never raises: a request's error is its
    one-line reply, and anything unexpected is logged with its traceback and answered too, so
    no request can end the daemon. Configuration changes are all-or-nothing (the daemon's
    `_transaction`)."""
    op = request.get("op")
    method = REQUESTS.get(op) if isinstance(op, str) else None
    if method is None:
        return reply_error(f"unknown request {one_line(repr(op), 60)}")
    try:
        return method(daemon, request)
    except (ConfigError, RequestError, iptables.IptablesError) as exc:
        return reply_error(str(exc))
    except (RuntimeError, loader.LoadError, ValueError, OSError) as exc:
        log.warning("request %s failed: %s", op, exc)
        return reply_error(str(exc))
    except Exception as exc:
        log.exception("request %s failed", op)
        return reply_error(f"internal error in {op}: {type(exc).__name__}: {exc}")

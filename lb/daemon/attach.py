"""`lbxdp attach|detach|status`: start the daemon of this network namespace, or talk to it.

`attach` validates everything it can before touching the kernel (root, interfaces, the rules file),
then either asks a running daemon to take the interfaces (adopting an interface that is already
attached rather than resetting it) or starts one in the background and returns when it is ready.
On failure it prints one line and leaves nothing behind: a daemon that fails to start cleans up
after itself and its last log line is shown.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from lb.config.health import load_rules_file, parse_health
from lb.config.savefmt import RulesError
from lb.daemon import instance, schedin, statefile
from lb.daemon.client import DaemonNotRunning, NotRootDaemon, is_running, send
from lb.model import ConfigError

READY_TIMEOUT = 60.0  # bcc compiles the program at start: seconds on a loaded 2-core machine

ATTACH_EXAMPLES = """\
examples:
  lbxdp attach eth0                       # one-arm: clients and reals behind one interface
  lbxdp attach eth0 eth1 --mode native    # two-arm, driver-mode XDP
  lbxdp attach eth0 --config /etc/lbxdp.rules
  lbxdp attach eth0 --queue-bypass        # fail-open: no daemon, first packets go on unbalanced
  lbxdp attach eth0 --sched-in daemon     # every first packet to the Python schedulers (reference)
  lbxdp -A -t 10.0.0.100:80 -s rr         # then configure with ipvsadm's syntax
  lbxdp detach eth0 eth1                  # the daemon stops with the last interface

first packets while no daemon runs (it was killed, or is restarting):
  By default they are dropped (fail-closed): TCP clients resend their SYN and get through once a
  daemon is back; established flows never need the daemon. With --queue-bypass (fail-open) the
  kernel handles them as if no balancer were there: usually the VIP is no local address, so they
  are routed or dropped unbalanced. The choice is kept across daemon restarts until changed
  with --queue-bypass or --no-queue-bypass; `lbxdp status` shows it.

who decides first packets (--sched-in):
  xdp (the default): XDP decides the first packet of every service it can (every built-in
  scheduler, from state the daemon writes into maps); the others go through NFQUEUE to the
  daemon. daemon: every first packet goes through NFQUEUE to the daemon's Python scheduler, the
  reference path. `lbxdp -L` and `lbxdp status` say per service where its first packets are
  decided, and why the daemon decides them when it does. The choice is kept across daemon
  restarts until changed; a running daemon changes it at once. LBXDP_KERNEL_HASH=0 in the
  daemon's environment is the older way to ask for daemon (used when --sched-in is not given).
"""


def _fail(message: str, code: int = 1) -> int:
    print(f"lbxdp: {message}", file=sys.stderr)
    return code


def _check_interfaces(names: list[str]) -> str | None:
    for name in names:
        try:
            socket.if_nametoindex(name)
        except OSError:
            return f"no interface '{name}' in this network namespace"
    return None


def attach_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lbxdp attach",
        description="Load the XDP program on IFACE…, install the NFQUEUE rules and start the daemon.",
        epilog=ATTACH_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("ifaces", nargs="+", metavar="IFACE")
    parser.add_argument(
        "--mode",
        choices=["auto", "native", "generic"],
        default="auto",
        help="XDP mode; auto picks what delivers on this interface and says which (default auto)",
    )
    parser.add_argument("--config", metavar="RULES", help="an ipvsadm rules file (ipvsadm-save format) to load")
    parser.add_argument(
        "--max-flows",
        type=int,
        metavar="N",
        help="flow table size (entries); fixed when the table is first created (default 262144)",
    )
    parser.add_argument(
        "--queue-bypass",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="while no daemon runs, let first packets through unbalanced (fail-open) instead of dropping "
        "them (fail-closed, the default); kept across restarts (see below)",
    )
    parser.add_argument(
        "--sched-in",
        choices=schedin.CHOICES,
        default=None,
        help="who decides first packets: xdp (the default) decides every service it can in the kernel, "
        "daemon sends every first packet to the Python schedulers (the reference path); kept across "
        "restarts (see below)",
    )
    parser.add_argument(
        "--foreground", action="store_true",
        help="run the daemon in this process (logs to stderr) instead of in the background",
    )
    return parser


def main(argv: list[str]) -> int:
    args = attach_parser().parse_args(argv)
    if os.geteuid() != 0:
        return _fail("attach must run as root (it loads XDP programs and netfilter rules)")
    problem = _check_interfaces(args.ifaces)
    if problem:
        return _fail(problem)
    if args.config:
        try:
            load_rules_file(Path(args.config).read_text(), args.config)
        except OSError as exc:
            return _fail(f"cannot read {args.config}: {exc.strerror}")
        except RulesError as exc:
            return _fail(str(exc), code=2)
    try:
        running = is_running()
    except NotRootDaemon as exc:  # a squatter holds the name: starting a daemon would only fail
        return _fail(f"cannot attach: {exc}; remove that process")
    if running:
        reply = send({"op": "attach", "ifaces": args.ifaces, "mode": args.mode,
                      "config": args.config and os.path.abspath(args.config), "queue_bypass": args.queue_bypass,
                      "sched_in": args.sched_in})
        if not reply.get("ok"):
            return _fail(reply.get("error", "the daemon refused to attach"))
        print(reply.get("output", ""), end="")
        return 0
    if args.max_flows is not None and not 1024 <= args.max_flows <= 1 << 26:
        return _fail(f"--max-flows {args.max_flows} is out of range (1024..{1 << 26})", code=2)
    from lb.datapath.loader import PIN_ROOT

    instance.remove_stale([PIN_ROOT, instance.RUN_ROOT])  # the daemon does too; cheap here
    if instance.forget_previous_incarnation(PIN_ROOT):
        print("lbxdp: removed the saved state and pins an earlier namespace with this one's inode left behind",
              file=sys.stderr)
    daemon_argv = ["--mode", args.mode, *[f"--iface={name}" for name in args.ifaces]]
    if args.max_flows is not None:
        daemon_argv.append(f"--max-flows={args.max_flows}")
    if args.queue_bypass is not None:
        daemon_argv.append("--queue-bypass" if args.queue_bypass else "--no-queue-bypass")
    if args.sched_in is not None:
        daemon_argv.append(f"--sched-in={args.sched_in}")
    if args.config:
        daemon_argv += ["--config", os.path.abspath(args.config)]
    if args.foreground:
        from lb.daemon.run import main as run_main

        return run_main(daemon_argv)
    return _spawn(daemon_argv, args.ifaces)


def _spawn(daemon_argv: list[str], ifaces: list[str]) -> int:
    log = instance.log_path()
    instance.make_run_dir()
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.fchmod(fd, 0o600)  # the log names reals and health checks: root's alone
    start_offset = os.fstat(fd).st_size
    with os.fdopen(fd, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lb.daemon.run", *daemon_argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,  # the daemon outlives this command and its terminal
        )
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return _fail(f"the daemon failed to start: {_last_line(log)} (log: {log})")
        try:
            reply = send({"op": "status"}, timeout=5.0)
        except NotRootDaemon as exc:  # not ours: a process took the name meanwhile
            proc.kill()
            return _fail(f"cannot attach: {exc}; remove that process")
        except (DaemonNotRunning, ConnectionError, OSError):
            time.sleep(0.1)
            continue
        if reply.get("ok"):
            for warning in _warnings_since(log, start_offset):
                print(f"lbxdp: {warning}", file=sys.stderr)
            print(reply.get("output", ""), end="")
            return 0
    proc.kill()
    return _fail(f"the daemon did not become ready within {READY_TIMEOUT:.0f} s (log: {log})")


def _warnings_since(log: Path, offset: int) -> list[str]:
    """What the starting daemon logged as a warning (e.g. a saved state it could not use), so the
    operator who ran attach sees it without reading the log."""
    try:
        with open(log, "rb") as handle:
            handle.seek(offset)
            text = handle.read(1 << 20).decode(errors="replace")
    except OSError:
        return []
    return [line.split(" WARNING ", 1)[1] for line in text.splitlines() if " WARNING " in line]


def _last_line(log: Path) -> str:
    try:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return lines[-1] if lines else "no output"


def detach_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="lbxdp detach",
        description="Remove lbxdp from IFACE…; with no interface left the daemon removes its rules and pins and stops. "
        "With no daemon running (it was killed), detach does it itself: XDP off the interfaces (default: every "
        "interface carrying lbxdp's program and those in the saved state), the NFQUEUE rules, the pins and the "
        "run directory.",
    )
    parser.add_argument("ifaces", nargs="*", metavar="IFACE", help="default: every attached interface")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        return _fail("detach must run as root")
    try:
        reply = send({"op": "detach", "ifaces": args.ifaces})
    except DaemonNotRunning:
        return _detach_without_daemon(args.ifaces)
    except NotRootDaemon as exc:
        return _fail(str(exc))
    if not reply.get("ok"):
        return _fail(reply.get("error", "the daemon refused to detach"))
    print(reply.get("output", ""), end="")
    if reply.get("stopping"):
        _wait_gone()
    return 0


def _detach_without_daemon(names: list[str]) -> int:
    """`detach` after the daemon died: undo what it left (XDP, rules, pins, run directory) from
    here. With names that leave another interface carrying the program, only those are detached,
    and the rules, pins and saved state stay for the daemon that `attach` will start."""
    from lb.datapath import iptables, loader

    instance.remove_stale([loader.PIN_ROOT, instance.RUN_ROOT])
    try:
        saved = statefile.read(instance.state_path())
    except ValueError:
        saved = None  # unreadable: the interfaces carrying the program still say where it is
    carrying = loader.lbxdp_ifaces()
    wanted = names or sorted({*carrying, *(saved.ifaces if saved else ())})
    missing = [n for n in names if n not in carrying and _check_interfaces([n]) is not None]
    if missing:
        return _fail(f"no interface '{missing[0]}' in this network namespace")
    done = []
    for name in wanted:
        if _check_interfaces([name]) is not None:
            continue  # an interface of the saved state that is gone
        try:
            loader.detach(name)
        except loader.LoadError as exc:
            return _fail(str(exc))
        done.append(name)
    left = [n for n in carrying if n not in wanted]
    what = f"XDP off {', '.join(done)}" if done else "no XDP was attached"
    if left:
        if saved is not None:
            saved.ifaces = {n: m for n, m in saved.ifaces.items() if n not in wanted}
            statefile.write(instance.state_path(), saved)
        print(f"no daemon running: {what}; {', '.join(left)} still attached (rules and pins kept)")
        return 0
    removed = []
    try:
        if iptables.present():
            iptables.remove()
            removed.append("the LBXDP rules")
    except iptables.IptablesError as exc:
        return _fail(str(exc))
    if loader.pin_dir_for().exists():
        loader.unpin()
        removed.append("the pinned maps")
    if instance.run_dir().exists():
        shutil.rmtree(instance.run_dir(), ignore_errors=True)
        removed.append(str(instance.run_dir()))
    print(f"no daemon running: {what}; " + (f"removed {', '.join(removed)}" if removed else "nothing else was left"))
    return 0


def _wait_gone(timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if not is_running():
                return
        except NotRootDaemon:
            return  # ours is gone; whoever holds the name now is not it
        time.sleep(0.05)


def status_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="lbxdp status", description="Interfaces, XDP mode, daemon and fast-path counters."
    )
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args(argv)
    try:
        reply = send({"op": "status"})
    except DaemonNotRunning:
        print("lbxdp: not attached in this network namespace (no daemon running)")
        return 3
    except NotRootDaemon as exc:
        return _fail(str(exc))
    if not reply.get("ok"):
        return _fail(reply.get("error", "status failed"))
    if args.json:
        print(json.dumps(reply.get("data", {}), indent=1, sort_keys=True))
    else:
        print(reply.get("output", ""), end="")
    return 0


def health_main(argv: list[str]) -> int:
    from lb.config.health import parser as health_parser

    if any(word in ("-h", "--help") for word in argv):
        health_parser().print_help()
        return 0
    try:
        rule = parse_health(argv)
    except ConfigError as exc:
        print(f"lbxdp: {exc}", file=sys.stderr)
        print("Try `lbxdp health --help' for more information.", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        return _fail("health must run as root")
    try:
        reply = send({"op": "health", "service": _service_dict(rule.service), "check": rule.check.to_dict()})
    except DaemonNotRunning:
        return _fail("no lbxdp daemon is running in this network namespace (start one with: lbxdp attach IFACE)")
    except NotRootDaemon as exc:
        return _fail(str(exc))
    if not reply.get("ok"):
        return _fail(reply.get("error", "the daemon refused the health check"))
    print(reply.get("output", ""), end="")
    return 0


def _service_dict(key: object) -> dict[str, object]:
    return {"proto": key.proto.name, "vip": str(key.vip), "port": key.port}  # type: ignore[attr-defined]

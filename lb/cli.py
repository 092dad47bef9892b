"""`lbxdp`: ipvsadm's verbs for the running balancer, plus subcommands that set it up and study it.

Two shapes, told apart by the first word. A word starting with `-` is an ipvsadm command line
(`lbxdp -A -t 10.0.0.100:80 -s rr`): it is parsed here, exactly as ipvsadm would parse it, and sent
to the daemon of this network namespace, which is the one authority on configuration. Anything
else names a subcommand (`lbxdp attach eth0`), looked up in SUBCOMMANDS and imported only when
used, so a subcommand is one line here plus its own module: `main(argv: list[str]) -> int`.

Exit codes follow ipvsadm: 0 done, 1 the request failed (no daemon, refused by it), 2 the command
line is wrong.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from lb.config import lbxdp_version
from lb.config.ipvsadm import Command, Verb, parse_command
from lb.config.savefmt import RulesError, parse_rules, restore_command, save
from lb.model import ConfigError
from lb.sched import builtin_schedulers

# name -> ("module:function", one-line help). The function takes the words after the name and
# returns an exit code. Add a subcommand by adding a line and writing its module.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "attach": ("lb.daemon.attach:main", "load XDP on IFACE…, install the NFQUEUE rules, start the daemon"),
    "detach": ("lb.daemon.attach:detach_main", "remove lbxdp from IFACE… (the daemon stops with the last one)"),
    "status": ("lb.daemon.attach:status_main", "show interfaces, mode, daemon and fast-path counters"),
    "health": ("lb.daemon.attach:health_main", "set how the reals of a service are health-checked (tcp/http)"),
    "config": ("lb.cli:config_main", "config check FILE: validate a rules file, print it in save form"),
    "replay": ("lb.replay:main", "run recorded packets through the XDP program and the model"),
    "record": ("lb.replay.record:main", "record a scenario's traffic to a pcap with its expected output"),
    "verify": ("lb.replay.verify:main", "check a capture from the real-server side: checksums, one real per flow"),
    "experiment": ("lb.experiments:main", "compare schedulers: balance, disruption, affinity, throughput (plots)"),
    "bench": ("lb.bench.__main__:main", "measure lbxdp against iptables, nftables, HAProxy (as make bench)"),
}

NO_DAEMON = "lbxdp: no lbxdp daemon is running in this network namespace (start one with: lbxdp attach IFACE)"
TRY_HELP = "Try `lbxdp --help' for more information."

DESCRIPTION = """\
lbxdp balances TCP and UDP services over real servers, like IPVS: the first packet of each
flow is scheduled in Python, every later packet is forwarded by an XDP program. It speaks
ipvsadm's language: any ipvsadm command line works with `lbxdp` in place of `ipvsadm`.

ipvsadm commands (sent to the daemon of this network namespace; see docs/cli.md):
  -A|-E -t|-u VIP:PORT [-s SCHED] [-b FLAGS] [-p [TIMEOUT]] [-M NETMASK]
                                 add | edit a virtual service (default scheduler wlc)
  -D -t|-u VIP:PORT              delete a virtual service
  -a|-e -t|-u VIP:PORT -r RIP[:PORT] [-g|-i|-m] [-w WEIGHT] [-x UPPER] [-y LOWER]
                                 add | edit a real server (default -g, weight 1)
  -d -t|-u VIP:PORT -r RIP[:PORT]
                                 delete a real server
  -L|-l [-n] [-t|-u VIP:PORT] [--stats|--rate] [--exact] [-c] [--timeout]
                                 list services, counters, rates, connections, timeouts
  -C                             clear the whole table
  -S [-n]                        save the table as ipvsadm rules (to stdout)
  -R                             restore rules from stdin (all or nothing)
  -Z [-t|-u VIP:PORT]            zero counters
  --set TCP TCPFIN UDP           set flow timeouts in seconds (0 keeps a value)

schedulers: {schedulers} (and plugins; see docs/schedulers.md)
forwarding: -m masquerading (NAT, port may differ) · -g direct routing · -i IPIP tunnel"""

EPILOG = """\
examples:
    lbxdp attach eth0                                   # XDP on eth0, start the daemon
    lbxdp -A -t 10.0.0.100:80 -s wrr                    # a virtual service, weighted round robin
    lbxdp -a -t 10.0.0.100:80 -r 10.0.1.11:8080 -m -w 3 # a NAT real server on another port
    lbxdp -a -t 10.0.0.100:80 -r 10.0.1.12 -g           # a direct-routing real (port 80)
    lbxdp -e -t 10.0.0.100:80 -r 10.0.1.12:80 -w 0      # drain it: no new flows, old ones stay
    lbxdp -A -u 10.0.0.100:53 -s mh -b mh-port -p 60    # UDP, Maglev hashing, persistent 60 s
    lbxdp -L -n                                         # list services and reals
    lbxdp -L -n --stats                                 # ... with packet and byte counters
    lbxdp -L -n --rate                                  # ... with per-second rates
    lbxdp -L -c                                         # the connection table
    lbxdp -S -n > rules; lbxdp -C; lbxdp -R < rules     # save, clear, restore
    lbxdp config check rules                            # validate a rules file (no root needed)
    lbxdp detach eth0                                   # remove everything again"""


def description() -> str:
    """The help text above the commands, its list of schedulers read from lb.sched's registry."""
    return DESCRIPTION.format(schedulers=" ".join(cls.name for cls in builtin_schedulers()))


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser; it renders --help and names the subcommands (each parses its own words)."""
    parser = argparse.ArgumentParser(
        prog="lbxdp",
        usage="lbxdp -A|-E|-D|-a|-e|-d|-C|-R|-S|-L|-Z|--set [ipvsadm options]\n       lbxdp COMMAND [ARGS...]",
        description=description(),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"lbxdp {lbxdp_version()}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name, (_, summary) in SUBCOMMANDS.items():
        sub.add_parser(name, help=summary, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if not words or words[0] in ("-h", "--help"):
        build_parser().print_help()
        return 0
    if words[0] == "--version":
        print(f"lbxdp {lbxdp_version()}")
        return 0
    if words[0].startswith("-"):
        if "-h" in words or "--help" in words:
            build_parser().print_help()
            return 0
        return ipvsadm_main(words)
    return run_subcommand(words[0], words[1:])


def run_subcommand(name: str, argv: list[str]) -> int:
    entry = SUBCOMMANDS.get(name)
    if entry is None:
        return usage_error(f"unknown command '{name}' (one of: {', '.join(SUBCOMMANDS)}, or an ipvsadm option)")
    func = load_entry(entry[0])
    if func is None:
        print(f"lbxdp: '{name}' is not available in this build", file=sys.stderr)
        return 1
    return int(func(argv) or 0)


def load_entry(target: str) -> Callable[[list[str]], int | None] | None:
    """Import `module:function`; None when that module (not something it imports) does not exist."""
    module_name, _, func_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            return None
        raise
    func = getattr(module, func_name, None)
    return func if callable(func) else None


def usage_error(message: str) -> int:
    print(f"lbxdp: {message}", file=sys.stderr)
    print(TRY_HELP, file=sys.stderr)
    return 2


# --- ipvsadm verbs ---------------------------------------------------------------------------------


def ipvsadm_main(words: list[str], stdin: TextIO | None = None) -> int:
    """Parse one ipvsadm command line and hand it to the daemon; print what it answers."""
    try:
        command = parse_command(words)
    except ConfigError as exc:
        return usage_error(str(exc))
    if command.verb is Verb.RESTORE:
        text = (stdin or sys.stdin).read()
        try:
            command = restore_command(parse_rules(text, "<stdin>"))
        except RulesError as exc:
            print(f"lbxdp: {exc}", file=sys.stderr)
            return 2
    return send_command(command)


def send_command(command: Command) -> int:
    """Send to the daemon as {"op": "ipvsadm", "command": Command.to_dict()}; it answers
    {"ok": true, "output": text} (in several lines for a long listing, each chunk written as it
    arrives: lb.daemon.protocol) or {"ok": false, "error": message}."""
    try:
        from lb.daemon.client import send
    except ModuleNotFoundError as exc:
        if exc.name in ("lb.daemon", "lb.daemon.client"):
            print(NO_DAEMON, file=sys.stderr)
            return 1
        raise
    try:
        reply = send({"op": "ipvsadm", "command": command.to_dict()}, write=sys.stdout.write)
    except (FileNotFoundError, ConnectionRefusedError):
        print(NO_DAEMON, file=sys.stderr)
        return 1
    except ConnectionError as exc:
        if type(exc).__name__ == "DaemonNotRunning":
            print(NO_DAEMON, file=sys.stderr)
        else:
            print(f"lbxdp: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"lbxdp: cannot talk to the daemon: {exc}", file=sys.stderr)
        return 1
    if not reply.get("ok"):
        print(f"lbxdp: {reply.get('error', 'the daemon refused the request')}", file=sys.stderr)
        return 1
    return 0


# --- lbxdp config ------------------------------------------------------------------------------------


def config_main(argv: list[str]) -> int:
    """`lbxdp config check FILE`: parse and apply a rules file to an empty table, no root, no daemon."""
    parser = argparse.ArgumentParser(
        prog="lbxdp config",
        description="Work with ipvsadm rules files without a running daemon.",
        epilog="examples:\n    lbxdp config check /etc/lbxdp/rules   # prints the rules in `lbxdp -S -n` form\n"
        "    ipvsadm-save -n | lbxdp config check -",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = sub.add_parser("check", help="validate FILE ('-' for stdin) and print it normalized")
    check.add_argument("file", metavar="FILE")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed usage and the reason
        return int(exc.code or 0)
    return config_check(args.file)


def config_check(path: str) -> int:
    if path == "-":
        name, text = "<stdin>", sys.stdin.read()
    else:
        name = path
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            print(f"lbxdp: cannot read {path}: {getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
            return 2
    from lb.config.health import load_rules_file

    try:
        table, health = load_rules_file(text, name)
    except RulesError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    sys.stdout.write(save(table))
    for rule in health:
        sys.stdout.write(" ".join(rule.argv()) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

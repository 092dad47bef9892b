"""The netfilter rules that hand a VIP's flow misses to the daemon over NFQUEUE.

XDP passes every packet it cannot place (first packet of a flow, a miss) up the stack; these rules,
in mangle PREROUTING, queue those addressed to a virtual service to the daemon. They live in a chain
of their own (`LBXDP`) so lbxdp never edits rules it did not write, and are applied as one
`iptables-restore --noflush` batch so the set changes atomically.

While no daemon listens, the kernel drops queued packets by default (fail-closed): a new TCP client
retries its SYN and gets through once the daemon is back; established flows never get here, XDP
carries them. `lbxdp attach --queue-bypass` adds NFQUEUE's `--queue-bypass` (fail-open): with no
listener the kernel lets first packets go on through the stack as if no balancer were there, which
balances nothing (a VIP that is not a local address is routed, or dropped, by the kernel).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable

from lb.model import ServiceKey

CHAIN = "LBXDP"
TABLE = "mangle"


class IptablesError(RuntimeError):
    """iptables refused a change; the message is iptables' own line."""


def _run(argv: list[str], stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30, check=False)
    except FileNotFoundError as exc:
        raise IptablesError(f"{argv[0]} is not installed (apt-get install iptables)") from exc
    except subprocess.TimeoutExpired as exc:  # e.g. the xtables lock held by another program
        raise IptablesError(f"{' '.join(argv[:3])}: no answer within {exc.timeout:.0f} s") from exc
    if check and done.returncode != 0:
        message = (done.stderr or done.stdout).strip().splitlines()
        raise IptablesError(f"{' '.join(argv[:3])}: {message[-1] if message else 'failed'}")
    return done


def service_rule(key: ServiceKey, queue: int, bypass: bool = False) -> str:
    """The rule (without -A CHAIN) that queues one service's packets; with `bypass`, packets go on
    through the stack while no program listens on the queue (fail-open) instead of being dropped."""
    match = f"-d {key.vip}/32 -p {key.proto.name.lower()}"
    if key.port:
        match += f" --dport {key.port}"
    return f"{match} -j NFQUEUE --queue-num {queue}" + (" --queue-bypass" if bypass else "")


def restore_script(services: Iterable[ServiceKey], queue: int, bypass: bool = False) -> str:
    """An iptables-restore batch that (re)creates the LBXDP chain with one rule per service."""
    lines = [f"*{TABLE}", f":{CHAIN} - [0:0]", f"-F {CHAIN}"]
    lines += [f"-A {CHAIN} {service_rule(key, queue, bypass)}" for key in sorted(services)]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def install(services: Iterable[ServiceKey], queue: int, bypass: bool = False) -> None:
    """Make the LBXDP chain hold exactly these services' rules, hooked from PREROUTING once."""
    _run(["iptables-restore", "-w", "--noflush"], stdin=restore_script(services, queue, bypass))
    # -t before -C: `-C` takes the chain as its argument (with `-C -t …` every check failed and each
    # change inserted one more jump)
    if _run(["iptables", "-w", "-t", TABLE, "-C", "PREROUTING", "-j", CHAIN], check=False).returncode != 0:
        _run(["iptables", "-w", "-t", TABLE, "-I", "PREROUTING", "-j", CHAIN])


def remove() -> None:
    """Unhook and delete the LBXDP chain; a no-op when it is not there."""
    while _run(["iptables", "-w", "-t", TABLE, "-D", "PREROUTING", "-j", CHAIN], check=False).returncode == 0:
        pass
    _run(["iptables", "-w", "-t", TABLE, "-F", CHAIN], check=False)
    _run(["iptables", "-w", "-t", TABLE, "-X", CHAIN], check=False)


def present() -> bool:
    """Whether the LBXDP chain exists (with or without rules)."""
    return _run(["iptables", "-w", "-t", TABLE, "-S", CHAIN], check=False).returncode == 0


def installed_rules() -> list[str]:
    """The rules in the LBXDP chain as iptables prints them (-S), for status and tests."""
    done = _run(["iptables", "-w", "-t", TABLE, "-S", CHAIN], check=False)
    if done.returncode != 0:
        return []
    return [line for line in done.stdout.splitlines() if line.startswith(f"-A {CHAIN}")]

"""Who decides first packets: `lbxdp attach --sched-in xdp|daemon`.

`xdp` (the default): XDP decides the first packet of every service it can hold (every built-in
scheduler within XDP's bounds, from state the daemon keeps in maps; issue 13), and the rest go up
through NFQUEUE to the daemon. `daemon`: every first packet goes to the daemon's Python scheduler,
the reference implementation, e.g. to compare the two or to rule XDP out while debugging.

The choice is kept across daemon restarts until changed (the saved state carries it, as it does
--queue-bypass). The environment variable LBXDP_KERNEL_HASH=0 (or off, no, false), read by the
daemon when it starts, is the older way to ask for `daemon`; it is a fallback: --sched-in wins.
Pure: the daemon passes the environment in.
"""

from __future__ import annotations

from collections.abc import Mapping

XDP, DAEMON = "xdp", "daemon"
CHOICES = (XDP, DAEMON)


def resolve(option: str | None, saved: str | None, environ: Mapping[str, str]) -> str:
    """The daemon's choice: --sched-in if given, else the environment variable if set, else what
    the previous daemon saved, else xdp."""
    from lb.daemon.kernelsched import ENV_VAR, enabled_by_env  # the variable's home (maps: not needed to read it)

    if option is not None:
        if option not in CHOICES:
            raise ValueError(f"--sched-in must be xdp or daemon, not {option!r}")
        return option
    if ENV_VAR in environ:
        return XDP if enabled_by_env(environ) else DAEMON
    if saved is not None and saved in CHOICES:
        return saved
    return XDP

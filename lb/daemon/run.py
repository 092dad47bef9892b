"""`python -m lb.daemon.run`: the daemon process that `lbxdp attach` starts (or runs in the foreground).

Start-up order matters for "leave nothing behind": the control socket is bound first (a second
daemon in the same namespace stops there), the program is loaded and the saved state adopted, and only
then are interfaces attached; a failure at any step undoes what this process did and exits 1 with one
line on stderr. A saved state that is unreadable or whose ids do not match the pinned maps is not
adopted: the daemon says so in one line and starts clean on fresh maps (lb.daemon.daemon).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from lb.daemon import schedin
from lb.model import ConfigError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lbxdp-daemon")
    parser.add_argument("--iface", action="append", default=[])
    parser.add_argument("--mode", choices=["auto", "native", "generic"], default="auto")
    parser.add_argument("--config")
    parser.add_argument("--max-flows", type=int, help="default: the previous daemon's, else 262144")
    parser.add_argument("--queue-bypass", action=argparse.BooleanOptionalAction, default=None,
                        help="first packets with no daemon: let through (fail-open) or drop; "
                        "default: as saved, else drop")
    parser.add_argument("--sched-in", choices=schedin.CHOICES,
                        help="who decides first packets; default: LBXDP_KERNEL_HASH if set, else as saved, else xdp")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s lbxdp[%(process)d] %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    log = logging.getLogger("lbxdp")

    from lb.daemon.control import AddressInUse
    from lb.daemon.daemon import Daemon
    from lb.daemon.startup import saved as saved_state
    from lb.datapath import loader

    try:
        saved = saved_state()
        max_flows = args.max_flows or (saved.max_flows if saved else None) or loader.Tunables().max_flows
        adopt_from = [*(saved.ifaces if saved else []), *args.iface]
        sched_in = schedin.resolve(args.sched_in, saved.sched_in if saved else None, os.environ)
        daemon = Daemon(loader.Tunables(max_flows=max_flows), adopt_from=adopt_from, queue_bypass=args.queue_bypass,
                        sched_in=sched_in)
    except AddressInUse as exc:
        print(f"lbxdp: {exc}", file=sys.stderr)
        return 1
    except (RuntimeError, loader.LoadError, OSError) as exc:
        print(f"lbxdp: cannot start the daemon: {exc}", file=sys.stderr)
        return 1
    fresh = False
    try:
        adopted = daemon.adopt_saved_state()
        fresh = not adopted
        if adopted:
            log.info("adopted saved state: %d services, interfaces %s",
                     len(daemon.table), ", ".join(daemon.ifaces) or "none")
        if args.config:
            daemon.load_config(Path(args.config))
        for name in args.iface:
            log.info("%s", daemon.attach(name, args.mode))
        if daemon.unusable is not None:  # the old program, on interfaces not attached again, goes
            for name in sorted(set(loader.lbxdp_ifaces()) - set(daemon.ifaces)):
                loader.detach(name)
                log.info("%s: XDP detached (its program's maps were not adopted)", name)
        daemon.save_state()
    except (RuntimeError, loader.LoadError, OSError, ConfigError) as exc:  # RulesError is a ConfigError
        print(f"lbxdp: {exc}", file=sys.stderr)
        if fresh:
            daemon.remove_everything()
        daemon.close()
        return 1
    log.info("ready: %s", ", ".join(f"{k} ({v})" for k, v in daemon.ifaces.items()))
    try:
        daemon.run()
    finally:
        daemon.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

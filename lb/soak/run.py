"""`make soak` (`python -m lb.soak [--minutes N] [--out DIR]`): the soak run, start to finish.

Builds a two-arm testbed with five reals (lb.soak.plan says who does what), starts `realserver tcp`
and `udp` on them, attaches the real `lbxdp` in the balancer's namespace and configures it with the
CLI: short flow timeouts, a TCP rr and a TCP wlc service with TCP health checks, a UDP rr service,
all masquerading. Then:

1. warm-up: the full load for a while, stopped; once its flows expired, the idle start sample;
2. the load for N minutes, while a conductor makes the plan's edits, health flaps and SIGKILL +
   `lbxdp attach` restarts one at a time, and a sampler records the daemon and the maps;
3. the load stopped, the table restored to the one the run started with, the flows left to expire:
   the idle end sample; the summary and its verdicts. Exit 0 when every verdict holds, else 1.

Everything (clients, servers, the daemon, the namespaces) is stopped or removed in `finally`, on
Ctrl-C and SIGTERM too.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console

from lb.datapath.testbed import two_arm
from lb.soak import plan as P
from lb.soak.conductor import Soak, SoakError
from lb.soak.report import conn_rows, render, sample_rows, summary_json
from lb.soak.verdict import Summary

MIN_LOAD_S = 20.0  # the shortest load --minutes accepts


def _minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of minutes: {text!r}") from None
    if not value * 60 >= MIN_LOAD_S or value > 24 * 60:
        raise argparse.ArgumentTypeError(f"minutes must be between {MIN_LOAD_S / 60:g} and 1440, not {text}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value <= 600:
        raise argparse.ArgumentTypeError(f"seconds must be between 0 and 600, not {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lb.soak",
        description="Soak lbxdp: churn, UDP, config edits, health flaps and daemon SIGKILLs for N minutes, "
                    "then check that RSS and every map's entry count came back and no real that stayed "
                    "reset a connection. Needs root; builds and removes its own namespaces.",
        epilog="examples:\n  make soak\n  .venv/bin/python -m lb.soak --minutes 3 --out /tmp/soak\n"
               "  .venv/bin/python -m lb.soak --quick\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--minutes", type=_minutes, default=10.0, help="minutes of load (default 10)")
    parser.add_argument("--quick", action="store_true", help="2 minutes of load and a 10 s warm-up")
    parser.add_argument("--warmup", type=_seconds, default=None, metavar="SECONDS",
                        help="seconds of load before the idle start sample (default 20, 10 with --quick)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="write samples.csv, connections.csv, events.json and summary.json here")
    return parser


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    owner = os.getpid()

    def handler(signum: int, frame: FrameType | None) -> None:
        # Only the soak itself unwinds; a child forked meanwhile (pyroute2 forks to create a
        # namespace) inherits this handler and must die of the signal as it would have, not run
        # the soak's `finally` blocks a second time.
        if os.getpid() != owner:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    minutes = 2.0 if args.quick else args.minutes
    warmup = args.warmup if args.warmup is not None else (10.0 if args.quick else 20.0)
    console = Console()
    if os.geteuid() != 0:
        console.print("lbxdp soak: must run as root (namespaces, XDP)", style="red", markup=False)
        return 1
    soak: Soak | None = None
    summary: Summary | None = None
    code = 1
    with _sigterm_as_interrupt():
        try:
            with two_arm(reals=len(P.REALS)) as topo:
                soak = Soak(topo, minutes * 60, warmup, console)
                try:
                    summary = soak.run()
                finally:
                    _shut_down(soak)
        except KeyboardInterrupt:
            console.print("lbxdp soak: interrupted; everything it started is stopped and removed", style="red")
        except (SoakError, RuntimeError, TimeoutError, OSError) as exc:
            console.print(f"lbxdp soak: {exc}", style="red", markup=False)
    if soak is not None and args.out:
        _write(args.out, soak, summary)
        console.print(f"samples and records in {args.out}")
    if summary is not None:
        console.print(render(summary))
        code = 0 if summary.ok else 1
    return code


def _shut_down(soak: Soak) -> None:
    """Clients and the sampler stopped, lbxdp detached; the topology's own exit does the rest."""
    if soak._load is not None:
        soak._load.stop(timeout=60.0)
    soak.sampler.stop()
    if soak.attached:
        ok, _ = soak.lbxdp("detach", timeout=60.0)
        if not ok:  # no daemon to do it: its run directory would outlive the namespace
            shutil.rmtree(soak.run_dir, ignore_errors=True)


def _write(out: Path, soak: Soak, summary: Summary | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    _csv(out / "samples.csv", sample_rows(soak.sampler.snapshot()))
    records = soak.records or (soak._load.snapshot() if soak._load else [])
    _csv(out / "connections.csv", conn_rows(records))
    (out / "events.json").write_text(json.dumps([e.__dict__ for e in soak.events], indent=1))
    if summary is not None:
        (out / "summary.json").write_text(json.dumps(summary_json(summary), indent=1, default=str))


def _csv(path: Path, rows: list[dict[str, Any]]) -> None:
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)

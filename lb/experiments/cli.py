"""`lbxdp experiment …`: run one research experiment and write its CSV, PNG and summary.md.

lb/cli.py dispatches `experiment` here with the arguments after it; `main` returns the exit code:
0 done, 1 the experiment cannot run here (e.g. throughput without root), 2 bad usage.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from lb.experiments.context import ExperimentError, RunContext
from lb.experiments.registry import EXPERIMENTS

EPILOG = """\
examples:
  lbxdp experiment list
  lbxdp experiment balance --quick
  lbxdp experiment disruption --seed 7 --out /tmp/disruption
  lbxdp experiment balance --scheduler examples/plugin_scheduler/p2c.py:PowerOfTwo
  lbxdp experiment affinity --only --scheduler mh --scheduler wlc

--scheduler adds a scheduler to the experiment's default set: a registered name (rr, wlc, mh, …),
a baseline (rendezvous, modulo) or a plugin as module:Class or path/file.py:Class. With --only,
just the ones given run. Outputs go to ./out/experiments/NAME/ unless --out is given.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lbxdp experiment",
        description="Research experiments over lbxdp's schedulers (see docs/experiments.md).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", choices=["list", *EXPERIMENTS], help="the experiment to run, or list")
    parser.add_argument("--quick", action="store_true", help="small sizes: seconds instead of minutes")
    parser.add_argument("--out", type=Path, help="output directory (default ./out/experiments/NAME)")
    parser.add_argument("--seed", type=_seed, default=1, help="random seed; same seed, same results (default 1)")
    parser.add_argument("--scheduler", action="append", default=[], metavar="NAME|SPEC",
                        help="add a scheduler (repeatable): name, or plugin module:Class / path/file.py:Class")
    parser.add_argument("--only", action="store_true", help="run only the --scheduler ones, not the defaults")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seed {text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"seed {value} is negative")
    return value


def render_list() -> str:
    width = max(len(name) for name in EXPERIMENTS)
    lines = [f"{'NAME':<{width}}  {'NEEDS':<12}  MEASURES"]
    for e in EXPERIMENTS.values():
        needs = "simulation" if e.needs == "simulation" else "live"
        lines.append(f"{e.name:<{width}}  {needs:<12}  {e.measures}")
    lines.append("")
    lines.append("throughput needs root: it builds network namespaces, loads XDP programs and runs the daemon.")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # argparse has printed usage and the error
        return int(exc.code or 0)
    if args.name == "list":
        print(render_list())
        return 0
    experiment = EXPERIMENTS[args.name]
    ctx = RunContext(
        out=args.out if args.out is not None else Path("out") / "experiments" / args.name,
        seed=args.seed,
        quick=args.quick,
        schedulers=tuple(args.scheduler),
        only=args.only,
        show_progress=not args.no_progress,
    )
    started = time.monotonic()
    try:
        experiment.runner()(ctx)
    except ExperimentError as exc:
        print(f"lbxdp experiment {args.name}: {exc}", file=sys.stderr)
        return 1
    elapsed = time.monotonic() - started
    print(f"{args.name}: {len(ctx.written)} files in {ctx.out}/ ({elapsed:.1f} s)")
    for path in ctx.written:
        print(f"  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`python -m lb.bench [--quick]`: every case, interleaved runs, then results.json, the page, the chart.

Everything runs inside namespaces the run creates (lb.datapath.testbed), torn down on the way
out whatever happens; nothing is added to the root namespace. A full run writes bench/results.json,
docs/benchmarks.md and the chart; a quick run writes bench/results-quick.json and
bench/benchmarks-quick.png only, so checking the time of `make bench-quick` never replaces the
page of the last full run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from lb.bench import machine
from lb.bench.report import markdown, rich_tables, summary_lines
from lb.bench.results import Results, not_measured

ROOT = Path(__file__).resolve().parents[2]
CASE_NAMES = ("fastpath", "forwarding", "newflows", "tcp", "scale")

EXAMPLES = """\
examples:
  python -m lb.bench                  # everything, 3 interleaved runs (≤ 10 minutes)
  python -m lb.bench --quick          # shorter runs (≤ 2 minutes); writes bench/*-quick.*
  python -m lb.bench --only fastpath --only scale
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m lb.bench", description=__doc__.splitlines()[0],
                                epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="short runs (make bench-quick)")
    p.add_argument("--runs", type=int, default=3, choices=range(1, 10), metavar="N",
                   help="interleaved runs per figure (default 3)")
    p.add_argument("--only", action="append", choices=CASE_NAMES, help="run only these cases")
    p.add_argument("--no-write", action="store_true", help="print only; leave bench/ and docs/ alone")
    return p.parse_args(argv)


def run_cases(args: argparse.Namespace, results: Results, tick: Callable[[str], None],
              done: Callable[[str, float], None] = lambda name, s: None) -> None:
    """Every wanted case in order; `tick` shows what runs now, `done` is called as each case ends."""
    from lb.bench import fastpath, forwarding
    from lb.bench.programs import Registry
    from lb.datapath.testbed import two_arm

    wanted = set(args.only or CASE_NAMES)
    repeat = 50_000 if args.quick else 400_000
    seconds = 0.3 if args.quick else 2.5  # per forwarding run
    registry = Registry()
    timings: dict[str, float] = results.extras.setdefault("case_seconds", {})
    try:
        if "fastpath" in wanted:
            start = time.monotonic()
            tick("fast path: building the topology and compiling programs")
            with two_arm(reals=3, xdp_peers="pass") as topo:
                for row in fastpath.run(topo, registry, args.runs, repeat, tick):
                    results.add(row)
            timings["fastpath"] = round(time.monotonic() - start, 1)
            done("1. fast path", timings["fastpath"])
        if "forwarding" in wanted:
            start = time.monotonic()
            for row in forwarding.run(registry, args.runs, seconds, tick, quick=args.quick):
                results.add(row)
            timings["forwarding"] = round(time.monotonic() - start, 1)
            done("2. forwarding", timings["forwarding"])
        if wanted & {"newflows", "tcp", "scale"}:
            start = time.monotonic()
            run_live(args, wanted, registry, results, tick)
            timings["live daemon (newflows, tcp, scale)"] = round(time.monotonic() - start, 1)
            done("3-5. live daemon: new flows, real TCP, scale", timings["live daemon (newflows, tcp, scale)"])
    finally:
        registry.close()


def run_live(args: argparse.Namespace, wanted: set[str], registry: object, results: Results,
             tick: Callable[[str], None]) -> None:
    """Cases 3-5 against one live daemon: TCP first (an empty flow table), then the SYN bursts,
    then the daemon's memory with those flows and `lbxdp -R` of 1000 services (last: 1000 more
    mangle rules would slow every later first packet)."""
    from lb.bench import firstpath_cost, newflows, scale, tcp
    from lb.bench.live import live_balancer

    try:
        with live_balancer(tick) as live:
            if "tcp" in wanted:
                for row in tcp.run(live, args.runs, 1.0 if args.quick else 5.0, tick, quick=args.quick):
                    results.add(row)
            if "newflows" in wanted:
                burst = 1500 if args.quick else 4000  # SYNs a run; the daemon's queue holds 4096
                for row in newflows.run(live, registry, args.runs, burst, tick):  # type: ignore[arg-type]
                    results.add(row)
                if args.quick:
                    results.add(not_measured("newflows", firstpath_cost.NAME, firstpath_cost.UNIT,
                                             "left out of --quick (full run only: it compiles its own program)"))
                else:
                    results.add(firstpath_cost.run(live, args.runs, burst, tick))
                profile = newflows.profile_daemon(live, registry, burst, tick)  # type: ignore[arg-type]
                if profile is not None:
                    results.extras["daemon_profile"] = profile
            if "scale" in wanted:
                for row in scale.run(args.runs, tick, quick=args.quick, live=live):
                    results.add(row)
            return
    except Exception as exc:  # noqa: BLE001 (the live cases become rows saying why)
        why = f"live daemon: {(str(exc).splitlines() or [type(exc).__name__])[0][:120]}"
    done = {r.case for r in results.rows}
    if "tcp" in wanted and "tcp" not in done:
        for row in tcp.run(None, args.runs, 0, tick, why_not=why):
            results.add(row)
    if "newflows" in wanted and "newflows" not in done:
        for row in newflows.run(None, registry, args.runs, 0, tick, why_not=why):  # type: ignore[arg-type]
            results.add(row)
        results.add(firstpath_cost.run(None, args.runs, 0, tick, why_not=why))
    if "scale" in wanted and "scale" not in done:
        for row in scale.run(args.runs, tick, quick=args.quick, why_not=why):
            results.add(row)


def write(results: Results, quick: bool, say: Callable[[str], None]) -> list[str]:
    """The run's files (relative paths): a full run's page and chart, or a quick run's own files."""
    bench_dir, docs = ROOT / "bench", ROOT / "docs"
    bench_dir.mkdir(exist_ok=True)
    suffix = "-quick" if quick else ""
    data = bench_dir / f"results{suffix}.json"
    data.write_text(json.dumps(results.to_dict(), indent=2) + "\n")
    written = [data]
    charts = [bench_dir / f"benchmarks{suffix}.png"]
    if not quick:
        (docs / "benchmarks.md").write_text(markdown(results))
        written.append(docs / "benchmarks.md")
        charts.append(docs / "figures" / "benchmarks.png")
    try:
        from lb.bench import chart

        chart.draw(results, charts)
        written += charts
    except Exception as exc:  # noqa: BLE001 (the figures are extra; the numbers are written)
        say(f"chart not drawn: {exc}")
    return [str(p.relative_to(ROOT)) for p in written]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("lb.bench: must run as root (namespaces, XDP, BPF_PROG_RUN)", file=sys.stderr)
        return 1
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console()
    results = Results("quick" if args.quick else "full", machine.describe(), runs=args.runs,
                      started=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))
    start = time.monotonic()
    budget = "≤ 2 minutes" if args.quick else "≤ 10 minutes"
    console.print(f"lb.bench {results.mode}: {args.runs} interleaved runs per figure, {budget}")
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task("starting", total=None)

        def done(name: str, seconds: float) -> None:
            rows = len(results.rows)
            progress.console.print(f"  done: {name} in {seconds:.0f} s "
                                   f"({time.monotonic() - start:.0f} s in, {rows} rows so far)")

        try:
            run_cases(args, results, lambda text: progress.update(task, description=text), done)
        except KeyboardInterrupt:
            console.print("[red]interrupted: namespaces torn down; partial results follow[/red]")
    results.elapsed_s = time.monotonic() - start

    for table in rich_tables(results):
        console.print(table)
    if not args.no_write:
        console.print("wrote " + ", ".join(write(results, quick=args.quick, say=console.print))
                      + f" ({results.elapsed_s:.0f} s)")
    console.print("case times: " + ", ".join(f"{k} {v:.0f} s" for k, v in
                                            results.extras.get("case_seconds", {}).items()))
    console.print("\n[bold]Summary (targets of issues 7 and 13)[/bold]")
    for line in summary_lines(results):
        console.print(line, markup=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())

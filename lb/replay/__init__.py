"""`lbxdp replay`: recorded packets through the XDP program (BPF_PROG_RUN) or the rewrite model.

    lbxdp replay rr-masq dr             # pcaps/<name>/in.pcap through XDP + first-packet path, vs out.pcap
    lbxdp replay --model pcaps/*        # the same through the pure rewrite model (no root)
    lbxdp replay --corpus DIR --rules RULES   # any captures, robustness contract only

Modules: scenario (the files), frames (parsing, identity, checksums), firstpath (the daemon's
first-packet policy, lb.balancer.decide, over replay's tables), engine (the loop), compare (pairing
and field diffs), runner (one scenario), corpus (the robustness contract), lab (the program and
BPF_PROG_RUN in a namespace lb.datapath.replaylab builds), record (lbxdp record, on the testbed).
docs/replay.md explains the whole.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

PCAPS = Path(__file__).resolve().parents[2] / "pcaps"
PROGRESS_FROM = 200  # captures at least this long get a progress bar

EXAMPLES = """\
examples:
  lbxdp replay rr-masq                       # one scenario of pcaps/, through XDP (root)
  lbxdp replay all                           # every scenario
  lbxdp replay --model all                   # through the rewrite model only (no root)
  lbxdp replay ./my-scenario                 # a scenario folder anywhere
  lbxdp replay --corpus ../shared/corpus/zeek --rules pcaps/corpus-rules/zeek.rules
exit status: 0 all match (or no violation), 1 a mismatch or violation, 2 bad usage or input
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lbxdp replay",
        description="Replay recorded scenarios through the XDP program and the first-packet path and "
        "compare with the recorded output byte for byte; or check any captures against the robustness contract.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("scenarios", nargs="*", metavar="SCENARIO", help="a name in pcaps/, a scenario folder, or 'all'")
    p.add_argument("--model", action="store_true", help="use the pure rewrite model instead of the XDP program")
    p.add_argument("--corpus", metavar="DIR", help="check every capture in DIR (or one capture file)")
    p.add_argument("--rules", metavar="RULES", help="with --corpus: the services that make some flows VIP traffic")
    p.add_argument("-v", "--verbose", action="store_true", help="with --corpus: list every violation")
    return p


def _fail(message: str, code: int = 2) -> int:
    print(f"lbxdp replay: {message}", file=sys.stderr)
    return code


def scenario_paths(names: list[str]) -> list[Path]:
    """Names in pcaps/ or folders; 'all' is every folder of pcaps/ holding an in.pcap."""
    if names == ["all"]:
        return sorted(p.parent for p in PCAPS.glob("*/in.pcap"))
    paths = []
    for name in names:
        path = Path(name)
        paths.append(path if path.is_dir() or os.sep in name else PCAPS / name)
    return paths


@contextmanager
def progress_bar(total: int, label: str) -> Iterator[Callable[[int], None] | None]:
    """A rich progress bar for long captures (stderr, only on a terminal); None otherwise."""
    if total < PROGRESS_FROM or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda done: bar.update(task, completed=done)


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.corpus:
        if args.scenarios:
            return _fail("give either scenarios or --corpus, not both")
        if not args.rules:
            return _fail("--corpus needs --rules RULES (the services; an empty file makes no traffic VIP traffic)")
        from lb.replay.corpus import corpus_main

        return corpus_main(Path(args.corpus), Path(args.rules), verbose=args.verbose, model_only=args.model)
    if not args.scenarios:
        return _fail("name at least one scenario (or 'all'), or use --corpus DIR --rules RULES")
    if not args.model and os.geteuid() != 0:
        return _fail("replay through XDP needs root (BPF_PROG_RUN, a namespace); --model needs none", 1)
    from lb.replay.runner import run_scenario
    from lb.replay.scenario import ScenarioError, load

    paths = scenario_paths(args.scenarios)
    if not paths:
        return _fail(f"no scenarios in {PCAPS}")
    failed = 0
    for path in paths:
        try:
            scenario = load(path)
        except ScenarioError as exc:
            return _fail(str(exc))
        factory = None
        if not args.model:
            from lb.replay.lab import xdp_datapath

            factory = xdp_datapath
        try:
            with progress_bar(len(scenario.frames_in), scenario.name) as tick:
                report = run_scenario(scenario, factory, tick)
        except ScenarioError as exc:
            return _fail(str(exc))
        print(report.summary())
        for mismatch in report.verdict.mismatches:
            print(mismatch.render())
        failed += not report.ok
    return 1 if failed else 0

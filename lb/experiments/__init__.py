"""Research experiments over the scheduler classes: `lbxdp experiment …`.

Every pure experiment drives the very `Scheduler` classes the daemon uses (lb/sched), keeping each
`Destination`'s active/inactive counts current as simulated flows open and close, so the
connection-counting schedulers (lc, wlc, sed, nq) decide as they would live. One module per
experiment; `workload` makes the flows, `plotting` draws, `cli` runs them. See docs/experiments.md.
"""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """`lbxdp experiment …` (lb/cli.py's table names this or lb.experiments.cli:main; both work)."""
    from lb.experiments.cli import main as cli_main

    return cli_main(argv)

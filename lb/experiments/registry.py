"""The experiments `lbxdp experiment` knows, by name; modules are imported only when run.

`list`, `--help` and `throughput` stay fast because matplotlib and the schedulers load only with
the experiment that needs them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from lb.experiments.context import RunContext


@dataclass(frozen=True)
class Experiment:
    name: str
    module: str  # lb.experiments.<module> with a run(ctx) function
    measures: str
    needs: str  # "simulation" or what else it needs

    def runner(self) -> Callable[[RunContext], object]:
        return importlib.import_module(f"lb.experiments.{self.module}").run  # type: ignore[no-any-return]


EXPERIMENTS: dict[str, Experiment] = {
    e.name: e
    for e in (
        Experiment("balance", "balance", "per-real load over time, max/mean and CV; equal and weighted reals",
                   "simulation"),
        Experiment("disruption", "disruption", "flows that change real when reals come, go or change weight; "
                   "Maglev table balance and resilience", "simulation"),
        Experiment("affinity", "affinity", "packets sent to another real when the flow table is too small, "
                   "with and without a consistent-hash fallback", "simulation"),
        Experiment("throughput", "throughput", "forwarding and first-packet rate vs concurrent flows and "
                   "flow-table size", "root, live datapath (XDP in network namespaces, the daemon)"),
    )
}

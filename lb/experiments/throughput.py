"""Throughput (live): forwarding rate and first-packet rate against concurrent flows and flow-table size.

Unlike the other experiments this one needs the real thing: the XDP program attached in network
namespaces, the daemon scheduling first packets over NFQUEUE, clients and reals as in
tests/e2e. That path (lb/datapath, lb/daemon) is being built; until it lands, `run()` refuses
with one line and the CLI exits 1.

The hook: replace `run()` with a function of the same signature that

1. builds the test topology (client, lb, reals; unique per-run names, 10/8 only, torn down in a
   `finally`), attaches lbxdp with the flow table sized by `-DMAX_FLOWS`,
2. for each (concurrent flows, table size) point, runs a bounded client load, reads the per-CPU
   counters for forwarded packets and the daemon's count of first packets scheduled per second,
3. writes `throughput.csv`, a figure via `plotting.line_panels` and `summary.md` through `ctx`,

and set `AVAILABLE` from a check that the datapath can load (root, bcc, the pieces present).
"""

from __future__ import annotations

from lb.experiments.context import ExperimentError, RunContext

AVAILABLE = False
REASON = "needs the live datapath (XDP program and daemon in network namespaces), which is not available yet"


def run(ctx: RunContext) -> None:
    """The live measurement; refuses until the datapath exists."""
    if not AVAILABLE:
        raise ExperimentError(REASON)
    raise ExperimentError("throughput: the live measurement is not written yet")  # pragma: no cover

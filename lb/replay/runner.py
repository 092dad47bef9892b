"""Replaying one recorded scenario: in.pcap through the datapath and the first-packet path, judged
against out.pcap. `datapath_factory` gives the XDP program (lb.replay.lab) or, when None, the model."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

from lb.replay import compare
from lb.replay.engine import Datapath, ModelDatapath, Path, Step, replay
from lb.replay.firstpath import FirstPacketPath
from lb.replay.scenario import Scenario, ScenarioError, Topology
from lb.tables import Tables

DatapathFactory = Callable[[Topology, Tables], AbstractContextManager[Datapath]]


@dataclass(frozen=True)
class Report:
    scenario: str
    engine: str  # "xdp" or "model"
    steps: tuple[Step, ...]
    verdict: compare.Verdict
    agreed: int
    disagreed: int

    @property
    def ok(self) -> bool:
        return self.verdict.ok

    def summary(self) -> str:
        paths = Counter(s.path for s in self.steps)
        v = self.verdict
        state = "ok" if self.ok else f"FAILED, {len(v.mismatches)} mismatch{'es' if len(v.mismatches) != 1 else ''}"
        return (
            f"{self.scenario} ({self.engine}): {len(self.steps)} in, {paths[Path.XDP]} by XDP, "
            f"{paths[Path.FIRST]} by the first-packet path, {paths[Path.KERNEL]} to the kernel, "
            f"{paths[Path.DROPPED]} dropped; {v.matched} equal to out.pcap, {v.kernel} forwarded by the kernel; "
            f"scheduler agreed with the recording on {self.agreed}/{self.agreed + self.disagreed} new flows: {state}"
        )


@contextmanager
def _model(topology: Topology, tables: Tables) -> Iterator[Datapath]:
    yield ModelDatapath(tables, topology.fib())


def run_scenario(
    scenario: Scenario,
    datapath_factory: DatapathFactory | None = None,
    progress: Callable[[int], None] | None = None,
) -> Report:
    topology = scenario.topology
    frames = []
    for number, frame in enumerate(scenario.frames_in, start=1):
        ingress = topology.ingress_for(frame.data)
        if ingress is None:
            raise ScenarioError(f"{scenario.path}/in.pcap #{number}: addressed to no interface of the balancer")
        frames.append((frame.data, ingress))
    first = FirstPacketPath.for_topology(scenario.table, topology, scenario.decisions)
    factory = datapath_factory or _model
    with factory(topology, first.tables) as datapath:
        steps = replay(frames, datapath, first, progress)
    verdict = compare.judge(steps, [f.data for f in scenario.frames_out])
    engine = "model" if datapath_factory is None else "xdp"
    return Report(scenario.name, engine, tuple(steps), verdict, first.agreed, len(first.disagreed))

"""`lbxdp replay --corpus DIR --rules RULES`: captures nobody here wrote, through the XDP program, held to
the robustness contract (docs/replay.md) packet by packet. There is no expected output; instead:

- no crash or stall: every BPF_PROG_RUN returns, each within STALL_SECONDS;
- no read past the frame: the verifier guarantees it; the output length must also be the input's
  (or the input's plus one IPv4 header, for IPIP);
- traffic that is neither for a service nor a masqueraded reply leaves unchanged with PASS (or DROP
  when the policy drops it: a lying IPv4 header); a service's traffic is dropped only for that, or
  as a TCP segment of no flow that opens none (DROP_NO_FLOW_NOT_SYN);
- every rewritten packet's IPv4 and L4 checksums are right when the input's were, and stay wrong
  when the input's were wrong (an incremental update must not "fix" a corrupt packet);
- every packet of one flow goes to one real;
- every packet gets the verdict docs/datapath.md documents: the program's verdict and reason counter
  equal the rewrite model's, and the verdict is the one its reason stands for.

The captures' own addresses serve as VIPs in the rules: nothing is sent anywhere (BPF_PROG_RUN runs
the program on a buffer, in a namespace of our own). Reals live behind the lab's `rs0`.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from lb.config.savefmt import RulesError, load_rules
from lb.config.table import ServiceTable
from lb.model import FlowKey, RealKey
from lb.packet import ETH_HLEN, IpProto
from lb.replay.decisions import flow_of, real_of
from lb.replay.engine import Datapath, ModelDatapath, Outcome, Path as Via, Step, replay
from lb.replay.filereport import FileReport
from lb.replay.firstpath import FirstPacketPath
from lb.replay.frames import Csum, checksums, ipv4
from lb.replay.scenario import GatewayRoute, Interface, Neighbour, ScenarioError, Topology, read_pcap
from lb.rewrite import Reason, Verdict, process
from lb.tables import Tables

STALL_SECONDS = 0.5
IN0, RS0 = 10, 20
CAPTURE_SUFFIXES = (".pcap", ".cap")


def lab_topology(table: ServiceTable) -> Topology:
    """The corpus lab: captures arrive on in0; reals sit behind rs0 (10.200.0.0/24 directly, the rest
    of 10.0.0.0/8 via a gateway), each with a permanent neighbour entry."""
    reals = sorted({str(r.address) for vs in table for r in vs.reals.values()})
    neighbours = [Neighbour(RS0, "10.200.0.254", "02:00:0a:c8:00:fe")]
    neighbours += [Neighbour(RS0, a, "02:00:" + ":".join(f"{int(o):02x}" for o in a.split("."))) for a in reals
                   if a.startswith("10.200.0.") and a != "10.200.0.254"]
    return Topology(
        kind="corpus",
        vip="",
        interfaces=(
            Interface("in0", IN0, "02:00:00:00:0a:00", ("10.201.0.1/24",), "capture input"),
            Interface("rs0", RS0, "02:00:00:00:14:00", ("10.200.0.1/24",), "real side"),
        ),
        neighbours=tuple(neighbours),
        routes=(GatewayRoute("10.0.0.0/8", "10.200.0.254", RS0),),
        tunnel_source="10.200.0.1",
    )


class Dual:
    """Runs the program and the model on the same frame against the same tables; the model's answer
    is kept beside each step for the contract checks."""

    def __init__(self, program: Datapath, model: ModelDatapath) -> None:
        self.program = program
        self.model = model
        self.models: list[Outcome] = []
        self.slow: list[float] = []

    def run(self, frame: bytes, ingress: int) -> Outcome:
        self.models.append(self.model.run(frame, ingress))
        if len(frame) < ETH_HLEN:
            self.slow.append(0.0)
            return self.models[-1]
        start = time.monotonic()
        out = self.program.run(frame, ingress)
        self.slow.append(time.monotonic() - start)
        return out

    def install(self, tables: Tables, flow: FlowKey) -> None:
        self.program.install(tables, flow)


def check_file(name: str, frames: list[bytes], table: ServiceTable, topology: Topology,
               program: Datapath | None, reset: Callable[[Tables], None] | None = None) -> FileReport:
    """Every frame of one capture through `program` (None: the model) and the contract checks."""
    report = FileReport(name, len(frames))
    first = FirstPacketPath.for_topology(table, topology)
    model = ModelDatapath(first.tables, topology.fib())
    if reset is not None:
        reset(first.tables)
    dual = Dual(program or model, model)
    steps = replay([(f, IN0) for f in frames], dual, first)
    services = {vs.service.key for vs in table}
    reals_of_flow: dict[FlowKey, set[RealKey]] = defaultdict(set)
    for step, expected, took in zip(steps, dual.models, dual.slow):
        if len(step.frame) < ETH_HLEN:
            report.not_run += 1
            continue
        problems = check_step(step, expected, services, topology, reals_of_flow)
        if took > STALL_SECONDS:
            problems.append(f"took {took:.2f} s")
        rewritten = step.frame_out != step.frame
        if rewritten:
            report.rewritten += 1
        elif step.path is Via.DROPPED:
            report.dropped += 1
        else:
            report.passed += 1
        report.violations += [f"#{step.number}: {p}" for p in problems]
    for flow, reals in reals_of_flow.items():
        if len(reals) > 1:
            report.violations.append(f"flow {flow} went to {len(reals)} reals: {', '.join(map(str, sorted(reals)))}")
    return report


def check_step(step: Step, expected: Outcome, services: set, topology: Topology,
               reals_of_flow: dict[FlowKey, set[RealKey]]) -> list[str]:
    """The contract for one packet; returns what it broke (empty: nothing)."""
    problems = []
    got = step.outcome
    if got.verdict is not expected.verdict or got.frame_out != expected.frame_out:
        problems.append(f"XDP says {got.verdict.name}, the model {expected.verdict.name}"
                        + ("" if got.frame_out == expected.frame_out else "; the bytes differ"))
    if got.reason is not None and got.reason is not expected.reason:
        problems.append(f"XDP counted {got.reason.name}, the model {expected.reason.name if expected.reason else '?'}")
    if got.reason is not None and got.reason.verdict is not got.verdict:
        problems.append(f"verdict {got.verdict.name} under reason {got.reason.name}")
    grown = len(step.frame_out) - len(step.frame)
    ipip = grown == 20 and (ip := ipv4(step.frame_out)) is not None and ip.proto == IpProto.IPIP
    if grown != 0 and not ipip:
        problems.append(f"output is {len(step.frame_out)} bytes for {len(step.frame)} in")
    flow = flow_of(step.frame) if ipv4(step.frame) is not None else None
    ours = flow is not None and flow.service_key in services
    rewritten = step.frame_out != step.frame
    if not ours and got.reason not in _REVERSE and rewritten:
        problems.append("traffic for no service was changed")
    if not ours and got.verdict not in (Verdict.PASS, Verdict.DROP):
        problems.append(f"traffic for no service got {got.verdict.name}")
    if got.verdict is Verdict.DROP and got.reason is not None and got.reason not in _POLICY_DROPS:
        problems.append(f"dropped under {got.reason.name}: only a lying IPv4 header, or a service's "
                        "TCP segment of no flow that opens none, is dropped")
    if got.reason is Reason.DROP_NO_FLOW_NOT_SYN and not ours:
        problems.append("traffic for no service dropped as a service's segment of no flow")
    if rewritten:
        problems += _checksums_kept(step.frame, step.frame_out, ipip)
        if ours and step.path is not Via.DROPPED:
            real = real_of(step.frame_out, flow.service_key, topology)  # type: ignore[union-attr]
            if real is not None:
                reals_of_flow[flow].add(real)  # type: ignore[index]
    return problems


_REVERSE = {Reason.TX_REVERSE, Reason.REDIRECT_REVERSE}
_POLICY_DROPS = {Reason.DROP_BAD_IPV4, Reason.DROP_NO_FLOW_NOT_SYN}  # docs/datapath.md's policy table


def _checksums_kept(before: bytes, after: bytes, ipip: bool) -> list[str]:
    """A rewrite keeps each checksum's truth: right stays right, wrong stays wrong."""
    old, new = checksums(before), checksums(after)
    if old is None or new is None:
        return ["a rewritten packet is not IPv4"]
    problems = []
    pairs = [("L4", old.l4, new.l4)]
    if ipip:
        if new.ip is not Csum.GOOD:
            problems.append("outer IPv4 checksum is wrong")
        pairs.append(("inner IPv4", old.ip, new.inner_ip or Csum.UNKNOWN))
    else:
        pairs.append(("IPv4", old.ip, new.ip))
    for name, was, now in pairs:
        if was is Csum.GOOD and now is not Csum.GOOD:
            problems.append(f"{name} checksum was right and is now {now.value}")
        if was is Csum.BAD and now is Csum.GOOD:
            problems.append(f"{name} checksum was wrong and was silently made right")
        if was is Csum.NONE and now is not Csum.NONE:
            problems.append(f"UDP without checksum now has one ({now.value})")
    return problems


def captures(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ScenarioError(f"{path}: no such file or directory")
    return sorted(p for p in path.iterdir() if p.suffix in CAPTURE_SUFFIXES)


def run_corpus(
    path: Path,
    table: ServiceTable,
    program_factory: Callable[[Topology, Tables], AbstractContextManager[Datapath]] | None,
) -> list[FileReport]:
    """Every capture under `path`; one program load for all (maps reset per file)."""
    topology = lab_topology(table)
    files = captures(path)
    reports = []
    with (program_factory(topology, Tables()) if program_factory else _none()) as program:
        # The factories that yield a program (lb.replay.lab's XdpDatapath) have loaded maps; the Datapath
        # protocol states only what replay itself needs, so the map reset is reached past it.
        reset = program.loaded.maps.write if program is not None else None  # type: ignore[attr-defined]
        for file in files:
            try:
                frames = [f.data for f in read_pcap(file)]
            except ScenarioError as exc:
                reports.append(FileReport(file.name, skipped=str(exc)))
                continue
            reports.append(check_file(file.name, frames, table, topology, program, reset))
    return reports


@contextmanager
def _none() -> Iterator[None]:
    yield None


def corpus_main(path: Path, rules: Path, verbose: bool = False, model_only: bool = False) -> int:
    import os
    import sys

    from lb.replay.render import corpus_table

    try:
        table = load_rules(rules.read_text(), str(rules))
    except OSError as exc:
        print(f"lbxdp replay: cannot read {rules}: {exc.strerror}", file=sys.stderr)
        return 2
    except RulesError as exc:
        print(f"lbxdp replay: {exc}", file=sys.stderr)
        return 2
    factory = None
    if not model_only:
        if os.geteuid() != 0:
            print("lbxdp replay: --corpus through XDP needs root; --model checks the model alone", file=sys.stderr)
            return 1
        from lb.replay.lab import xdp_datapath

        factory = xdp_datapath
    try:
        reports = run_corpus(path, table, factory)
    except ScenarioError as exc:
        print(f"lbxdp replay: {exc}", file=sys.stderr)
        return 2
    print(corpus_table(reports, "model" if model_only else "xdp"))
    bad = [r for r in reports if r.violations]
    for r in bad:
        shown = r.violations if verbose else r.violations[:5]
        for v in shown:
            print(f"{r.name} {v}")
        if len(r.violations) > len(shown):
            print(f"{r.name}: … {len(r.violations) - len(shown)} more (-v lists all)")
    return 1 if bad else 0


__all__ = ["FileReport", "check_file", "check_step", "corpus_main", "lab_topology", "process", "run_corpus"]

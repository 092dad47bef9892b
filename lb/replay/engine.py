"""The replay loop: every captured frame through a datapath (the XDP program or the rewrite model)
and, where the datapath passes a VIP packet up, through the first-packet path, as the live balancer
would. The datapath is anything with `run(frame, ingress) -> Outcome` and `install(tables, flow)`:
`ModelDatapath` here (pure), `lb.replay.lab.XdpDatapath` for the real program.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol as TypingProtocol

from lb.balancer.decide import Fate
from lb.model import FlowKey
from lb.replay.firstpath import FirstPacketPath, Handled
from lb.rewrite import Reason, Verdict, process
from lb.rewrite.fib import Fib
from lb.tables import Tables


@dataclass(frozen=True)
class Outcome:
    """One run of the datapath on one frame. `reason` is None when the datapath could not say."""

    verdict: Verdict
    frame_out: bytes
    reason: Reason | None
    egress: int | None = None


class Datapath(TypingProtocol):
    def run(self, frame: bytes, ingress: int) -> Outcome: ...

    def install(self, tables: Tables, flow: FlowKey) -> None: ...


class ModelDatapath:
    """lb.rewrite.process over the first-packet path's own tables (they are its "maps")."""

    def __init__(self, tables: Tables, fib: Fib) -> None:
        self.tables = tables
        self.fib = fib

    def run(self, frame: bytes, ingress: int) -> Outcome:
        result = process(frame, self.tables, self.fib, ingress)
        return Outcome(result.verdict, result.frame_out, result.reason, result.egress_ifindex)

    def install(self, tables: Tables, flow: FlowKey) -> None:
        pass  # the same Tables object: already there


class Path(enum.Enum):
    """Who emitted (or disposed of) a packet."""

    XDP = "xdp"  # XDP_TX / XDP_REDIRECT
    FIRST = "first-packet path"  # rewritten by the daemon and sent (AF_PACKET)
    KERNEL = "kernel"  # passed: the kernel forwards, delivers or drops it; its bytes are not ours
    DROPPED = "dropped"  # XDP_DROP / XDP_ABORTED, or dropped by the first-packet path


@dataclass(frozen=True)
class Step:
    """What became of input packet `number` (1-based, as in the capture)."""

    number: int
    frame: bytes
    ingress: int
    outcome: Outcome  # the datapath's answer
    path: Path
    frame_out: bytes  # what left: the emitted frame, or what was handed to the kernel
    egress: int | None = None
    handled: Handled | None = None  # the first-packet path's answer, when it was asked

    @property
    def emitted(self) -> bool:
        return self.path in (Path.XDP, Path.FIRST)


def replay(
    frames: Sequence[tuple[bytes, int]],
    datapath: Datapath,
    first: FirstPacketPath,
    progress: Callable[[int], None] | None = None,
) -> list[Step]:
    """Run (frame, ingress ifindex) pairs in order; each packet sees the flows the earlier ones made."""
    steps = []
    for number, (frame, ingress) in enumerate(frames, start=1):
        steps.append(_one(number, frame, ingress, datapath, first))
        if progress is not None:
            progress(number)
    return steps


def _one(number: int, frame: bytes, ingress: int, datapath: Datapath, first: FirstPacketPath) -> Step:
    out = datapath.run(frame, ingress)
    if out.verdict in (Verdict.TX, Verdict.REDIRECT):
        return Step(number, frame, ingress, out, Path.XDP, out.frame_out, out.egress)
    if out.verdict is not Verdict.PASS:
        return Step(number, frame, ingress, out, Path.DROPPED, out.frame_out)
    if not first.queued(out.frame_out):
        return Step(number, frame, ingress, out, Path.KERNEL, out.frame_out)
    handled = first.handle(out.frame_out, ingress)
    if handled.installed is not None:
        datapath.install(first.tables, handled.installed)
    result = handled.result
    if handled.fate is Fate.SENT:
        assert result is not None
        return Step(number, frame, ingress, out, Path.FIRST, result.frame_out, result.egress_ifindex, handled)
    if handled.fate is Fate.KERNEL:
        assert result is not None
        return Step(number, frame, ingress, out, Path.KERNEL, result.frame_out, None, handled)
    if handled.fate is Fate.KERNEL_AS_IS:
        return Step(number, frame, ingress, out, Path.KERNEL, out.frame_out, None, handled)
    return Step(number, frame, ingress, out, Path.DROPPED, out.frame_out, None, handled)

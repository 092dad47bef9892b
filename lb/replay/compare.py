"""Judging a replay against a recording: pair what was emitted with out.pcap, and show a mismatch
field by field.

Pairing is by `frames.identity` (IP id, lengths, sequence numbers, options, payload: what no rewrite
touches), first come first served, so the order the interfaces' captures were merged in does not
matter. Every emitted packet must find its recorded twin and equal it byte for byte; every recorded
packet must be accounted for, either by an emitted packet or by a packet the balancer handed to the
kernel (a direct-routing reply, say, that the kernel forwarded: its bytes are the kernel's, not ours).
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import zip_longest

import scapy.layers.inet  # noqa: F401 - binds IPv4, TCP, UDP (and IPIP) under Ether for dissection
from scapy.layers.l2 import Ether
from scapy.packet import Packet

from lb.replay.engine import Step
from lb.replay.frames import identity


@dataclass(frozen=True)
class Mismatch:
    """One disagreement. `step` is the input packet number, `recorded` the out.pcap packet number
    (1-based); either is None when that side has no packet."""

    step: int | None
    recorded: int | None
    what: str
    expected: bytes | None = None
    got: bytes | None = None

    def render(self) -> str:
        where = []
        if self.step is not None:
            where.append(f"in.pcap #{self.step}")
        if self.recorded is not None:
            where.append(f"out.pcap #{self.recorded}")
        head = f"{' / '.join(where)}: {self.what}"
        if self.expected is not None and self.got is not None:
            return head + "\n" + field_diff(self.expected, self.got) + "\n" + side_by_side(self.expected, self.got)
        return head


@dataclass(frozen=True)
class Verdict:
    matched: int  # emitted packets equal to their recording
    kernel: int  # recorded packets the kernel forwarded for a passed input
    mismatches: tuple[Mismatch, ...]

    @property
    def ok(self) -> bool:
        return not self.mismatches


def judge(steps: Sequence[Step], recorded: Sequence[bytes]) -> Verdict:
    pending: dict[tuple[object, ...], deque[int]] = defaultdict(deque)
    for index, frame in enumerate(recorded):
        pending[identity(frame)].append(index)
    used: set[int] = set()
    mismatches: list[Mismatch] = []
    matched = 0
    for step in steps:
        if not step.emitted:
            continue
        queue = pending.get(identity(step.frame_out))
        if not queue:
            mismatches.append(Mismatch(step.number, None, f"emitted by {step.path.value} but not in out.pcap"))
            continue
        same = next((i for i in queue if recorded[i] == step.frame_out), None)
        index = same if same is not None else queue[0]
        queue.remove(index)
        used.add(index)
        if same is None:
            mismatches.append(
                Mismatch(step.number, index + 1, f"emitted by {step.path.value} differs from the recording",
                         recorded[index], step.frame_out)
            )
        else:
            matched += 1
    kernel = 0
    for step in steps:
        if step.emitted:
            continue
        queue = pending.get(identity(step.frame_out))
        if queue:
            used.add(queue.popleft())
            kernel += 1
    for index, frame in enumerate(recorded):
        if index not in used:
            mismatches.append(Mismatch(None, index + 1, "recorded but never emitted by the replay", frame, None))
    mismatches.sort(key=lambda m: (m.step or 0, m.recorded or 0))
    return Verdict(matched, kernel, tuple(mismatches))


def _fields(pkt: Packet) -> list[tuple[str, object]]:
    """(Layer.field, value) for every field of every layer, as scapy dissects the bytes."""
    out: list[tuple[str, object]] = []
    layer: Packet | None = pkt
    seen: dict[str, int] = defaultdict(int)
    while layer is not None and layer.name != "NoPayload":
        name = type(layer).__name__
        seen[name] += 1
        label = name if seen[name] == 1 else f"{name}#{seen[name]}"  # IPIP: IP and IP#2
        for fld in layer.fields_desc:
            out.append((f"{label}.{fld.name}", layer.getfieldval(fld.name)))
        layer = layer.payload if layer.payload else None
    return out


def field_diff(expected: bytes, got: bytes) -> str:
    """The fields that differ, one per line: `IP.chksum: expected 0x1c46, got 0x1c47`."""
    left = dict(_fields(Ether(expected)))
    right = dict(_fields(Ether(got)))
    lines = []
    for name in list(left) + [n for n in right if n not in left]:
        a, b = left.get(name, "(absent)"), right.get(name, "(absent)")
        if a != b:
            lines.append(f"  {name}: expected {_show(a)}, got {_show(b)}")
    if len(expected) != len(got):
        lines.append(f"  length: expected {len(expected)}, got {len(got)}")
    if not lines:
        lines.append("  (no field differs as scapy reads them; the bytes do)")
    return "\n".join(lines)


def _show(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value > 9:
        return f"{value} ({value:#x})"
    if isinstance(value, bytes) and len(value) > 24:
        return repr(value[:24]) + "…"
    return repr(value) if isinstance(value, (bytes, str)) else str(value)


def side_by_side(expected: bytes, got: bytes) -> str:
    """Both frames dissected (scapy's show2), side by side, differing lines marked ≠."""
    left = (Ether(expected).show2(dump=True) or "").splitlines()  # dump=True always returns the text
    right = (Ether(got).show2(dump=True) or "").splitlines()
    width = max((len(line) for line in left), default=0)
    lines = [f"{'expected (' + str(len(expected)) + ' bytes)':<{width}}   got ({len(got)} bytes)"]
    for a, b in zip_longest(left, right, fillvalue=""):
        lines.append(f"{a:<{width}} {'|' if a == b else '≠'} {b}")
    return "\n".join(lines)

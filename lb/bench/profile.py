"""Where the daemon's time goes: py-spy's raw (collapsed-stack) output reduced to hot spots.

Pure: text in, rows out. py-spy `record -f raw` writes one line per distinct stack,
`frame;frame;…;leaf count`, outermost frame first; a frame is `function (file:line)`. A hot spot's
"self" share counts samples where it is the leaf, its "total" share samples where it is anywhere
on the stack (each stack counted once per function, so recursion does not inflate it).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

_LINE = re.compile(r"\s*\(([^():]+):\d+\)$")


@dataclass(frozen=True)
class HotSpot:
    function: str  # "FrameSender.send (lb/datapath/sender.py)"
    self_share: float  # fraction of samples with this function as the leaf
    total_share: float  # fraction of samples with this function on the stack


def _function(frame: str) -> str:
    """`f (path:line)` → `f (path)`: lines of one function are one hot spot."""
    return _LINE.sub(lambda m: f" ({m.group(1)})", frame.strip())


def hot_spots(raw: str, top: int = 12) -> tuple[int, list[HotSpot]]:
    """(samples, the `top` functions by self share) from py-spy's raw output."""
    own: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_function(f) for f in stack.split(";") if f.strip()]
        if not frames:
            continue
        total += n
        own[frames[-1]] += n
        for f in set(frames):
            anywhere[f] += n
    if total == 0:
        return 0, []
    return total, [HotSpot(f, n / total, anywhere[f] / total) for f, n in own.most_common(top)]

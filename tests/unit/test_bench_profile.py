"""lb.bench.profile: py-spy raw stacks → hot spots (pure)."""

from __future__ import annotations

import pytest

from lb.bench.profile import HotSpot, hot_spots

RAW = """\
main (run.py:10);loop (d.py:5);send (s.py:21) 6
main (run.py:10);loop (d.py:5);send (s.py:20) 2
main (run.py:10);loop (d.py:7);limit (f.py:38) 2
garbage line
"""


def test_self_and_total_shares_merge_lines_of_one_function() -> None:
    total, spots = hot_spots(RAW)
    assert total == 10
    assert spots[0] == HotSpot("send (s.py)", 0.8, 0.8)
    assert spots[1] == HotSpot("limit (f.py)", 0.2, 0.2)


@pytest.mark.parametrize("raw", ["", "no count here\n", " 5\n"])
def test_nothing_usable_gives_no_spots(raw: str) -> None:
    assert hot_spots(raw) == (0, [])


def test_recursion_counts_once_in_total() -> None:
    total, spots = hot_spots("f (a.py:1);f (a.py:2);g (b.py:3) 4\n")
    assert total == 4
    by_name = {s.function: s for s in spots}
    assert by_name["g (b.py)"].total_share == 1.0
    assert "f (a.py)" not in by_name  # never a leaf

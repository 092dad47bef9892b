"""lb.datapath.queuestats.parse: the kernel's nfnetlink_queue lines (pure)."""

from __future__ import annotations

from lb.datapath.queuestats import QueueStats, parse

# seq_show()'s format: "%5u %6u %5u %1u %5u %5u %5u %8u %2d"
TEXT = (" 4711 123456    12 2  4096    30     5    99871  1\n"
        "    7   4242     0 2 65535     1     0       10  1\n")


def test_one_queue_by_number() -> None:
    stats = parse(TEXT, 4711)
    assert stats == QueueStats(waiting=12, dropped_full=30, dropped_undelivered=5)
    assert stats.dropped == 35


def test_all_queues_summed_and_a_missing_queue_is_zero() -> None:
    assert parse(TEXT) == QueueStats(12, 31, 5)
    assert parse(TEXT, 1) == QueueStats(0, 0, 0)
    assert parse("") == QueueStats(0, 0, 0)


def test_lines_of_another_shape_are_skipped() -> None:
    assert parse("garbage\n 4711 1 2\n" + TEXT, 4711) == QueueStats(12, 30, 5)

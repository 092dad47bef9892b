"""Bounded polling: the one way tests wait for something to become true."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 5.0,
    interval: float = 0.02,
    what: str | None = None,
) -> T:
    """Call `predicate` until it returns something truthy and return that; raise TimeoutError
    after `timeout` seconds. Exceptions from the predicate count as "not yet" (a server that is
    not listening refuses connections) and the last one is chained to the TimeoutError."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - "not yet", kept for the final message
            last_error = exc
        if time.monotonic() >= deadline:
            label = what or getattr(predicate, "__name__", "condition")
            raise TimeoutError(f"{label} not true after {timeout:.1f}s") from last_error
        time.sleep(interval)

"""Shared fixtures of the BPF_PROG_RUN tests: the lab namespace and one loaded program per module."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # fixtures.py and lab.py sit next to the tests

TEST_TUNABLES = dict(max_flows=4096, max_services=64, max_reals=64, max_tx_ports=64)


@pytest.fixture(scope="module")
def lab() -> Iterator[object]:
    from lab import lab as make_lab

    with make_lab() as names:
        yield names


@pytest.fixture(scope="module")
def datapath(lab: object) -> Iterator[object]:
    """The program, loaded inside the lab namespace, maps not pinned."""
    from lb.datapath.loader import Tunables, load

    loaded = load(Tunables(**TEST_TUNABLES), pin=False)
    try:
        yield loaded
    finally:
        loaded.close()

"""Fixtures wrapping lb.datapath.testbed for end-to-end tests (root, network namespaces).

    def test_something(testbed):
        topo = testbed("two_arm", reals=3)          # torn down after the test, whatever happens
        topo.start_http_servers()
        ...

    def test_other(two_arm_topo): ...               # ready-made: two-arm, reals r1..r3
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pyroute2 import netns

from lb.daemon.instance import stale_dirs
from lb.datapath.testbed import Topology, cleanup_stale, one_arm, two_arm

BUILDERS: dict[str, Callable[..., Topology]] = {"two_arm": two_arm, "one_arm": one_arm}


@pytest.fixture(scope="session", autouse=True)
def _clear_stale_namespaces() -> Iterator[None]:
    """Remove namespaces that crashed runs left (only lbx- ones whose creator is dead) and, after the
    session, the run directories and pins of daemons whose namespaces the tests have removed."""
    if os.geteuid() == 0:
        cleanup_stale()
    yield
    if os.geteuid() == 0:
        for root in (Path("/run/lbxdp"), Path("/sys/fs/bpf/lbxdp")):
            for stale in stale_dirs(root):
                shutil.rmtree(stale, ignore_errors=True)


@pytest.fixture
def testbed() -> Iterator[Callable[..., Topology]]:
    """A factory: testbed(kind, **options) builds a topology; all are torn down after the test
    and the test fails if any namespace of theirs survived."""
    built: list[Topology] = []

    def make(kind: str = "two_arm", **options: Any) -> Topology:
        topo = BUILDERS[kind](**options)
        built.append(topo)
        return topo

    try:
        yield make
    finally:
        problems = [p for topo in reversed(built) for p in topo.teardown()]
        left = [n for n in netns.listnetns() if any(n.startswith(t.prefix) for t in built)]
        assert not left, f"namespaces survived teardown: {left} ({problems})"


@pytest.fixture
def two_arm_topo(testbed: Callable[..., Topology]) -> Topology:
    return testbed("two_arm", reals=3)


@pytest.fixture
def one_arm_topo(testbed: Callable[..., Topology]) -> Topology:
    return testbed("one_arm", reals=3)


# A test module that builds one topology for all its tests defines a module-scoped `lab` fixture
# yielding (topology, Lbxdp); these give its tests the two halves.


@pytest.fixture
def topo(lab: tuple[Topology, Any]) -> Topology:
    return lab[0]


@pytest.fixture
def lbxdp(lab: tuple[Topology, Any]) -> Iterator[Any]:
    yield lab[1]
    print(lab[1].log_tail(60))  # shown only when the test failed

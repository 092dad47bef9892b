"""Test split (pyroute2's habit): tests/unit needs nothing; tests/bpf and tests/e2e need root."""

import os

import pytest


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (BPF, namespaces, iptables)")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


# A 2-core VM shared by namespaces, compilers and traffic: per-example time limits only make
# property tests flaky here, so none are set; the example counts stay as each test states them.
from hypothesis import settings  # noqa: E402

settings.register_profile("lbxdp", deadline=None)
settings.load_profile("lbxdp")

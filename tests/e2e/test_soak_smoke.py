"""`make soak`'s harness, run for half a minute of load: it builds its testbed, drives the real lbxdp,
makes at least one config edit, health flap and SIGKILL + re-attach, samples, writes its files,
judges, and leaves nothing behind. The 10-minute run is `make soak` itself (not part of make test).
"""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

import pytest
from pyroute2 import netns

from lb.datapath.testbed.naming import PREFIX_ROOT
from lb.soak.run import main

pytestmark = [pytest.mark.root, pytest.mark.e2e, pytest.mark.slow]


def test_a_short_soak_runs_every_action_and_judges(tmp_path: Path) -> None:
    mine = f"{PREFIX_ROOT}{os.getpid()}-"  # the soak's testbed is named after this process
    before = {n for n in netns.listnetns() if n.startswith(mine)}
    started = time.monotonic()
    code = main(["--minutes", "0.5", "--warmup", "5", "--out", str(tmp_path)])
    took = time.monotonic() - started
    print(f"soak smoke run: {took:.0f} s, exit {code}")
    left = {n for n in netns.listnetns() if n.startswith(mine)} - before
    assert not left, f"the soak left namespaces behind: {left}"

    summary = json.loads((tmp_path / "summary.json").read_text())
    verdicts = {v["name"]: v for v in summary["verdicts"]}
    for name, v in verdicts.items():
        assert v["ok"], (name, v["detail"], summary["maps"])
    assert {"flows", "reverse", "services", "reals"} <= {m["name"] for m in summary["maps"]}
    assert code == 0

    done = summary["events"]
    assert done["kill"][0] >= 1 and done["flap"][0] >= 1 and done["edit"][0] >= 1, done
    assert summary["kill_crossers"][0] > 0
    with open(tmp_path / "samples.csv") as handle:
        samples = list(csv.DictReader(handle))
    assert {"idle_start", "idle_end", "load"} <= {s["phase"] for s in samples}
    # The sampler saw two daemons: the one it started and the one after the SIGKILL.
    assert len({s["pid"] for s in samples if s["pid"]}) >= 2
    with open(tmp_path / "connections.csv") as handle:
        assert sum(1 for row in csv.DictReader(handle) if row["outcome"] == "ok") > 100

"""`lbxdp experiment throughput --quick` end to end: the live experiment runs as a user would run
it (the installed CLI, root), writes its CSVs, figures and summary, and its numbers are sane."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.root, pytest.mark.e2e]

LBXDP = str(Path(sys.executable).parent / "lbxdp")
BUDGET_S = 180  # --quick takes 35-60 s here; the bound is for a loaded machine, not a target


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_throughput_quick_writes_sane_numbers_and_leaves_nothing(tmp_path: Path) -> None:
    proc = subprocess.Popen([LBXDP, "experiment", "throughput", "--quick", "--no-progress", "--out", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _out, err = proc.communicate(timeout=BUDGET_S)
    except subprocess.TimeoutExpired:
        proc.terminate()  # the experiment's finally blocks tear the namespaces down
        proc.communicate(timeout=60)
        pytest.fail(f"throughput --quick took longer than {BUDGET_S} s")
    assert proc.returncode == 0, err
    assert "Traceback" not in err

    for name in ("throughput_flows.csv", "throughput_table.csv", "throughput_first_packet.csv", "summary.md"):
        assert (tmp_path / name).stat().st_size > 0, name
    for name in ("throughput.png", "throughput_table.png"):
        data = (tmp_path / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 10_000, name

    flows = _rows(tmp_path / "throughput_flows.csv")
    assert len(flows) >= 3
    for row in flows:
        assert int(row["flows"]) <= int(row["max_flows"])
        assert float(row["forwarded_pps"]) > 0 and float(row["offered_pps"]) > 0
        assert float(row["hit_rate"]) == 1.0, row  # every flow fits: no packet may miss
        assert int(row["other"]) == 0, row
        assert int(row["arrived"]) <= int(row["sent"])  # counted at the reals, once each

    table = _rows(tmp_path / "throughput_table.csv")
    over = [r for r in table if int(r["flows"]) > int(r["max_flows"])]
    assert over, "the quick plan must offer more flows than one table holds"
    for row in over:
        ideal = int(row["max_flows"]) / int(row["flows"])
        assert 0.5 * ideal < float(row["hit_rate"]) <= ideal + 0.01, row  # the LRU keeps at most what fits
        assert int(row["misses"]) > 0 and float(row["forwarded_pps"]) > 0

    (first,) = _rows(tmp_path / "throughput_first_packet.csv")
    assert float(first["new_flows_per_s"]) > 0
    assert 0 < int(first["scheduled"]) <= int(first["flow_limit"]) < int(first["max_flows"])
    assert int(first["answered"]) <= int(first["scheduled"])
    assert int(first["refused_table_full"]) > 0  # offered past the limit: the daemon refuses, not evicts

    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert f"lbx-{proc.pid}-" not in left
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    assert "xdp" not in links

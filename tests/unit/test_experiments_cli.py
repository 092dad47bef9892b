"""`lbxdp experiment`: list, the throughput hook, one-line errors, and --quick runs writing outputs."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from lb.experiments.cli import main


def test_list_shows_every_experiment(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("balance", "disruption", "affinity", "throughput"):
        assert f"\n{name} " in out


def test_throughput_without_root_refuses_in_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)  # the check must fire before anything is built
    assert main(["throughput", "--out", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "needs root" in captured.err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["balance", "--scheduler", "nosuch"], 1, "unknown scheduler 'nosuch'"),
        (["balance", "--scheduler", "missing/file.py:X"], 1, "no such file missing/file.py"),
        (["affinity", "--only"], 1, "no schedulers to run"),
        (["balance", "--seed", "x"], 2, "seed 'x' is not an integer"),
        (["nosuch"], 2, "invalid choice: 'nosuch'"),
    ],
)
def test_user_errors_are_one_line(argv: list[str], code: int, message: str, capsys, tmp_path: Path) -> None:
    assert main([*argv, "--out", str(tmp_path), "--no-progress"]) == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_balance_quick_writes_csv_png_and_summary(tmp_path: Path) -> None:
    assert main(["balance", "--quick", "--out", str(tmp_path), "--no-progress"]) == 0
    rows = _rows(tmp_path / "balance_summary.csv")
    assert {r["scheduler"] for r in rows} >= {"rr", "wrr", "lc", "wlc", "sed", "nq", "sh", "dh", "mh"}
    assert {r["config"] for r in rows} == {"equal", "weighted"}
    for name in ("balance_summary.png", "balance_equal_timeseries.png", "balance_weighted_timeseries.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(_rows(tmp_path / "balance_timeseries.csv")) > 100
    assert "| equal | rr |" in (tmp_path / "summary.md").read_text()


def test_disruption_quick_writes_csv_png_and_summary(tmp_path: Path) -> None:
    assert main(["disruption", "--quick", "--out", str(tmp_path), "--no-progress", "--seed", "3"]) == 0
    rows = _rows(tmp_path / "disruption_flows.csv")
    mh = {r["change"]: float(r["moved_fraction"]) for r in rows if r["scheduler"] == "mh"}
    assert 0.0 < mh["remove 1"] < 0.1  # 20 reals in --quick
    assert len(_rows(tmp_path / "maglev_table.csv")) > 0
    for name in ("disruption.png", "maglev_table.png"):
        assert (tmp_path / name).stat().st_size > 1000
    assert "Figure 12" in (tmp_path / "summary.md").read_text()

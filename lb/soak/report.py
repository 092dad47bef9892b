"""The soak run's summary as rich tables, and its records as CSV/JSON rows. Pure: a Summary in,
renderables and rows out; run.py prints and writes them."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from rich.console import Group
from rich.table import Table

from lb.soak.verdict import ConnRecord, Sample, Summary, within


def render(summary: Summary) -> Group:
    return Group(_load_table(summary), _resources_table(summary), _verdict_table(summary))


def _load_table(s: Summary) -> Table:
    t = Table(title=f"Soak: {s.load_s / 60:.1f} min of load — connections and requests per service")
    for col in ("service", "done", "ok", "answered by", "not ok"):
        t.add_column(col, justify="right" if col in ("done", "ok") else "left")
    for svc in s.services:
        t.add_row(svc.label, str(svc.total), str(svc.ok),
                  " ".join(f"{r}:{n}" for r, n in svc.by_real.items()) or "-",
                  ", ".join(f"{k} {n}" for k, n in svc.outcomes.items()) or "0")
    t.add_row("resets on stayed reals", "", str(sum(s.resets_stayed.values())),
              " ".join(f"{r}:{n}" for r, n in s.resets_stayed.items()),
              f"{s.unattributed_resets} resets before any real answered")
    survived, broke = s.kill_crossers
    t.add_row("across a SIGKILL", "", str(survived), "", f"{broke} broke")
    return t


def _resources_table(s: Summary) -> Table:
    edits, flaps, kills = (s.events.get(k, (0, 0)) for k in ("edit", "flap", "kill"))
    t = Table(title=f"Idle start vs idle end (SIGKILLs {kills[0]}, health flaps {flaps[0]}, "
                    f"config edits {edits[0]}; failed {kills[1] + flaps[1] + edits[1]})")
    for col in ("what", "start", "end", "change", "within 10 %"):
        t.add_column(col, justify="left" if col == "what" else "right")
    t.add_row("daemon RSS kB, idle start → idle end", _n(s.rss.start), _n(s.rss.end), s.rss.change,
              "(across restarts)")
    for pid, first, last, peak in s.daemons:
        change = "n/a" if not first or last is None else f"{100 * (last - first) / first:+.1f} %"
        t.add_row(f"  daemon pid {pid} (max {_n(peak)})", _n(first), _n(last), change,
                  _mark(within(first, last)))
    for m in s.maps:
        name = f"map {m.name}" + (" (per-CPU array: fixed)" if m.fixed else "")
        t.add_row(name, _n(m.start), _n(m.end), m.change, _mark(m.ok))
    return t


def _verdict_table(s: Summary) -> Table:
    t = Table(title="Verdicts: " + ("[green]all hold[/]" if s.ok else "[red]FAILED[/]"))
    t.add_column("")
    t.add_column("verdict")
    t.add_column("detail")
    for v in s.verdicts:
        t.add_row(_mark(v.ok), v.name, v.detail)
    return t


def _mark(ok: bool) -> str:
    return "[green]yes[/]" if ok else "[red]NO[/]"


def _n(value: int | None) -> str:
    return "n/a" if value is None else str(value)


def sample_rows(samples: Iterable[Sample]) -> list[dict[str, Any]]:
    """One flat row per sample (map counts as `map:<name>` columns), for CSV."""
    rows = []
    for s in samples:
        row = {k: v for k, v in dataclasses.asdict(s).items() if k not in ("maps", "fixed_maps")}
        row.update({f"map:{name}": n for name, n in sorted(s.maps.items())})
        rows.append(row)
    return rows


def conn_rows(records: Iterable[ConnRecord]) -> list[dict[str, Any]]:
    return [dataclasses.asdict(r) for r in records]


def summary_json(summary: Summary) -> dict[str, Any]:
    data = dataclasses.asdict(summary)
    data["ok"] = summary.ok
    return data

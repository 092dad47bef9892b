"""Tables replay and verify print, rendered to text by rich (pure: no I/O but the string)."""

from __future__ import annotations

import io
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from lb.replay.filereport import FileReport


def _text(table: Table) -> str:
    console = Console(width=120, record=True, file=io.StringIO(), color_system=None)  # recorded, not shown
    console.print(table)
    return console.export_text().rstrip("\n")


def corpus_table(reports: Sequence[FileReport], engine: str) -> str:
    """Per capture: packets, passed, dropped, rewritten, not run, violations."""
    table = Table(title=f"robustness contract ({engine})")
    for name in ("capture", "packets", "passed", "dropped", "rewritten", "not run", "violations"):
        table.add_column(name, justify="left" if name == "capture" else "right")
    totals = [0] * 6
    for r in reports:
        if r.skipped:
            table.add_row(r.name, "-", "-", "-", "-", "-", f"skipped: {r.skipped}")
            continue
        row = [r.packets, r.passed, r.dropped, r.rewritten, r.not_run, len(r.violations)]
        totals = [a + b for a, b in zip(totals, row)]
        table.add_row(r.name, *map(str, row))
    table.add_row("total", *map(str, totals), end_section=True)
    return _text(table)


def rows_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    table = Table(title=title)
    for i, name in enumerate(columns):
        table.add_column(name, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*map(str, row))
    return _text(table)

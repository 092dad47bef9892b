"""No module in lb/ is over 400 lines (issue 20): a module that grows past it mixes jobs, and is split
by job (STYLE.md: small modules with one public idea each)."""

from __future__ import annotations

from pathlib import Path

import lb

LIMIT = 400
ROOT = Path(lb.__file__).parent


def test_no_module_in_lb_is_over_400_lines() -> None:
    sizes = {path.relative_to(ROOT.parent): len(path.read_text().splitlines()) for path in ROOT.rglob("*.py")}
    assert len(sizes) > 50, f"found only {len(sizes)} modules under {ROOT}: the walk is looking in the wrong place"
    over = {str(path): lines for path, lines in sorted(sizes.items()) if lines > LIMIT}
    assert not over, f"modules over {LIMIT} lines (split them by job): {over}"

"""What the robustness contract found in one capture (lb.replay.corpus fills it, lb.replay.render
prints it): a value of its own so that the table renderer need not import the corpus runner."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FileReport:
    """Counts of one capture's packets by outcome, the contract's violations, or why it was skipped."""

    name: str
    packets: int = 0
    passed: int = 0
    dropped: int = 0
    rewritten: int = 0
    not_run: int = 0  # frames shorter than Ethernet: the kernel refuses to run XDP on them
    violations: list[str] = field(default_factory=list)
    skipped: str | None = None

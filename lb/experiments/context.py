"""What every experiment run shares: options, the output directory, scheduler loading, a progress bar.

Schedulers come from lb.sched exactly as the daemon gets them (`get_scheduler`, plugin specs via
`load_plugin`), plus the two baselines of `baselines`. A `SchedulerRef` is a factory, because each
simulation wants a fresh instance (rr's cursor, wrr's walk and mh's table are per instance).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path

from lb.model import ConfigError, RealKey
from lb.sched.base import Destination, Scheduler

REAL_BASE = int(IPv4Address("10.2.0.0"))
REAL_PORT = 80


class ExperimentError(Exception):
    """A run cannot go ahead (bad scheduler, missing datapath); the message is one line for the user."""


@dataclass(frozen=True)
class SchedulerRef:
    """A scheduler by the label the figures use, and how to make a fresh instance of it."""

    label: str
    spec: str
    factory: Callable[[], Scheduler] = field(compare=False, repr=False)

    def make(self) -> Scheduler:
        return self.factory()


def resolve_scheduler(spec: str) -> SchedulerRef:
    """`spec` is a built-in name, a baseline (rendezvous, modulo) or a plugin `module:Class` / `file.py:Class`."""
    from lb import sched
    from lb.experiments.baselines import BASELINES

    if spec in BASELINES:
        cls = BASELINES[spec]
        return SchedulerRef(spec, spec, cls)
    try:
        if ":" in spec:
            cls = sched.load_plugin(spec)
            name = cls.name
            sched.get_scheduler(name)  # fail now, with the registry's message, if it cannot be built
            return SchedulerRef(name, spec, lambda: sched.get_scheduler(name))
        sched.get_scheduler(spec)
    except ConfigError as exc:
        hint = f"; experiment baselines: {', '.join(BASELINES)}" if ":" not in spec else ""
        raise ExperimentError(f"{exc}{hint}") from None
    return SchedulerRef(spec, spec, lambda: sched.get_scheduler(spec))


def resolve_all(defaults: Sequence[str], extra: Sequence[str], only: bool) -> list[SchedulerRef]:
    """The experiment's default set plus `extra` (plugins), or just `extra` when `only`."""
    specs = list(extra) if only else [*defaults, *extra]
    if not specs:
        raise ExperimentError("no schedulers to run (--only needs at least one --scheduler)")
    refs: list[SchedulerRef] = []
    for spec in specs:
        ref = resolve_scheduler(spec)
        if all(ref.label != seen.label for seen in refs):
            refs.append(ref)
    return refs


def make_reals(weights: Sequence[int], first: int = 0) -> list[Destination]:
    """Destinations 10.2.0.(first+1)… with the given weights, in the order they are added."""
    return [
        Destination(RealKey(IPv4Address(REAL_BASE + 1 + first + i), REAL_PORT), weight=w)
        for i, w in enumerate(weights)
    ]


@dataclass
class RunContext:
    """Options of one `lbxdp experiment NAME` run."""

    out: Path
    seed: int = 1
    quick: bool = False
    schedulers: tuple[str, ...] = ()
    only: bool = False
    show_progress: bool = True
    written: list[Path] = field(default_factory=list)

    def path(self, name: str) -> Path:
        self.out.mkdir(parents=True, exist_ok=True)
        return self.out / name

    def write_csv(self, name: str, header: Sequence[str], rows: Iterable[Sequence[object]]) -> Path:
        path = self.path(name)
        with path.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows(_fmt(row) for row in rows)
        self.written.append(path)
        return path

    def write_text(self, name: str, text: str) -> Path:
        path = self.path(name)
        path.write_text(text)
        self.written.append(path)
        return path

    def add_written(self, path: Path) -> Path:
        self.written.append(path)
        return path

    @contextmanager
    def progress(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        """A rich progress bar on stderr; yields `advance(n)`."""
        if not self.show_progress:
            yield lambda n: None
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=False,
        ) as bar:
            task = bar.add_task(description, total=total)
            yield lambda n: bar.advance(task, n)


def _fmt(row: Sequence[object]) -> list[object]:
    return [f"{value:.6g}" if isinstance(value, float) else value for value in row]

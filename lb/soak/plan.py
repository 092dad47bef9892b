"""What a soak run sets up and when it disturbs it: services, reals, and the timetable of config edits,
health flaps and daemon SIGKILLs. Pure: no sockets, no processes, so the schedule is tested alone.

Five reals: r1–r3 serve every service and are never stopped or removed (the reals that "stayed":
any reset on them is a bug); r4 is in both TCP services and its server is stopped and started again
(the health flap); r5 is added to the rr service and deleted again by the config edits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

Proto = Literal["tcp", "udp"]

TCP_REAL_PORT = 9000  # lb.realserver tcp: a line echo prefixed by the real's name
UDP_REAL_PORT = 5353  # lb.realserver udp: a datagram echo prefixed by the real's name
FLAPPER = "r4"
EXTRA = "r5"
REALS = ("r1", "r2", "r3", "r4", "r5")
TIMEOUTS = ("30", "10", "10")  # `lbxdp --set TCP TCPFIN UDP`: flows expire within the run
HEALTH = ("--check", "tcp", "--interval", "1", "--timeout", "0.5", "--rise", "2", "--fall", "2")


@dataclass(frozen=True)
class ServiceSpec:
    label: str  # how the summary names it
    proto: Proto
    port: int  # on the VIP
    scheduler: str
    reals: tuple[str, ...]
    real_port: int
    health: bool  # a TCP connect check (`lbxdp health … --check tcp`)

    def vip_port(self, vip: str) -> str:
        return f"{vip}:{self.port}"

    @property
    def flag(self) -> str:
        return "-t" if self.proto == "tcp" else "-u"


SERVICES = (
    ServiceSpec("tcp rr", "tcp", 9000, "rr", ("r1", "r2", "r3", FLAPPER), TCP_REAL_PORT, True),
    ServiceSpec("tcp wlc", "tcp", 9100, "wlc", ("r1", "r2", "r3", FLAPPER), TCP_REAL_PORT, True),
    ServiceSpec("udp rr", "udp", 5353, "rr", ("r1", "r2", "r3"), UDP_REAL_PORT, False),
)


def stayed_reals(services: Sequence[ServiceSpec] = SERVICES) -> tuple[str, ...]:
    """Reals configured from the start that no action stops or removes."""
    configured = {r for s in services for r in s.reals}
    return tuple(sorted(configured - {FLAPPER, EXTRA}))


def setup_commands(vip: str, ips: Mapping[str, str]) -> list[list[str]]:
    """The `lbxdp` argument lists that configure the soak's table, in order."""
    commands: list[list[str]] = [["--set", *TIMEOUTS]]
    for spec in SERVICES:
        commands.append(["-A", spec.flag, spec.vip_port(vip), "-s", spec.scheduler])
        for real in spec.reals:
            commands.append(["-a", spec.flag, spec.vip_port(vip), "-r", f"{ips[real]}:{spec.real_port}",
                             "-m", "-w", "1"])
        if spec.health:
            commands.append(["health", spec.flag, spec.vip_port(vip), *HEALTH])
    return commands


# The config edits, in the order they are made, over and over. The second half undoes the first, so
# after a whole number of cycles the table is the one the run started with (restore_edits() finishes
# a cycle cut short; edit i + 4 undoes edit i), and idle-to-idle comparisons of the maps compare like with like.
EDIT_CYCLE: tuple[tuple[str, ...], ...] = (
    ("-e", "-t", "{vip}:9000", "-r", "{r1}:9000", "-w", "3"),
    ("-a", "-t", "{vip}:9000", "-r", "{r5}:9000", "-m", "-w", "1"),
    ("-E", "-t", "{vip}:9100", "-s", "mh"),
    ("-e", "-u", "{vip}:5353", "-r", "{r2}:5353", "-w", "2"),
    ("-e", "-t", "{vip}:9000", "-r", "{r1}:9000", "-w", "1"),
    ("-d", "-t", "{vip}:9000", "-r", "{r5}:9000"),
    ("-E", "-t", "{vip}:9100", "-s", "wlc"),
    ("-e", "-u", "{vip}:5353", "-r", "{r2}:5353", "-w", "1"),
)
_HALF = len(EDIT_CYCLE) // 2


def edit_argv(index: int, vip: str, ips: Mapping[str, str]) -> list[str]:
    """The `lbxdp` arguments of the index-th edit of the run (the cycle repeats)."""
    return [word.format(vip=vip, **ips) for word in EDIT_CYCLE[index % len(EDIT_CYCLE)]]


def restore_edits(done: int) -> list[int]:
    """Indices (into EDIT_CYCLE) of the edits that undo what the last, unfinished cycle did, after
    `done` edits in all: edit i + half undoes edit i."""
    position = done % len(EDIT_CYCLE)
    return [i for i in range(max(position, _HALF), len(EDIT_CYCLE)) if i - _HALF < position]


ActionKind = Literal["edit", "flap", "kill"]


@dataclass(frozen=True)
class Action:
    at: float  # seconds after the load started
    kind: ActionKind
    index: int = 0  # edit: which edit of the run; flap and kill: which one


@dataclass(frozen=True)
class Timings:
    """The rhythm of a run. Defaults are for runs of 3 minutes and more; `for_load` shrinks them
    for short runs so that even a 30-second smoke run flaps, kills and edits at least once."""

    edit_every: float = 20.0
    flap_first: float = 45.0
    flap_every: float = 90.0
    flap_down: float = 10.0
    kill_first: float = 100.0
    kill_every: float = 180.0
    sample_every: float = 5.0

    @classmethod
    def for_load(cls, load_s: float) -> Timings:
        if load_s <= 0:
            raise ValueError(f"the load must last more than 0 s, not {load_s:g}")
        return cls(
            edit_every=min(20.0, max(4.0, load_s / 8)),
            flap_first=min(45.0, 0.15 * load_s),
            flap_down=min(10.0, max(3.0, load_s / 10)),
            kill_first=min(100.0, 0.45 * load_s),
            sample_every=min(5.0, max(2.0, load_s / 10)),
        )


def schedule(load_s: float, timings: Timings) -> list[Action]:
    """Every action of a run of `load_s` seconds of load, in the order the conductor makes them.

    The conductor makes one action at a time (a flap lasts flap_down seconds, a kill lasts until the
    new daemon answers), so actions never overlap: one due while another runs is made late, and
    an edit is never sent while no daemon runs. At the same instant kills and flaps go first.
    """
    actions: list[Action] = []
    t, i = timings.kill_first, 0
    while t <= max(timings.kill_first, load_s - 5):
        actions.append(Action(t, "kill", i))
        t, i = t + timings.kill_every, i + 1
    t, i = timings.flap_first, 0
    while t + timings.flap_down + 10 <= load_s or i == 0:  # back UP while the load runs
        actions.append(Action(t, "flap", i))
        t, i = t + timings.flap_every, i + 1
    t, i = timings.edit_every, 0
    while t <= load_s - 1:
        actions.append(Action(t, "edit", i))
        t, i = t + timings.edit_every, i + 1
    order = {"kill": 0, "flap": 1, "edit": 2}
    return sorted(actions, key=lambda a: (a.at, order[a.kind], a.index))

"""lb.soak.plan: the timetable of a soak run and the config edits that undo themselves."""

from __future__ import annotations

import pytest

from lb.soak import plan as P

IPS = {f"r{i}": f"10.9.2.1{i}" for i in range(1, 6)}


@pytest.mark.parametrize("load_s", [20.0, 30.0, 45.0, 120.0, 180.0, 600.0, 3600.0])
def test_every_run_kills_flaps_and_edits_at_least_once_within_the_load(load_s: float) -> None:
    actions = P.schedule(load_s, P.Timings.for_load(load_s))
    kinds = {a.kind for a in actions}
    assert kinds == {"kill", "flap", "edit"}, actions
    assert all(0 < a.at < load_s for a in actions), actions
    assert [a.at for a in actions] == sorted(a.at for a in actions)


def test_ten_minutes_has_the_rhythm_of_the_brief() -> None:
    actions = P.schedule(600.0, P.Timings.for_load(600.0))
    kills = [a.at for a in actions if a.kind == "kill"]
    flaps = [a.at for a in actions if a.kind == "flap"]
    edits = [a.at for a in actions if a.kind == "edit"]
    assert kills == [100.0, 280.0, 460.0]  # one SIGKILL every 3 minutes
    assert flaps == [45.0, 135.0, 225.0, 315.0, 405.0, 495.0]  # every 90 s, each 10 s down, all inside
    assert len(edits) == 29 and edits[0] == 20.0 and edits[1] - edits[0] == 20.0
    assert P.Timings.for_load(600.0).flap_down == 10.0


def test_two_minutes_kills_once() -> None:
    kills = [a for a in P.schedule(120.0, P.Timings.for_load(120.0)) if a.kind == "kill"]
    assert len(kills) == 1


def test_at_one_instant_kills_go_before_flaps_and_edits() -> None:
    timings = P.Timings(edit_every=10.0, flap_first=10.0, flap_every=1000.0, flap_down=1.0,
                        kill_first=10.0, kill_every=1000.0)
    actions = P.schedule(15.0, timings)
    assert [a.kind for a in actions] == ["kill", "flap", "edit"]


def test_a_load_of_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="more than 0 s"):
        P.Timings.for_load(0)


def _table_after(edits: list[int]) -> dict[str, str]:
    """The part of the table the edit cycle touches, after the given edits (a tiny model)."""
    state = {"r1 weight": "1", "r5": "absent", "9100 sched": "wlc", "udp r2 weight": "1"}
    for index in edits:
        words = P.edit_argv(index, "10.9.0.100", IPS)
        if words[0] == "-a":
            state["r5"] = "present"
        elif words[0] == "-d":
            state["r5"] = "absent"
        elif words[0] == "-E":
            state["9100 sched"] = words[-1]
        elif words[1] == "-u":
            state["udp r2 weight"] = words[-1]
        else:
            state["r1 weight"] = words[-1]
    return state


@pytest.mark.parametrize("done", range(20))
def test_restore_brings_back_the_starting_table_after_any_number_of_edits(done: int) -> None:
    start = _table_after([])
    made = list(range(done)) + P.restore_edits(done)
    assert _table_after(made) == start, (done, P.restore_edits(done))


def test_edits_are_lbxdp_command_lines_with_the_addresses_filled_in() -> None:
    assert P.edit_argv(1, "10.9.0.100", IPS) == ["-a", "-t", "10.9.0.100:9000", "-r", "10.9.2.15:9000",
                                                 "-m", "-w", "1"]
    assert P.edit_argv(9, "10.9.0.100", IPS) == P.edit_argv(1, "10.9.0.100", IPS)  # the cycle repeats


def test_setup_configures_timeouts_services_reals_and_health_checks() -> None:
    commands = P.setup_commands("10.9.0.100", IPS)
    assert commands[0] == ["--set", "30", "10", "10"]
    assert sum(c[0] == "-A" for c in commands) == 3
    assert sum(c[0] == "-a" for c in commands) == 4 + 4 + 3
    assert all("-m" in c for c in commands if c[0] == "-a")
    assert [c[2] for c in commands if c[0] == "health"] == ["10.9.0.100:9000", "10.9.0.100:9100"]
    assert not any(P.EXTRA in " ".join(c) or IPS[P.EXTRA] in " ".join(c) for c in commands)


def test_the_reals_that_stay_are_neither_the_flapper_nor_the_extra() -> None:
    assert P.stayed_reals() == ("r1", "r2", "r3")

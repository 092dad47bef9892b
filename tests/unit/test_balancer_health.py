import pytest

from lb.balancer.health import CheckKind, DeadFlows, HealthCheck, HealthState

CHECK = HealthCheck(CheckKind.TCP, interval=1, timeout=0.5, rise=2, fall=3)


def test_fall_failures_take_a_real_down_and_rise_successes_bring_it_back():
    state = HealthState()
    changes = [state.record(ok, "", CHECK) for ok in [False, False, True, False, False, False]]
    assert changes == [False, False, False, False, False, True]
    assert not state.up
    changes = [state.record(ok, "", CHECK) for ok in [True, False, True, True]]
    assert changes == [False, False, False, True]
    assert state.up


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"interval": 0}, "interval and timeout must be positive"),
        ({"interval": 1, "timeout": 2}, "timeout must not exceed"),
        ({"rise": 0}, "rise and fall"),
        ({"path": "health"}, "path must start with /"),
    ],
)
def test_bad_checks_are_refused_with_a_reason(kwargs, message):
    with pytest.raises(ValueError, match=message):
        HealthCheck(CheckKind.HTTP, **kwargs)


def test_round_trips_through_dict():
    check = HealthCheck(CheckKind.HTTP, path="/healthz", expect=204, dead_flows=DeadFlows.KEEP)
    assert HealthCheck.from_dict(check.to_dict()) == check

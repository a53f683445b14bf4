"""Clock skew between the laptop's launched_at and this machine's clock: the launch is fixed at the first start."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from soong_daemon import skew
from soong_daemon.app import create_app
from tests.daemon.conftest import LAUNCH, QuietNotifier, RecordingTerminator, SettableSource

HOUR = 3600.0
T0 = LAUNCH.timestamp()


def test_a_launch_before_the_first_start_is_taken_as_it_is():
    launched, clock = skew.first_launch(T0, T0 + 120)
    assert launched == T0 and clock["status"] == skew.AGREED and clock["skew_seconds"] == -120


def test_a_launch_after_the_first_start_is_clamped_to_it():
    launched, clock = skew.first_launch(T0 + HOUR, T0)
    assert launched == T0 and clock["status"] == skew.PENDING and clock["skew_seconds"] == HOUR
    assert skew.first_launch(T0 + HOUR, T0, provider_check=False)[1]["status"] == skew.CLAMPED


def _state(config_launched: float, first_start: float, hard_limit_hours: float = 8, lease_hours: float = 4) -> dict:
    launched, clock = skew.first_launch(config_launched, first_start)
    return {"launched_at": launched, "lease_start": launched, "initial_lease_end": launched + lease_hours * HOUR,
            "lease_end": launched + lease_hours * HOUR, "hard_limit_at": launched + hard_limit_hours * HOUR,
            "clock": clock}


def test_the_providers_clock_moves_the_launch_back_when_this_clock_is_behind():
    # this machine is an hour behind: the daemon first starts at T0 - 1 h + 90 s on its own clock
    state = _state(T0, T0 - HOUR + 90)
    shift = skew.apply_provider_offset(state, HOUR, 8)
    assert shift == 90 and state["launched_at"] == T0 - HOUR  # launched_at, on this clock
    assert state["hard_limit_at"] == T0 - HOUR + 8 * HOUR and state["lease_end"] == T0 - HOUR + 4 * HOUR
    assert state["clock"]["status"] == skew.PROVIDER and state["clock"]["provider_offset_seconds"] == HOUR


def test_a_laptop_clock_ahead_keeps_the_first_start():
    state = _state(T0 + HOUR, T0)  # the provider agrees with this machine: the laptop was an hour ahead
    assert skew.apply_provider_offset(state, 0.4, 8) == 0
    assert state["launched_at"] == T0 and state["hard_limit_at"] == T0 + 8 * HOUR
    assert state["clock"]["status"] == skew.CLAMPED


@given(config_launched=st.floats(-30 * HOUR, 30 * HOUR), first_start=st.floats(-30 * HOUR, 30 * HOUR),
       offset=st.floats(-30 * HOUR, 30 * HOUR), extended=st.floats(0, 4))
def test_skew_never_moves_the_hard_limit_past_the_first_start_plus_the_limit(config_launched, first_start, offset,
                                                                           extended):
    state = _state(T0 + config_launched, T0 + first_start)
    state["lease_end"] += extended * HOUR  # an extension granted before the provider's clock was read
    before = dict(state)
    skew.apply_provider_offset(state, offset, 8)
    assert state["launched_at"] <= T0 + first_start
    assert state["hard_limit_at"] <= T0 + first_start + 8 * HOUR
    for key in ("launched_at", "hard_limit_at", "lease_end"):
        assert state[key] <= before[key]  # only ever earlier
    assert state["lease_end"] <= state["hard_limit_at"]


def test_a_future_launched_at_is_enforced_from_the_first_start(make_config, clock, emulator):
    """The laptop's clock 2 h ahead: before, the daemon refused to start ("launched_at is in the future")."""
    config = make_config(launched_at=(LAUNCH + timedelta(hours=2)).isoformat(), provider_api_url=emulator.url,
                         lease_hours=1, idle_timeout_minutes=600)
    clock.t = T0  # this machine's clock at the first start: 2 h before the config's launched_at
    app = create_app(config, clock=clock, terminator=RecordingTerminator(), activity_sources=[SettableSource()],
                     notifier=QuietNotifier(), gpu_probe=lambda: None)
    state = app.parts.store.read()
    assert state["launched_at"] == T0 and state["hard_limit_at"] == T0 + 8 * HOUR
    assert state["clock"]["status"] == skew.PENDING
    app.enforcer.tick()  # reads the provider's clock (the emulator's Date): it agrees with this machine
    state = app.parts.store.read()
    assert state["clock"]["status"] == skew.CLAMPED and abs(state["clock"]["provider_offset_seconds"]) < 5
    clock.t = T0 + HOUR - 1
    app.enforcer.tick()
    assert app.parts.terminator.calls == []
    clock.t = T0 + HOUR
    app.enforcer.tick()
    assert app.parts.store.read()["shutdown"]["reason"] == "lease_expired"
    assert app.parts.terminator.calls == [config.instance_id]

"""Terminating through the (emulated) Lambda API: verification, retries, backoff, the last resort."""

from __future__ import annotations

import threading

import pytest

from soong_daemon.api import ApiError, LambdaApi
from soong_daemon.terminator import Backoff, Terminator
from tests.daemon.conftest import API_KEY, instance_status, launch_instance, write_secret


def make_api(emulator, key=API_KEY, base=None):
    return LambdaApi(base or emulator.url, lambda: key, min_interval=0)


class Sleeps:
    """Records requested delays instead of sleeping; stops the terminator after ``limit`` of them."""

    def __init__(self, stop: threading.Event, limit: int = 1000) -> None:
        self.stop, self.limit, self.delays = stop, limit, []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        if len(self.delays) >= self.limit:
            self.stop.set()


def terminator(api, *, limit=1000, **kwargs):
    stop = threading.Event()
    sleeps = Sleeps(stop, limit)
    return Terminator(api, sleep=sleeps, stop=stop, backoff=Backoff(initial=2, maximum=60, jitter=0), **kwargs), sleeps


def test_terminates_and_verifies(emulator):
    instance_id = launch_instance(emulator)
    term, sleeps = terminator(make_api(emulator))
    seen = []
    result = term.terminate(lambda: instance_id, seen.append)
    assert result.outcome == "verified" and result.attempts == 1
    assert result.instance_status in {"terminating", "terminated"}
    assert instance_status(emulator, instance_id) in {"terminating", "terminated", "gone"}
    assert sleeps.delays == [] and seen[-1].outcome == "verified"
    posts = [e for e in emulator.requests() if e["path"] == "/instance-operations/terminate"]
    assert len(posts) == 1


def test_keeps_retrying_with_backoff_while_the_api_fails(emulator):
    instance_id = launch_instance(emulator)
    emulator.add_fault(method="POST", path="/instance-operations/terminate", action="error", status=500, times=3)
    term, sleeps = terminator(make_api(emulator))
    result = term.terminate(lambda: instance_id)
    assert result.outcome == "verified" and result.attempts == 4
    assert sleeps.delays == [2, 4, 8]


def test_retry_after_of_a_429_is_honoured(emulator):
    instance_id = launch_instance(emulator)
    emulator.add_fault(method="POST", path="/instance-operations/terminate", action="error", status=429,
                       retry_after=7, times=1)
    term, sleeps = terminator(make_api(emulator))
    assert term.terminate(lambda: instance_id).outcome == "verified"
    assert sleeps.delays == [7]


def test_a_404_alone_is_not_taken_for_a_termination(emulator):
    instance_id = launch_instance(emulator)
    emulator.add_fault(method="POST", path="/instance-operations/terminate", action="error", status=500, times=1)
    emulator.add_fault(method="GET", path=f"/instances/{instance_id}", action="error", status=404,
                       code="global/object-does-not-exist", times=1)
    term, _ = terminator(make_api(emulator))
    progress = []
    result = term.terminate(lambda: instance_id, progress.append)
    assert result.outcome == "verified" and result.attempts == 2
    assert instance_status(emulator, instance_id) != "active"


def test_a_wrong_api_url_never_counts_as_success_and_powers_off_once_as_last_resort(emulator, caplog):
    instance_id = launch_instance(emulator)
    clock = iter(float(t) for t in range(0, 100_000, 30))
    powered = []
    term, sleeps = terminator(make_api(emulator, base=emulator.base_url), limit=8,
                              power_off=lambda: powered.append(1) or True, poweroff_after=90,
                              monotonic=lambda: next(clock))
    result = term.terminate(lambda: instance_id)
    assert result.outcome == "interrupted" and result.attempts == 8
    assert powered == [1] and result.powered_off
    assert instance_status(emulator, instance_id) == "active"
    assert "POWERING OFF AS A LAST RESORT" in caplog.text and "BILLING MAY CONTINUE" in caplog.text
    assert caplog.text.count("terminate attempt") == 8


def test_a_rejected_key_keeps_it_retrying_loudly_without_leaking_the_key(emulator, caplog):
    instance_id = launch_instance(emulator)
    term, _ = terminator(make_api(emulator, key="secret_wrong-key-123"), limit=3)
    result = term.terminate(lambda: instance_id)
    assert result.outcome == "interrupted"
    assert "401" in result.last_error
    assert "secret_wrong-key-123" not in caplog.text and "secret_wrong-key-123" not in result.last_error


def test_unreadable_key_file_is_an_error_not_a_crash(emulator, tmp_path):
    from soong_daemon.secretfile import read_secret

    instance_id = launch_instance(emulator)
    key_file = tmp_path / "key"
    api = LambdaApi(emulator.url, lambda: read_secret(key_file, "api_key_file"), min_interval=0)
    term, _ = terminator(api, limit=2)
    assert term.terminate(lambda: instance_id).outcome == "interrupted"
    write_secret(key_file, API_KEY)
    term, _ = terminator(api, limit=2)
    assert term.terminate(lambda: instance_id).outcome == "verified"


def test_finding_the_instance_by_its_launch_name(emulator):
    api = make_api(emulator)
    assert api.find_instance_id("soong-unique") is None
    instance_id = launch_instance(emulator, "soong-unique")
    assert api.find_instance_id("soong-unique") == instance_id
    launch_instance(emulator, "soong-unique")
    with pytest.raises(ApiError, match="refusing to guess"):
        api.find_instance_id("soong-unique")


def test_a_sped_up_clock_never_powers_the_machine_off(make_config):
    from soong_daemon.components import make_api, make_terminator

    real = make_config(poweroff_command=["systemctl", "poweroff"])
    sandbox = make_config(poweroff_command=["systemctl", "poweroff"], time_scale=3600)
    assert make_terminator(real, make_api(real), threading.Event()).power_off.command == ("systemctl", "poweroff")
    assert make_terminator(sandbox, make_api(sandbox), threading.Event()).power_off is None

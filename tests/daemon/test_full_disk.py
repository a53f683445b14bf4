"""A state that cannot be written never switches enforcement off: the enforcer decides from memory.

The disk is a real one: a small tmpfs filled up to ENOSPC (root only; skipped otherwise).
"""

from __future__ import annotations

import logging

import pytest

from soong_daemon.app import create_app
from soong_daemon.components import build_components
from soong_daemon.enforcer import Enforcer
from soong_daemon.keeper import StateKeeper, merge
from tests.daemon.conftest import QuietNotifier, RecordingTerminator, SettableSource
from tests.daemon.disk import fill, small_tmpfs

ERROR = "CANNOT WRITE THE STATE"


class Monotonic:
    """A monotonic clock for the keeper's retry interval, moved by hand."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def errors(caplog) -> int:
    return sum(ERROR in r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)


def test_a_full_disk_still_ends_the_lease_and_saves_it_once_there_is_room(tmp_path, make_config, clock, caplog):
    caplog.set_level(logging.INFO)
    with small_tmpfs(tmp_path / "disk") as disk:
        config = make_config(state_dir=str(disk / "state"), idle_timeout_minutes=600)
        app = create_app(config, clock=clock, terminator=RecordingTerminator(), activity_sources=[SettableSource()],
                         notifier=QuietNotifier(), gpu_probe=lambda: None)
        monotonic = Monotonic()
        app.enforcer.keeper = StateKeeper(app.parts.store, monotonic=monotonic)
        app.enforcer.tick()
        lease_end = app.parts.store.read()["lease_end"]
        filler = fill(disk)

        clock.t = lease_end - 600
        app.enforcer.tick()  # the write fails: the observation stays in memory, one error is logged
        assert app.enforcer.keeper.unsaved and errors(caplog) == 1
        clock.t = lease_end
        app.enforcer.tick()  # decided from memory, and carried out
        assert app.parts.terminator.calls == [config.instance_id]
        assert app.enforcer.keeper.read()["shutdown"]["reason"] == "lease_expired"
        assert app.enforcer.keeper.read()["termination"]["outcome"] == "verified"
        assert app.parts.store.peek()["shutdown"] is None  # the disk never saw it
        for _ in range(20):  # every tick within the retry interval: no new error line, no second terminate
            clock.advance(1)
            app.enforcer.tick()
        assert errors(caplog) == 1 and len(app.parts.terminator.calls) == 1
        monotonic.t += 5
        app.enforcer.tick()  # the retry fails again: one more error line
        assert errors(caplog) == 2

        filler.unlink()
        monotonic.t += 5
        app.enforcer.tick()
        on_disk = app.parts.store.peek()
        assert on_disk["shutdown"]["reason"] == "lease_expired" and on_disk["termination"]["outcome"] == "verified"
        assert not app.enforcer.keeper.unsaved
        assert any("can be written again" in r.getMessage() for r in caplog.records)
        assert len(app.parts.terminator.calls) == 1


def test_a_first_start_on_a_full_disk_enforces_from_the_config(tmp_path, make_config, clock):
    with small_tmpfs(tmp_path / "disk") as disk:
        (disk / "state").mkdir()
        fill(disk)
        config = make_config(state_dir=str(disk / "state"), idle_timeout_minutes=600)
        parts = build_components(config, clock=clock, terminator=RecordingTerminator(),
                                 activity_sources=[SettableSource()], notifier=QuietNotifier(), gpu_probe=lambda: None)
        enforcer = Enforcer(parts)
        enforcer.tick()
        assert enforcer.keeper.unsaved and parts.store.peek() is None
        clock.t = enforcer.keeper.read()["lease_end"]
        enforcer.tick()
        assert parts.terminator.calls == [config.instance_id]


def test_merge_keeps_what_the_web_workers_wrote_and_what_the_enforcer_decided():
    disk = {"launched_at": 0.0, "lease_start": 0.0, "initial_lease_end": 100.0, "lease_end": 150.0,
            "hard_limit_at": 800.0, "granted_hours": 1.0, "extensions": [{"at": 5.0, "hours": 1.0}],
            "last_activity_at": 40.0, "last_activity_source": "api", "activity_counts": {"api": 3, "ssh": 1},
            "warnings_sent": ["idle@1"], "shutdown": None, "termination": None, "instance_id": None,
            "sources": {}, "enforcer": {"pid": 1, "heartbeat": 1.0}}
    memory = {"launched_at": 0.0, "lease_start": 0.0, "initial_lease_end": 100.0, "lease_end": 100.0,
              "hard_limit_at": 700.0, "granted_hours": 0.0, "extensions": [],
              "last_activity_at": 30.0, "last_activity_source": "sglang", "activity_counts": {"api": 2, "ssh": 4},
              "warnings_sent": ["lease_expired@1"], "instance_id": "i-1", "final_notice_sent": True,
              "shutdown": {"reason": "hard_limit", "decided_at": 700.0, "detail": ""},
              "termination": {"outcome": "verified"}, "sources": {"ssh": {"status": "idle"}},
              "enforcer": {"pid": 2, "heartbeat": 9.0}}
    merged = merge(disk, memory)
    assert merged["lease_end"] == 150.0 and merged["granted_hours"] == 1.0 and len(merged["extensions"]) == 1
    assert merged["hard_limit_at"] == 700.0
    assert merged["shutdown"]["reason"] == "hard_limit" and merged["termination"] == {"outcome": "verified"}
    assert merged["final_notice_sent"] and merged["instance_id"] == "i-1"
    assert merged["last_activity_at"] == 40.0 and merged["last_activity_source"] == "api"
    assert merged["activity_counts"] == {"api": 3, "ssh": 4}
    assert merged["warnings_sent"] == ["idle@1", "lease_expired@1"]
    assert merged["enforcer"]["pid"] == 2 and merged["sources"] == {"ssh": {"status": "idle"}}


@pytest.mark.parametrize("moved", [0.0, 90.0])
def test_merge_moves_an_extended_lease_with_a_launch_moved_for_clock_skew(moved):
    disk = {"launched_at": 1000.0, "lease_start": 1000.0, "initial_lease_end": 2000.0, "lease_end": 2500.0,
            "hard_limit_at": 9000.0}
    memory = {"launched_at": 1000.0 - moved, "lease_start": 1000.0 - moved, "initial_lease_end": 2000.0 - moved,
              "lease_end": 2000.0 - moved, "hard_limit_at": 9000.0 - moved}
    merged = merge(disk, memory)
    assert merged["launched_at"] == 1000.0 - moved and merged["lease_end"] == 2500.0 - moved

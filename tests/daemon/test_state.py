"""The shared on-disk state: atomic, locked, private, and rebuilt safely when damaged."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat

from soong_daemon.state import StateStore, initial_state


def _store(tmp_path, make_config, clock, **overrides):
    config = make_config(**overrides)
    return StateStore(tmp_path / "state", lambda: initial_state(config, clock.now())), config


def test_first_read_creates_a_private_state_file(tmp_path, make_config, clock):
    store, config = _store(tmp_path, make_config, clock)
    state = store.read()
    assert state["lease_end"] == config.launched_at_epoch + config.lease_hours * 3600
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(store.state_dir).st_mode) == 0o700
    assert json.loads(store.path.read_text())["lease_end"] == state["lease_end"]


def test_a_new_store_on_the_same_folder_sees_the_same_lease(tmp_path, make_config, clock):
    store, config = _store(tmp_path, make_config, clock)
    with store.transaction() as state:
        state["lease_end"] += 3600
    clock.advance(7200)
    again, _ = _store(tmp_path, make_config, clock, lease_hours=1)
    assert again.read()["lease_end"] == config.launched_at_epoch + (config.lease_hours + 1) * 3600


def test_the_cached_read_notices_writes_by_another_store(tmp_path, make_config, clock):
    first, _ = _store(tmp_path, make_config, clock)
    second, _ = _store(tmp_path, make_config, clock)
    assert first.read()["granted_hours"] == 0
    with second.transaction() as state:
        state["granted_hours"] = 2.0
    assert first.read()["granted_hours"] == 2.0


def test_an_exception_inside_a_transaction_writes_nothing(tmp_path, make_config, clock):
    store, _ = _store(tmp_path, make_config, clock)
    store.read()
    before = store.path.read_bytes()
    try:
        with store.transaction() as state:
            state["lease_end"] = 0
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert store.path.read_bytes() == before
    assert not [p for p in store.state_dir.iterdir() if p.name.endswith(".tmp")]


def test_a_corrupt_state_is_kept_aside_and_rebuilt_from_the_config(tmp_path, make_config, clock, caplog):
    store, config = _store(tmp_path, make_config, clock)
    with store.transaction() as state:
        state["lease_end"] += 7200
    store.path.write_text('{"version": 1, "lease_end": ')  # a torn file that atomic writes never produce
    state = store.read()
    assert state["lease_end"] == config.launched_at_epoch + config.lease_hours * 3600
    assert [p.name for p in store.state_dir.iterdir() if ".corrupt-" in p.name]
    assert "rebuilt the state" in caplog.text


def _add_hours(state_dir: str, launched: float, count: int) -> None:
    from soong_daemon.state import StateStore

    store = StateStore(state_dir, lambda: {"version": 1, "granted_hours": 0.0, "launched_at": launched})
    for _ in range(count):
        with store.transaction() as state:
            state["granted_hours"] += 1


def test_concurrent_writers_in_several_processes_lose_no_update(tmp_path):
    state_dir = str(tmp_path / "shared")
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_add_hours, args=(state_dir, 0.0, 40)) for _ in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    assert json.loads((tmp_path / "shared" / "state.json").read_text())["granted_hours"] == 160

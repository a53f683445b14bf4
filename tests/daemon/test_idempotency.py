"""/extend with an Idempotency-Key: a retry after a lost answer adds the hours once, across restarts too."""

from __future__ import annotations

import pytest
import requests
from falcon import testing

from tests.daemon.conftest import TOKEN
from tests.daemon.test_integration import Daemon

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def extend(client, hours, key=None):
    headers = dict(AUTH, **({"Idempotency-Key": key} if key is not None else {}))
    return client.simulate_post("/extend", headers=headers, json={"hours": hours})


def test_the_same_key_twice_extends_once_and_replays_the_first_answer(make_app):
    app = make_app()
    client = testing.TestClient(app)
    first = extend(client, 1.5, "k-1")
    again = extend(client, 1.5, "k-1")
    assert first.status_code == again.status_code == 200
    assert again.json == first.json
    assert again.headers.get("idempotent-replayed") == "true"
    assert "idempotent-replayed" not in first.headers
    assert app.parts.store.read()["granted_hours"] == 1.5
    assert len(app.parts.store.read()["extensions"]) == 1


def test_different_keys_and_no_key_each_extend(make_app):
    app = make_app()
    client = testing.TestClient(app)
    for key in ("a", "b", None, None):
        assert extend(client, 0.5, key).status_code == 200
    assert app.parts.store.read()["granted_hours"] == 2.0


def test_a_key_reused_for_other_hours_is_refused(make_app):
    app = make_app()
    client = testing.TestClient(app)
    assert extend(client, 1, "k").status_code == 200
    result = extend(client, 2, "k")
    assert result.status_code == 422
    assert result.json["error"]["code"] == "idempotency_key_reused"
    assert app.parts.store.read()["granted_hours"] == 1


@pytest.mark.parametrize("key", ["", "x" * 129, "has space", "ünï", "a/b"])
def test_a_malformed_key_is_a_400(make_app, key):
    app = make_app()
    result = testing.TestClient(app).simulate_post("/extend", headers={**AUTH, "Idempotency-Key": key},
                                                   json={"hours": 1})
    assert result.status_code == 400
    assert result.json["error"]["code"] == "invalid_idempotency_key"
    assert app.parts.store.read()["granted_hours"] == 0


def test_a_refused_extension_is_not_remembered(make_app):
    app = make_app()
    client = testing.TestClient(app)
    assert extend(client, 1e6, "k").status_code == 409
    assert extend(client, 1, "k").status_code == 200  # the key was not taken by the refusal


def test_only_the_latest_keys_are_kept(make_app, monkeypatch):
    from soong_daemon import operations

    monkeypatch.setattr(operations, "MAX_IDEMPOTENCY_KEYS_KEPT", 3)
    app = make_app()
    client = testing.TestClient(app)
    for n in range(5):
        extend(client, 0.1, f"k{n}")
    assert list(app.parts.store.read()["extend_keys"]) == ["k2", "k3", "k4"]


@pytest.mark.slow
def test_a_retry_after_a_daemon_restart_is_still_recognised(tmp_path, emulator):
    daemon = Daemon(tmp_path, provider_api_url=emulator.url, instance_id="i-idem")
    daemon.start()
    try:
        headers = {**AUTH, "Idempotency-Key": "retry-1"}

        first = requests.post(daemon.url + "/extend", json={"hours": 1}, headers=headers, timeout=5)
        assert first.status_code == 200
        daemon.kill_all()  # the answer was "lost" with the daemon
        daemon.start()
        again = requests.post(daemon.url + "/extend", json={"hours": 1}, headers=headers, timeout=5)
        assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
        assert again.json() == first.json()
        assert daemon.get("/status")["lease"]["granted_hours"] == 1
    finally:
        daemon.stop()

"""Every endpoint of the daemon and every kind of bad input, through Falcon's TestClient."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from falcon import testing

from soong_daemon.prometheus import parse, total
from tests.daemon.conftest import TOKEN

AUTH = {"Authorization": f"Bearer {TOKEN}"}
JSON_AUTH = {**AUTH, "Content-Type": "application/json"}


def epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return testing.TestClient(app)


def error_code(result) -> str:
    assert result.headers["content-type"].startswith("application/json")
    return result.json["error"]["code"]


# ------------------------------------------------------------------ authentication

def test_health_needs_no_token_and_reveals_nothing(client):
    result = client.simulate_get("/health")
    assert result.status_code == 200
    assert result.json == {"status": "ok"}


@pytest.mark.parametrize("path,method", [("/status", "GET"), ("/metrics", "GET"), ("/extend", "POST"),
                                         ("/activity", "POST"), ("/shutdown", "POST"), ("/nowhere", "GET")])
@pytest.mark.parametrize("header", [None, "Bearer wrong-token", f"Basic {TOKEN}", "Bearer", f"Bearer {TOKEN}x",
                                    f"bearer {TOKEN[:-1]}"])
def test_every_other_path_refuses_a_missing_or_wrong_token(client, app, path, method, header):
    headers = {"Authorization": header} if header else {}
    result = client.simulate_request(method, path, headers=headers, json={"hours": 1})
    assert result.status_code == 401
    assert error_code(result) == "unauthorized"
    assert result.headers["www-authenticate"].startswith("Bearer")
    assert TOKEN not in result.text
    state = app.parts.store.read()
    assert state["lease_end"] == state["initial_lease_end"] and not state["shutdown"]


def test_scheme_is_case_insensitive(client):
    assert client.simulate_get("/status", headers={"Authorization": f"bearer {TOKEN}"}).status_code == 200


# ------------------------------------------------------------------ /status and /metrics

def test_status_reports_lease_limits_and_boot_phase(client, make_config, clock, tmp_path):
    (tmp_path / "boot.log").write_text(
        "2025-03-01T12:01:00Z phase=daemon-up status daemon started\n"
        "garbage line\n"
        "2025-03-01T12:03:00Z phase=sglang-loading loading weights\n")
    result = client.simulate_get("/status", headers=AUTH)
    assert result.status_code == 200
    body = result.json
    config = make_config()
    assert body["instance_id"] == config.instance_id
    assert body["model"] == config.model
    assert epoch(body["lease"]["end"]) == config.launched_at_epoch + config.lease_hours * 3600
    assert epoch(body["hard_limit"]["at"]) == config.launched_at_epoch + config.hard_limit_hours * 3600
    assert body["lease"]["seconds_left"] == pytest.approx(epoch(body["lease"]["end"]) - clock.now(), abs=1)
    assert body["idle"]["timeout_seconds"] == config.idle_timeout_minutes * 60
    assert body["boot"]["phase"] == "sglang-loading"
    assert [p["phase"] for p in body["boot"]["phases"]] == ["daemon-up", "sglang-loading"]
    assert body["shutdown"] is None and body["next_shutdown"]["reason"] in {"idle", "lease_expired"}


def test_status_without_boot_log(client):
    body = client.simulate_get("/status", headers=AUTH).json
    assert body["boot"] == {"phase": None, "phases": []}


def test_metrics_is_prometheus_text_consistent_with_status(client, app, clock):
    client.simulate_post("/activity", headers=AUTH)
    clock.advance(90)
    result = client.simulate_get("/metrics", headers=AUTH)
    assert result.status_code == 200
    assert result.headers["content-type"].startswith("text/plain")
    samples = parse(result.text)
    status = client.simulate_get("/status", headers=AUTH).json
    assert total(samples, "soong_lease_seconds_left") == pytest.approx(status["lease"]["seconds_left"], abs=1)
    assert total(samples, "soong_idle_seconds") == pytest.approx(90)
    assert total(samples, "soong_activity_total") == 1
    assert total(samples, "soong_shutdown_decided") == 0


# ------------------------------------------------------------------ /extend

def test_extend_grows_the_lease_by_exactly_the_hours_granted(client, app):
    before = app.parts.store.read()["lease_end"]
    result = client.simulate_post("/extend", headers=JSON_AUTH, json={"hours": 1.5})
    assert result.status_code == 200, result.text
    assert epoch(result.json["lease_end"]) == pytest.approx(before + 1.5 * 3600, abs=1)
    state = app.parts.store.read()
    assert state["lease_end"] == before + 1.5 * 3600
    assert state["granted_hours"] == 1.5
    assert client.simulate_get("/status", headers=AUTH).json["lease"]["extensions"][0]["hours"] == 1.5


def test_extend_without_content_type_is_accepted(client):
    result = client.simulate_post("/extend", headers=AUTH, body=json.dumps({"hours": 1}))
    assert result.status_code == 200


def test_extension_past_the_hard_limit_is_refused_and_changes_nothing(client, app):
    before = app.parts.store.read()["lease_end"]
    result = client.simulate_post("/extend", headers=JSON_AUTH, json={"hours": 4.01})
    assert result.status_code == 409
    assert error_code(result) == "past_hard_limit"
    assert result.json["error"]["max_hours"] == pytest.approx(4.0)
    assert app.parts.store.read()["lease_end"] == before
    exact = client.simulate_post("/extend", headers=JSON_AUTH, json={"hours": 4})
    assert exact.status_code == 200
    assert client.simulate_post("/extend", headers=JSON_AUTH, json={"hours": 0.01}).status_code == 409


@pytest.mark.parametrize("body,code", [
    ({"hours": 0}, "invalid_hours"),
    ({"hours": -1}, "invalid_hours"),
    ({"hours": "2"}, "invalid_hours"),
    ({"hours": True}, "invalid_hours"),
    ({"hours": None}, "invalid_hours"),
    ({"hours": [1]}, "invalid_hours"),
    ({}, "missing_field"),
    ({"hours": 1, "force": True}, "unknown_field"),
    ({"hour": 1}, "unknown_field"),
])
def test_extend_rejects_bad_hours_and_fields(client, app, body, code):
    result = client.simulate_post("/extend", headers=JSON_AUTH, json=body)
    assert result.status_code == 400
    assert error_code(result) == code
    assert app.parts.store.read()["granted_hours"] == 0


@pytest.mark.parametrize("raw", ['{"hours": NaN}', '{"hours": Infinity}', '{"hours": -Infinity}', '{"hours": 1',
                                 "hours=1", "[1]", '"1"', "", "\xff\xfe"])
def test_extend_rejects_malformed_json(client, raw):
    result = client.simulate_post("/extend", headers=JSON_AUTH, body=raw.encode("latin-1"))
    assert result.status_code == 400
    assert error_code(result) == "malformed_json"


def test_huge_hours_are_refused_by_the_hard_limit(client):
    for hours in (1e6, 1e308):
        result = client.simulate_post("/extend", headers=JSON_AUTH, body=json.dumps({"hours": hours}))
        assert result.status_code == 409
    result = client.simulate_post("/extend", headers=JSON_AUTH, body='{"hours": 1e999}')
    assert result.status_code == 400  # parses to infinity: not a finite number


def test_oversized_body_is_refused(client, app):
    big = json.dumps({"hours": 1, "pad": "x" * 5000})
    result = client.simulate_post("/extend", headers=JSON_AUTH, body=big)
    assert result.status_code == 413
    assert error_code(result) == "body_too_large"
    assert app.parts.store.read()["granted_hours"] == 0


def test_oversized_body_without_content_length_is_refused(client):
    def chunks():
        for _ in range(10):
            yield b" " * 1000

    result = client.simulate_post("/activity", headers=AUTH, body=b"".join(chunks()))
    assert result.status_code == 413


def test_wrong_content_type_is_refused(client):
    result = client.simulate_post("/extend", headers={**AUTH, "Content-Type": "application/x-www-form-urlencoded"},
                                  body="hours=1")
    assert result.status_code == 415
    assert error_code(result) == "unsupported_media_type"


# ------------------------------------------------------------------ /activity and /shutdown

def test_activity_resets_the_idle_time(client, app, clock):
    clock.advance(1200)
    assert client.simulate_get("/status", headers=AUTH).json["idle"]["idle_seconds"] >= 1200
    result = client.simulate_post("/activity", headers=AUTH)
    assert result.status_code == 200
    status = client.simulate_get("/status", headers=AUTH).json
    assert status["idle"]["idle_seconds"] == 0
    assert status["last_activity"]["source"] == "api"
    assert status["activity_counts"] == {"api": 1}


@pytest.mark.parametrize("body", ["{}", ""])
def test_activity_accepts_an_empty_body(client, body):
    assert client.simulate_post("/activity", headers=JSON_AUTH, body=body).status_code == 200


@pytest.mark.parametrize("body,status", [('{"note": "x"}', 400), ("[]", 400), ("{", 400)])
def test_activity_rejects_bad_bodies(client, body, status):
    assert client.simulate_post("/activity", headers=JSON_AUTH, body=body).status_code == status


def test_shutdown_is_recorded_once_and_then_blocks_changes(client, app):
    first = client.simulate_post("/shutdown", headers=AUTH)
    assert first.status_code == 202
    assert first.json["shutdown"]["reason"] == "requested"
    again = client.simulate_post("/shutdown", headers=AUTH)
    assert again.status_code == 202
    assert again.json["shutdown"]["decided_at"] == first.json["shutdown"]["decided_at"]
    extend = client.simulate_post("/extend", headers=JSON_AUTH, json={"hours": 1})
    assert extend.status_code == 409 and error_code(extend) == "shutdown_underway"
    activity = client.simulate_post("/activity", headers=AUTH)
    assert activity.status_code == 409
    assert client.simulate_get("/status", headers=AUTH).json["shutdown"]["reason"] == "requested"


def test_shutdown_request_is_carried_out_by_the_enforcer(client, app):
    client.simulate_post("/shutdown", headers=AUTH)
    app.enforcer.tick()
    assert app.parts.terminator.calls == [app.parts.config.instance_id]
    status = client.simulate_get("/status", headers=AUTH).json
    assert status["termination"]["outcome"] == "verified"


# ------------------------------------------------------------------ routing and errors

def test_unknown_path_and_wrong_method(client):
    missing = client.simulate_get("/nothing-here", headers=AUTH)
    assert missing.status_code == 404 and error_code(missing) == "not_found"
    wrong = client.simulate_get("/extend", headers=AUTH)
    assert wrong.status_code == 405 and error_code(wrong) == "method_not_allowed"
    assert "POST" in wrong.headers["allow"]


def test_an_internal_error_is_a_json_500_without_details(client, app, caplog):
    path = app.parts.store.path
    path.unlink()
    path.mkdir()  # the state file is now something no one can read as a file
    result = client.simulate_get("/status", headers=AUTH)
    assert result.status_code == 500
    assert error_code(result) == "internal_error"
    assert str(path) not in result.text and "Traceback" not in result.text
    assert "internal error handling GET /status" in caplog.text


def test_state_is_shared_between_two_apps_on_one_folder(make_app, clock):
    first, second = testing.TestClient(make_app()), testing.TestClient(make_app())
    assert first.simulate_post("/extend", headers=JSON_AUTH, json={"hours": 1}).status_code == 200
    assert second.simulate_post("/extend", headers=JSON_AUTH, json={"hours": 2}).status_code == 200
    lease = first.simulate_get("/status", headers=AUTH).json["lease"]
    assert lease["granted_hours"] == 3
    assert epoch(lease["end"]) - epoch(lease["initial_end"]) == 3 * 3600

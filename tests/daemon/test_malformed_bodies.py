"""Malformed bodies on /extend and /activity: always a 4xx with a one-line JSON error, never a 5xx."""

from __future__ import annotations

import json

import pytest
from falcon import testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.daemon.conftest import TOKEN

JSON_AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
PATHS = ("/extend", "/activity")


def assert_one_line_4xx(result) -> None:
    assert 400 <= result.status_code < 500, (result.status_code, result.text[:200])
    assert result.headers["content-type"].startswith("application/json")
    error = result.json["error"]
    assert error["code"] and "\n" not in error["message"]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("raw", [
    '{"hours": 1e400}', '{"hours": -1e400}', '{"hours": NaN}', '{"hours": Infinity}', '{"hours": -Infinity}',
    '{"hours": ' + "9" * 400 + "}",  # an int beyond float range
    "[" * 2000 + "]" * 2000, '{"a":' * 600 + "1" + "}" * 600, '{"hours": ' + "[" * 1000 + "]" * 1000 + "}",
])
def test_the_reported_bodies_get_a_400(make_app, path, raw):
    app = make_app()
    client = testing.TestClient(app)
    result = client.simulate_post(path, headers=JSON_AUTH, body=raw)
    assert result.status_code == 400
    assert_one_line_4xx(result)
    assert app.parts.store.read()["granted_hours"] == 0


def test_nesting_within_the_limit_is_still_parsed(make_app):
    client = testing.TestClient(make_app())
    result = client.simulate_post("/extend", headers=JSON_AUTH, body='{"hours": 1, "x": ' + "[" * 5 + "]" * 5 + "}")
    assert result.status_code == 400
    assert result.json["error"]["code"] == "unknown_field"  # got past the parser


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)


def _dump(value) -> bytes:
    return json.dumps(value).encode()  # allow_nan: NaN/Infinity literals on purpose


bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(_dump),
    st.fixed_dictionaries({"hours": json_values}).map(_dump),
    st.fixed_dictionaries({"hours": st.floats() | st.integers(min_value=-10**400, max_value=10**400)}).map(_dump),
    st.tuples(st.integers(0, 3000), st.sampled_from("[{")).map(
        lambda t: (t[1] * t[0] + ("]" if t[1] == "[" else "}") * t[0]).encode()),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(PATHS), body=bodies,
       key=st.none() | st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=140))
def test_fuzzed_bodies_never_get_a_5xx(make_app, path, body, key):
    client = testing.TestClient(make_app())
    headers = JSON_AUTH if key is None else {**JSON_AUTH, "Idempotency-Key": key}
    result = client.simulate_post(path, headers=headers, body=body)
    if result.status_code < 300:
        return  # a body that happened to be valid
    assert_one_line_4xx(result)


@pytest.mark.parametrize("path", PATHS)
def test_an_unknown_field_named_with_a_newline_is_refused_on_one_line(make_app, path):
    result = testing.TestClient(make_app()).simulate_post(path, headers=JSON_AUTH, body='{"\\n": null}')
    assert result.status_code == 400 and result.json["error"]["code"] == "unknown_field"
    assert_one_line_4xx(result)
    assert '"\\n"' in result.json["error"]["message"]

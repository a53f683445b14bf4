"""The model stand-in asks for the API key exactly where SGLang 0.5.23 does (decide_request_auth, utils/auth.py)."""

from __future__ import annotations

import pytest
from falcon import testing

from soong.sandbox.model_standin import create_app

KEY = "sk-standin-0d7c3b"


@pytest.fixture
def client():
    return testing.TestClient(create_app("org/model", api_key=KEY))


@pytest.mark.parametrize("method,path,authorization,status", [
    ("GET", "/v1/models", None, 401),
    ("GET", "/v1/models", f"Bearer {KEY}", 200),
    ("GET", "/v1/models", f"bearer {KEY}", 200),  # the scheme in any case
    ("GET", "/v1/models", f"Bearer  {KEY}", 401),  # split once on a space: the token is " KEY"
    ("GET", "/v1/models", KEY, 401),
    ("GET", "/v1/models", "Bearer wrong", 401),
    ("GET", "/get_model_info", None, 401),
    ("GET", "/health", None, 200),  # health, readiness and metrics probes pass without it
    ("GET", "/metrics", None, 200),
    ("OPTIONS", "/v1/chat/completions", None, None),  # a CORS preflight is never refused for the key
])
def test_key_is_required_where_sglang_requires_it(client, method, path, authorization, status):
    headers = {"Authorization": authorization} if authorization else {}
    result = client.simulate_request(method, path, headers=headers)
    if status is None:
        assert result.status_code != 401
        return
    assert result.status_code == status
    if status == 401:
        assert result.json == {"error": "Unauthorized"}


def test_a_chat_without_the_key_reaches_no_model_and_counts_nothing(client):
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert client.simulate_post("/v1/chat/completions", json=body).status_code == 401
    assert "sglang:num_requests_total{model_name=\"org/model\"} 0.0" in client.simulate_get("/metrics").text
    ok = client.simulate_post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"})
    assert ok.status_code == 200
    assert "sglang:num_requests_total{model_name=\"org/model\"} 1.0" in client.simulate_get("/metrics").text

"""The gated-model check before a launch, against the Hub stand-in on a real loopback socket."""

from __future__ import annotations

import pytest

from soong.core.errors import EXIT_API, EXIT_NOT_FOUND, EXIT_SECRET, NotFoundError, SecretError
from soong.core.hub import DEFAULT_ENDPOINT, HubAccessError, endpoint_from, query_access
from soong.testing.hub import HubStandIn
from soong.testing.net import free_port

LLAMA = "meta-llama/Llama-3.1-8B-Instruct"
QWEN = "Qwen/Qwen3-8B"


@pytest.fixture
def hub():
    with HubStandIn(repos={LLAMA: "manual", QWEN: False}, grants={"hf_granted": {LLAMA}, "hf_other": set()},
                    strict=True) as stand_in:
        yield stand_in


def test_public_model_proceeds_without_a_token(hub):
    access = query_access(QWEN, None, endpoint=hub.url)
    assert access.gated is False and access.warning is None
    assert hub.requests == [(f"/api/models/{QWEN}", None)]


def test_gated_model_without_a_token_is_refused_with_exit_4_and_how_to_set_one(hub):
    with pytest.raises(SecretError) as caught:
        query_access(LLAMA, None, endpoint=hub.url)
    assert caught.value.exit_code == EXIT_SECRET == 4
    text = str(caught.value)
    assert "gated" in text and "soong secrets set hf_token" in text and "\n" not in text


def test_gated_model_with_a_granted_token_proceeds_after_the_auth_check(hub):
    access = query_access(LLAMA, "hf_granted", endpoint=hub.url)
    assert access.gated is True and access.granted is True and access.warning is None
    assert (f"/api/models/{LLAMA}/auth-check", "hf_granted") in hub.requests


def test_gated_model_with_a_token_not_granted_is_refused_with_exit_5_and_the_model_page(hub):
    with pytest.raises(HubAccessError) as caught:
        query_access(LLAMA, "hf_other", endpoint=hub.url)
    assert caught.value.exit_code == EXIT_API == 5
    assert f"{hub.url}/{LLAMA}" in str(caught.value) and "request access" in str(caught.value)


def test_an_invalid_token_is_refused_with_exit_5(hub):
    with pytest.raises(HubAccessError) as caught:
        query_access(LLAMA, "hf_revoked", endpoint=hub.url)
    assert caught.value.exit_code == 5 and "hf_token" in str(caught.value)


def test_an_unknown_repository_is_refused_as_not_found(hub):
    with pytest.raises(NotFoundError) as caught:
        query_access("nobody/No-Such-Model", None, endpoint=hub.url)
    assert caught.value.exit_code == EXIT_NOT_FOUND


def test_a_hub_outage_warns_and_proceeds(hub):
    hub.status = 503
    access = query_access(LLAMA, None, endpoint=hub.url)
    assert access.gated is None and "HTTP 503" in access.warning and "without the check" in access.warning


def test_an_unreachable_hub_warns_and_proceeds():
    access = query_access(LLAMA, None, endpoint=f"http://127.0.0.1:{free_port()}", timeout=2)
    assert access.gated is None and access.warning and "could not ask" in access.warning


def test_endpoint_order_config_then_hf_endpoint_then_default():
    assert endpoint_from("http://mirror.local/", {"HF_ENDPOINT": "http://env.local"}) == "http://mirror.local"
    assert endpoint_from(None, {"HF_ENDPOINT": "http://env.local/"}) == "http://env.local"
    assert endpoint_from(None, {}) == DEFAULT_ENDPOINT == "https://huggingface.co"

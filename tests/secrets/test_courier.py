"""What the courier asks an instance for, and what it says when a backend cannot run commands."""

from __future__ import annotations

import os

from soong.core.context import Context
from soong.core.plugins import PluginHost, PluginInfo
from soong.core.secret_delivery import SecretCourier, missing_secrets
from soong.core.types import Instance


def _context(monkeypatch, **env) -> Context:
    from soong.plugins import direct_tunnel

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    host = PluginHost(discover=False, env={})
    host.add_plugin(direct_tunnel, PluginInfo("direct", builtin=True))
    return Context(env=dict(os.environ), plugin_host=host)


def test_only_what_the_daemon_says_is_missing_is_asked_for():
    assert missing_secrets(None) == [] and missing_secrets({"boot": {}}) == []  # an older daemon: all in user data
    assert missing_secrets({"secrets": {"hf_token": {"expected": False, "delivered": False},
                                        "lambda_api_key": {"delivery": "user-data", "present": False}}}) == []
    assert missing_secrets({"secrets": {"hf_token": {"expected": True, "delivered": False},
                                        "lambda_api_key": {"delivery": "ssh", "present": False}}}) == [
        "hf-token", "lambda-api-key"]


def test_a_backend_that_cannot_run_commands_is_a_failed_delivery(monkeypatch):
    context = _context(monkeypatch, HF_TOKEN="hf_canary-courier-1", SOONG_TUNNEL_BACKEND="direct")
    now = [0.0]
    courier = SecretCourier(context, clock=lambda: now[0])
    instance = Instance("i-1", "active", "gpu_1x_a10", "us-east-1", name="soong-x-1", ip="127.0.0.1")
    status = {"secrets": {"hf_token": {"expected": True, "delivered": False}}}
    [delivery] = courier.deliver(instance, status)
    assert delivery.outcome == "failed" and "tunnel.direct_exec is not set" in delivery.line()
    assert "hf_canary" not in delivery.line()
    assert courier.deliver(instance, status) == []  # not again at once
    now[0] += 31
    assert len(courier.deliver(instance, status)) == 1  # but again after a while

"""The daemon probe: through the configured tunnel backend to a real HTTP server (alive) or a closed port (dead)."""

from __future__ import annotations

import os

import pytest

from soong.core.context import Context
from soong.core.types import Instance
from soong.core.watchdog import TunnelHealthProbe, http_health
from soong.testing.net import free_port
from tests.costs.conftest import T0, builtin_sink_host, launch
from tests.costs.health_server import health_server
from tests.costs.relay_backend import RelayBackend, RelayPlugin


def probe_context(port: int) -> Context:
    """The relay backend, and the Lambda provider the records name (it gives the login user of the target)."""
    import soong.plugins.lambda_cloud

    env = {**os.environ, "SOONG_TUNNEL_BACKEND": "relay", "SOONG_STATUS_DAEMON_PORT": str(port)}
    return Context(env=env, plugin_host=builtin_sink_host(soong.plugins.lambda_cloud, RelayPlugin()), clock=lambda: T0)


def instance(ip: str | None = "127.0.0.1") -> Instance:
    return Instance(id="i-1", status="active", instance_type="gpu_1x_a10", region="us-east-1", ip=ip, name="n")


@pytest.fixture
def record(ledger):
    return launch(ledger, "n", T0, instance_id="i-1")


def test_alive_daemon_through_the_tunnel(record):
    RelayBackend.opened.clear()
    with health_server() as port:
        assert TunnelHealthProbe(probe_context(port))(record, instance()) is True
    assert [(t.host, t.user) for t in RelayBackend.opened] == [("127.0.0.1", "ubuntu")]  # through the backend, as Lambda's user


def test_closed_port_is_dead(record):
    assert TunnelHealthProbe(probe_context(free_port()), timeout=2)(record, instance()) is False


def test_an_unhealthy_answer_is_dead(record):
    with health_server(status=503) as port:
        assert TunnelHealthProbe(probe_context(port))(record, instance()) is False


def test_no_address_yet_is_dead(record):
    with health_server() as port:
        assert TunnelHealthProbe(probe_context(port))(record, instance(ip=None)) is False


def test_a_missing_tunnel_backend_is_dead_not_a_crash(record):
    env = {**os.environ, "SOONG_TUNNEL_BACKEND": "no-such-backend"}
    context = Context(env=env, plugin_host=builtin_sink_host(), clock=lambda: T0)
    assert TunnelHealthProbe(context)(record, instance()) is False


def test_plain_http_health():
    with health_server() as port:
        assert http_health("127.0.0.1", port) is True
    assert http_health("127.0.0.1", free_port(), timeout=1) is False


def test_direct_backend_reaches_the_instance_address(record):
    # With the direct backend the daemon answers on the instance's own address, not on 127.0.0.1.
    with health_server(host="127.0.0.7") as port:
        env = {**os.environ, "SOONG_TUNNEL_BACKEND": "direct", "SOONG_STATUS_DAEMON_PORT": str(port)}
        context = Context(env=env, clock=lambda: T0)
        assert TunnelHealthProbe(context)(record, instance(ip="127.0.0.7")) is True

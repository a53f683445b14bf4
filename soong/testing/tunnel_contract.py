"""The behaviour every tunnel backend must have, as a pytest base class a plugin's tests subclass.

Usage (in a plugin's test module)::

    from soong.testing.tunnel_contract import TunnelBackendContract
    import my_plugin

    class TestMyBackend(TunnelBackendContract):
        plugin = my_plugin                 # its hook registers the backend
        backend_name = "my-backend"

        def tunnel_target(self, instance_id):
            return TunnelTarget(instance_id=instance_id, host="127.0.0.1")

The base class serves real HTTP on loopback ports as the "remote" services,
builds a :class:`~soong.core.context.Context` with private folders and only the
plugin under test, and checks that forwards reach the services, that ``open``
closes on leaving the block (even on an exception), and that ``start`` /
``list`` / ``check`` / ``close`` keep a persistent tunnel across backend objects.
Tunnels left by a failing test are closed by a fixture.
"""

from __future__ import annotations

import http.client
import http.server
import secrets
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest

from soong.core.context import Context
from soong.core.errors import SoongError
from soong.core.local_ports import port_answers
from soong.core.plugins import PluginHost, PluginInfo
from soong.core.types import Forward, TunnelTarget


class RemoteHttpServer:
    """A tiny HTTP server on 127.0.0.1 that answers every GET with its own random token."""

    def __init__(self) -> None:
        self.token = secrets.token_hex(8)
        token = self.token.encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self.send_response(200)
                self.send_header("Content-Length", str(len(token)))
                self.end_headers()
                self.wfile.write(token)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> "RemoteHttpServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


def fetch(host: str, port: int, timeout: float = 10.0) -> str:
    """GET / from ``host:port`` and return the body (raises OSError when nothing answers)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/")
        return conn.getresponse().read().decode()
    finally:
        conn.close()


class TunnelBackendContract:
    """Base class of a backend's contract tests (not collected itself: its name lacks ``Test``)."""

    #: The plugin module or object whose ``soong_register_tunnel_backends`` registers the backend.
    plugin: Any = None
    #: The name the backend registers under.
    backend_name: str = ""
    #: True when the backend listens on local ports (an SSH tunnel); False when forwards are
    #: the remote ports themselves (``direct``), so closing cannot make them stop answering.
    owns_local_ports: bool = True

    # -- what a subclass provides ----------------------------------------------------------
    def tunnel_target(self, instance_id: str) -> TunnelTarget:
        """A target for ``instance_id`` whose loopback services are this machine's."""
        raise NotImplementedError

    def tunnel_env(self) -> dict[str, str]:
        """Extra environment for the Context (e.g. ``SOONG_SSH_*`` settings)."""
        return {}

    # -- fixtures --------------------------------------------------------------------------
    @pytest.fixture
    def tunnel_context(self, tmp_path: Path) -> Context:
        """A Context with private folders and only the plugin under test."""
        home = tmp_path / "contract-home"
        env = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "XDG_STATE_HOME": str(home / ".state"),
               "XDG_DATA_HOME": str(home / ".data"), "XDG_CACHE_HOME": str(home / ".cache")}
        env.update(self.tunnel_env())
        host = PluginHost(discover=False, env={})
        host.add_plugin(self.plugin, PluginInfo(f"contract-{self.backend_name}", builtin=False))
        return Context(env=env, plugin_host=host)

    @pytest.fixture
    def backend(self, tunnel_context: Context) -> Iterator[Any]:
        """The backend under test; every persistent tunnel it still has is closed afterwards."""
        backend = tunnel_context.tunnel_backend(self.backend_name)
        try:
            yield backend
        finally:
            fresh = Context(env=tunnel_context.env, plugin_host=tunnel_context.plugins).tunnel_backend(self.backend_name)
            for record in fresh.list():
                fresh.close(record.instance_id)
                backend.close(record.instance_id)

    @pytest.fixture
    def remotes(self) -> Iterator[list[RemoteHttpServer]]:
        """Two HTTP services on loopback, standing for services on the instance."""
        with RemoteHttpServer() as one, RemoteHttpServer() as two:
            yield [one, two]

    @pytest.fixture
    def forwards(self, remotes: list[RemoteHttpServer]) -> list[Forward]:
        """Forwards to the two services, local ports left to the backend."""
        return [Forward("one", 0, remotes[0].port), Forward("two", 0, remotes[1].port)]

    # -- the contract ----------------------------------------------------------------------
    def test_registered_under_its_name(self, tunnel_context: Context) -> None:
        cls = tunnel_context.plugins.tunnel_backends()[self.backend_name]
        assert cls.name == self.backend_name

    def test_open_reaches_every_remote_port(self, backend: Any, forwards: list[Forward], remotes: list) -> None:
        with backend.open(self.tunnel_target("contract-open"), forwards) as opened:
            assert [f.name for f in opened] == ["one", "two"]
            assert [f.remote_port for f in opened] == [r.port for r in remotes]
            assert all(f.local_port > 0 for f in opened)
            for fwd, remote in zip(opened, remotes, strict=True):
                assert fetch(fwd.local_host, fwd.local_port) == remote.token

    def test_open_closes_when_the_block_ends(self, backend: Any, forwards: list[Forward]) -> None:
        with backend.open(self.tunnel_target("contract-close"), forwards) as opened:
            endpoints = [(f.local_host, f.local_port) for f in opened]
        if self.owns_local_ports:
            assert not any(port_answers(port, host, timeout=0.5) for host, port in endpoints)

    def test_open_closes_when_the_block_raises(self, backend: Any, forwards: list[Forward]) -> None:
        endpoints = []
        with pytest.raises(KeyError), backend.open(self.tunnel_target("contract-raise"), forwards) as opened:
            endpoints = [(f.local_host, f.local_port) for f in opened]
            raise KeyError("boom")
        assert endpoints
        if self.owns_local_ports:
            assert not any(port_answers(port, host, timeout=0.5) for host, port in endpoints)

    def test_start_list_check_close(self, backend: Any, forwards: list[Forward], remotes: list) -> None:
        record = backend.start(self.tunnel_target("contract-start"), forwards)
        assert record.instance_id == "contract-start" and record.backend == self.backend_name and record.alive
        for fwd, remote in zip(record.forwards, remotes, strict=True):
            assert fetch(fwd.local_host, fwd.local_port) == remote.token
        listed = {r.instance_id: r for r in backend.list()}
        assert listed["contract-start"].alive
        assert backend.check("contract-start")
        assert backend.close("contract-start") is True
        assert "contract-start" not in {r.instance_id for r in backend.list()}
        assert not backend.check("contract-start")
        assert backend.close("contract-start") is False
        if self.owns_local_ports:
            assert not any(port_answers(f.local_port, f.local_host, timeout=0.5) for f in record.forwards)

    def test_a_tunnel_outlives_the_backend_object(self, backend: Any, tunnel_context: Context, forwards: list[Forward],
                                                  remotes: list) -> None:
        record = backend.start(self.tunnel_target("contract-persist"), forwards)
        other = Context(env=tunnel_context.env, plugin_host=tunnel_context.plugins).tunnel_backend(self.backend_name)
        assert other is not backend
        assert other.check("contract-persist")
        assert [r.instance_id for r in other.list()] == ["contract-persist"]
        assert fetch(record.forwards[0].local_host, record.forwards[0].local_port) == remotes[0].token
        assert other.close("contract-persist") is True
        assert not backend.check("contract-persist")

    def test_two_instances_at_once(self, backend: Any, forwards: list[Forward], remotes: list) -> None:
        first = backend.start(self.tunnel_target("contract-a"), forwards[:1])
        second = backend.start(self.tunnel_target("contract-b"), forwards[1:])
        assert {r.instance_id for r in backend.list() if r.alive} == {"contract-a", "contract-b"}
        assert fetch(first.forwards[0].local_host, first.forwards[0].local_port) == remotes[0].token
        assert fetch(second.forwards[0].local_host, second.forwards[0].local_port) == remotes[1].token
        assert backend.close("contract-a")
        assert backend.check("contract-b") and not backend.check("contract-a")

    def test_check_and_close_of_an_unknown_instance(self, backend: Any) -> None:
        assert backend.check("contract-never") is False
        assert backend.close("contract-never") is False

    @pytest.mark.parametrize("bad_id", ["../escape", "a/b", "", "-leading-dash"])
    def test_an_unsafe_instance_id_is_refused(self, backend: Any, forwards: list[Forward], bad_id: str) -> None:
        with pytest.raises(SoongError):
            backend.start(TunnelTarget(instance_id=bad_id, host="127.0.0.1"), forwards)
        assert not list(Path(backend.context.paths.state_dir).rglob("*escape*"))

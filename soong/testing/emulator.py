"""Run the Lambda Cloud API emulator for tests, and drive it through its admin API.

Two ways to run one, both on a real loopback socket:

* :func:`run_emulator` starts ``soong-lambda-emulator`` (gunicorn, one sync
  worker, no control socket) as a subprocess on a free port;
* :func:`serve_in_thread` serves an :class:`~soong.plugins.lambda_cloud.emulator.Emulator`
  from a thread of the test process (fast; the test can also reach ``handle.app``).

Both yield an :class:`EmulatorHandle`::

    from soong.testing.emulator import run_emulator

    @pytest.fixture(scope="module")
    def emulator():
        with run_emulator("--boot-delay", "0", "--rate-limit", "off", "--launch-rate-limit", "off") as emu:
            yield emu

    def test_something(emulator, monkeypatch):
        monkeypatch.setenv("SOONG_LAMBDA_API_URL", emulator.url)
        monkeypatch.setenv("LAMBDA_API_KEY", emulator.api_key)
        emulator.add_ssh_key("me")               # through the real API
        emulator.set_capacity("gpu_1x_a10", "us-east-1", 0)
        emulator.add_fault(path="/instance-operations/launch", action="ambiguous", times=1)
        ...
        assert not [e for e in emulator.requests() if e["rate_limited"]]

The API key is passed to the subprocess through its environment, never on its
command line.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from soong.testing.net import free_port

#: A syntactically valid OpenSSH public key for tests that need one.
TEST_PUBLIC_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAevKqoYBiBOEkDs2cdUiPh6rUCAO/21+d5FYO503jfF soong-test"
)


class EmulatorHandle:
    """A running emulator: ``url`` (the ``/api/v1`` base), ``api_key`` and admin helpers.

    :param base_url: ``http://127.0.0.1:PORT``.
    :param app: the in-process :class:`Emulator` when served from a thread, else None.
    """

    def __init__(self, base_url: str, api_key: str, *, admin_token: str | None = None, app: Any = None,
                 log_path: Path | None = None) -> None:
        import requests

        self.base_url = base_url.rstrip("/")
        self.url = self.base_url + "/api/v1"
        self.admin_url = self.base_url + "/_emulator"
        self.api_key = api_key
        self.app = app
        self.log_path = log_path
        self._session = requests.Session()
        if admin_token:
            self._session.headers["X-Emulator-Token"] = admin_token

    # -- raw access ------------------------------------------------------------------------
    def admin(self, method: str, path: str, json: Any = None) -> Any:
        """Call the admin API (``path`` relative to ``/_emulator``); return the parsed JSON (or text)."""
        resp = self._session.request(method, self.admin_url + path, json=json, timeout=30)
        if resp.status_code >= 400:
            raise RuntimeError(f"emulator admin {method} {path}: {resp.status_code} {resp.text}")
        if resp.status_code == 204:
            return None
        if resp.headers.get("content-type", "").startswith("application/json"):
            return resp.json()
        return resp.text

    def api(self, method: str, path: str, json: Any = None, **kwargs: Any) -> Any:
        """Call the emulated API with the key (``path`` relative to ``/api/v1``); return the Response.

        A 429 is waited out (``Retry-After``) and retried unless ``wait_on_429=False``.
        """
        headers = {"Authorization": f"Bearer {self.api_key}", **kwargs.pop("headers", {})}
        timeout = kwargs.pop("timeout", 30)
        wait_on_429 = kwargs.pop("wait_on_429", True)
        for _ in range(50):
            resp = self._session.request(method, self.url + path, json=json, headers=headers, timeout=timeout, **kwargs)
            if resp.status_code != 429 or not wait_on_429:
                return resp
            time.sleep(min(15.0, float(resp.headers.get("Retry-After") or 1)))
        return resp

    # -- settings ---------------------------------------------------------------------------
    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change settings: ``boot_delay``, ``terminate_delay``, ``gone_delay``, ``restart_delay``,
        ``general_limit``/``launch_limit`` (``"N/SECONDS"`` or ``"off"``), ``quota``, ``account_status``,
        ``rate_limit_style``, ``record_bodies``, ``default_capacity``, ``random_seed``."""
        return self.admin("PATCH", "/config", settings)

    def config(self) -> dict[str, Any]:
        """Current settings."""
        return self.admin("GET", "/config")

    def set_boot_delay(self, seconds: float) -> None:
        """Seconds (emulated) from launch to active, for instances launched from now on."""
        self.configure(boot_delay=seconds)

    def set_capacity(self, instance_type: str, region: str, count: int | None) -> dict[str, Any]:
        """Make ``count`` instances of a type launchable in a region now (None: unlimited)."""
        return self.admin("PUT", "/capacity", {"instance_type": instance_type, "region": region, "count": count})

    def capacity(self) -> dict[str, dict[str, int | None]]:
        """Launchable count per type and region."""
        return self.admin("GET", "/capacity")

    # -- faults -----------------------------------------------------------------------------
    def add_fault(self, **rule: Any) -> dict[str, Any]:
        """Add one fault rule (see :mod:`soong.plugins.lambda_cloud.emulator.faults`); return it with its id."""
        return self.admin("POST", "/faults", rule)[0]

    def faults(self) -> list[dict[str, Any]]:
        """The fault rules with their counters."""
        return self.admin("GET", "/faults")

    def clear_faults(self) -> None:
        """Remove every fault rule."""
        self.admin("DELETE", "/faults")

    # -- log, clock, instances ----------------------------------------------------------------
    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        """The request log (entries with ``seq > since``)."""
        return self.admin("GET", f"/requests?since={since}")

    def clear_requests(self) -> None:
        """Empty the request log."""
        self.admin("DELETE", "/requests")

    def now(self) -> float:
        """Emulated time, epoch seconds."""
        return self.admin("GET", "/clock")["now"]

    def advance(self, seconds: float) -> float:
        """Move emulated time forward; return the new time."""
        return self.admin("POST", "/clock", {"advance": seconds})["now"]

    def set_time(self, epoch: float) -> float:
        """Jump emulated time to ``epoch``."""
        return self.admin("POST", "/clock", {"set": epoch})["now"]

    def freeze(self, frozen: bool = True) -> None:
        """Freeze (or unfreeze) emulated time."""
        self.admin("POST", "/clock", {"freeze": frozen})

    def instances(self) -> list[dict[str, Any]]:
        """Every instance ever launched (gone ones too), with internal fields."""
        return self.admin("GET", "/instances")

    def user_data(self, instance_id: str) -> str | None:
        """The user data an instance was launched with (None when it had none)."""
        return self.admin("GET", f"/instances/{instance_id}/user_data")

    def set_status(self, instance_id: str, status: str) -> dict[str, Any]:
        """Force ``booting``, ``active``, ``unhealthy`` or ``preempted``."""
        return self.admin("PATCH", f"/instances/{instance_id}", {"status": status})

    def reset(self) -> None:
        """Back to the seed; clears faults, the log and rate-limit history."""
        self.admin("POST", "/reset")

    # -- conveniences through the real API ------------------------------------------------------
    def add_ssh_key(self, name: str, public_key: str = TEST_PUBLIC_KEY) -> dict[str, Any]:
        """Add an SSH key through ``POST /ssh-keys`` (counts against the rate limit)."""
        resp = self.api("POST", "/ssh-keys", {"name": name, "public_key": public_key})
        resp.raise_for_status()
        return resp.json()["data"]

    def add_file_system(self, name: str, region: str) -> dict[str, Any]:
        """Create a file system through ``POST /filesystems``."""
        resp = self.api("POST", "/filesystems", {"name": name, "region": region})
        resp.raise_for_status()
        return resp.json()["data"]

    def close(self) -> None:
        """Close the admin session."""
        self._session.close()


def _wait_healthy(handle: EmulatorHandle, proc: subprocess.Popen | None, timeout: float) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the emulator exited with {proc.returncode}")
        try:
            if requests.get(handle.admin_url + "/health", timeout=1).status_code < 500:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"the emulator did not answer on {handle.base_url} within {timeout:g}s")
        time.sleep(0.05)


@contextlib.contextmanager
def run_emulator(*args: str, api_key: str | None = None, host: str = "127.0.0.1", port: int | None = None,
                 startup_timeout: float = 30.0, env: dict[str, str] | None = None) -> Iterator[EmulatorHandle]:
    """Run ``soong-lambda-emulator ARGS`` under gunicorn on a free loopback port; yield its handle.

    ``args`` are the console script's flags (``--boot-delay 0``, ``--rate-limit off``,
    ``--fault JSON``...). The process is stopped on exit; its log is kept at
    ``handle.log_path`` while the block runs.
    """
    api_key = api_key or "emu-" + secrets.token_hex(12)
    full_env = dict(os.environ if env is None else env)
    full_env["SOONG_EMULATOR_API_KEY"] = api_key
    with tempfile.TemporaryDirectory(prefix="soong-emulator-") as tmp:
        log_path = Path(tmp) / "emulator.log"
        last_error: Exception | None = None
        for _attempt in range(3):
            chosen = port or free_port(host)
            cmd = [sys.executable, "-m", "soong.plugins.lambda_cloud.emulator.cli", "--host", host,
                   "--port", str(chosen), *args]
            with open(log_path, "ab") as log:
                proc = subprocess.Popen(cmd, env=full_env, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, cwd=tmp)
            handle = EmulatorHandle(f"http://{host}:{chosen}", api_key, log_path=log_path,
                                    admin_token=full_env.get("SOONG_EMULATOR_ADMIN_TOKEN"))
            try:
                _wait_healthy(handle, proc, startup_timeout)
            except (RuntimeError, TimeoutError) as exc:  # e.g. the port was taken meanwhile
                last_error = exc
                _stop(proc)
                handle.close()
                if port:
                    break
                continue
            try:
                yield handle
            finally:
                handle.close()
                _stop(proc)
            return
        output = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
        raise RuntimeError(f"could not start the emulator: {last_error}\n{output}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@contextlib.contextmanager
def serve_in_thread(app: Any = None, *, host: str = "127.0.0.1", **options: Any) -> Iterator[EmulatorHandle]:
    """Serve an emulator app (default: ``create_app(**options)``) from a thread on a free port.

    The server is single-threaded, like the gunicorn worker, and can drop
    connections for faults. ``handle.app`` is the :class:`Emulator` itself.
    """
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

    from soong.plugins.lambda_cloud.emulator import create_app

    if app is None:
        options.setdefault("api_key", "emu-" + secrets.token_hex(12))
        app = create_app(**options)

    class Handler(WSGIRequestHandler):
        def get_environ(self) -> dict[str, Any]:
            environ = super().get_environ()
            environ["soong.emulator.socket"] = self.connection
            return environ

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
            pass

    class Server(WSGIServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            if not isinstance(sys.exc_info()[1], OSError):
                super().handle_error(request, client_address)

    server = Server((host, 0), Handler)
    server.set_app(app)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True,
                              name="lambda-emulator")
    thread.start()
    handle = EmulatorHandle(f"http://{host}:{server.server_address[1]}", app.config.api_key, app=app,
                            admin_token=app.config.admin_token)
    try:
        yield handle
    finally:
        handle.close()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

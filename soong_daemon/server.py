"""gunicorn, embedded: the web workers plus the one enforcer process the master supervises.

The master (``DaemonArbiter``) runs the web workers (sync workers: each request
is short and gthread keep-alive would pin connections to one worker; each
connection must deliver its request within ``request_timeout_seconds``, see
``soong_daemon.worker``) and starts
``python -m soong_daemon.enforcer`` as a child, restarting it whenever it dies.
The enforcer stops with the master. gunicorn's control socket is off unless
``control_socket`` names a path, so two daemons on one machine never collide.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter

from soong_daemon.config import DaemonConfig

log = logging.getLogger("soong_daemon.server")

RESPAWN_DELAY = 2.0


class EnforcerProcess:
    """The enforcer child of the gunicorn master: started, watched and restarted from the master loop."""

    def __init__(self, config_path: str) -> None:
        self.config_path = config_path
        self.proc: subprocess.Popen | None = None
        self._last_start = 0.0

    def ensure(self) -> None:
        """Start the enforcer if it is not running (at most once per RESPAWN_DELAY)."""
        if self.proc is not None and self.proc.poll() is None:
            return
        if time.monotonic() - self._last_start < RESPAWN_DELAY:
            return
        if self.proc is not None:
            log.error("the enforcer process (pid %s) exited with status %s; starting it again",
                      self.proc.pid, self.proc.returncode)
        self._last_start = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "soong_daemon.enforcer", "--config", self.config_path, "--parent-pid", str(os.getpid())],
            stdin=subprocess.DEVNULL, close_fds=True)
        log.info("enforcer started (pid %s)", self.proc.pid)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the enforcer: SIGTERM, then SIGKILL after ``timeout`` seconds."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        except ChildProcessError:
            pass  # gunicorn's reaper collected it first


class DaemonArbiter(Arbiter):
    """gunicorn's master, also keeping the enforcer process alive."""

    def manage_workers(self) -> None:
        """Keep the web workers and the enforcer running."""
        super().manage_workers()
        self.app.enforcer_process.ensure()


def gunicorn_settings(config: DaemonConfig) -> dict[str, Any]:
    """The gunicorn settings a daemon config gives."""
    settings: dict[str, Any] = {
        "bind": [config.bind],
        "workers": config.workers,
        # gunicorn's sync worker plus a deadline for receiving each request (see soong_daemon.worker)
        "worker_class": "soong_daemon.worker.DeadlineSyncWorker",
        "timeout": 30,
        "graceful_timeout": 10,
        "proc_name": "soong-daemon",
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "info",
        "preload_app": False,
    }
    if config.control_socket:
        settings["control_socket"] = config.control_socket
    else:
        settings["control_socket_disable"] = True
    return settings


def _on_exit(server: Arbiter) -> None:
    server.app.enforcer_process.stop()


class DaemonApplication(BaseApplication):
    """The daemon as an embedded gunicorn application (no gunicorn command line involved)."""

    def __init__(self, config: DaemonConfig, config_path: str) -> None:
        self.daemon_config = config
        self.enforcer_process = EnforcerProcess(config_path)
        super().__init__(usage=None, prog="soong-daemon")

    def load_config(self) -> None:
        """Apply the settings derived from the daemon config."""
        for key, value in gunicorn_settings(self.daemon_config).items():
            self.cfg.set(key, value)
        self.cfg.set("on_exit", _on_exit)

    def load(self) -> Any:
        """Build the WSGI app in each worker."""
        from soong_daemon.app import create_app

        return create_app(self.daemon_config)

    def run(self) -> None:
        """Run the master loop until it is told to stop."""
        try:
            DaemonArbiter(self).run()
        except RuntimeError as exc:
            print(f"soong-daemon: {exc}", file=sys.stderr)
            sys.exit(1)

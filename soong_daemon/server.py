"""gunicorn, embedded: the web workers, plus (role ``all``) the one enforcer process the master supervises.

The master (``DaemonArbiter``) runs the web workers (sync workers: each request
is short and gthread keep-alive would pin connections to one worker; each
connection must deliver its request within ``request_timeout_seconds``, see
``soong_daemon.worker``). In the embedded mode (``soong-daemon --role all``,
where no systemd runs) it also starts ``python -m soong_daemon.enforcer`` as a
child, restarting it whenever it dies; that enforcer stops with the master. On
an instance the web server runs with ``--role web`` and starts no enforcer: the
enforcer is its own unit (see ``soong_daemon.cli``). gunicorn's control socket
is off unless ``control_socket`` names a path, so two daemons on one machine
never collide.
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
        self.status_lost = False
        self._last_start = 0.0

    def ensure(self) -> None:
        """Start the enforcer if it is not running (at most once per RESPAWN_DELAY)."""
        self.reap()
        if self.proc is not None and self.proc.poll() is None:
            return
        if time.monotonic() - self._last_start < RESPAWN_DELAY:
            return
        if self.proc is not None:
            log.error("the enforcer process (pid %s) %s; starting it again", self.proc.pid, self.how_it_ended())
        self._last_start = time.monotonic()
        self.status_lost = False
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "soong_daemon.enforcer", "--config", self.config_path, "--parent-pid", str(os.getpid())],
            stdin=subprocess.DEVNULL, close_fds=True)
        log.info("enforcer started (pid %s)", self.proc.pid)

    def reap(self) -> None:
        """Collect the enforcer's exit status with a waitpid on its own pid, before gunicorn's waitpid(-1) can.

        gunicorn's ``Arbiter.reap_workers`` reaps every child with ``waitpid(-1)``
        and keeps a non-worker's status only in a debug line; ``Popen.poll`` then
        meets ECHILD and reports 0, so a killed enforcer read "exited with status 0".
        gunicorn 27.0.1 reaps its own dirty arbiter the same way, first and by pid
        (``Arbiter.handle_chld``, gunicorn/arbiter.py lines 293-299).
        """
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        try:
            pid, status = os.waitpid(proc.pid, os.WNOHANG)
        except ChildProcessError:
            self.status_lost = True  # collected elsewhere; poll() will say 0, which would be a guess
            return
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)

    def how_it_ended(self) -> str:
        """The enforcer's end in words: its exit status or the signal that killed it."""
        code = self.proc.returncode if self.proc is not None else None
        if self.status_lost or code is None:
            return "exited (its exit status was collected elsewhere and is unknown)"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"was killed by {name}"
        return f"exited with status {code}"

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
    """gunicorn's master, also keeping the enforcer process alive (when it has one to keep)."""

    def reap_workers(self) -> None:
        """Reap the enforcer by its pid first (keeping its status), then the workers as gunicorn does."""
        if self.app.enforcer_process is not None:
            self.app.enforcer_process.reap()
        super().reap_workers()

    def manage_workers(self) -> None:
        """Keep the web workers and the enforcer running."""
        super().manage_workers()
        if self.app.enforcer_process is not None:
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
    if server.app.enforcer_process is not None:
        server.app.enforcer_process.stop()


class DaemonApplication(BaseApplication):
    """The daemon as an embedded gunicorn application (no gunicorn command line involved).

    ``with_enforcer`` False (``--role web``) serves the API only; the enforcer then runs elsewhere.
    """

    def __init__(self, config: DaemonConfig, config_path: str, *, with_enforcer: bool = True) -> None:
        self.daemon_config = config
        self.enforcer_process = EnforcerProcess(config_path) if with_enforcer else None
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

"""The real ``soong-daemon`` in a role of its own, as a process group, for the stand-alone trials."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import yaml

from tests.daemon.conftest import API_KEY, TOKEN, write_secret

SOONG_DAEMON = str(Path(sys.executable).parent / "soong-daemon")


def write_config(folder: Path, **settings: Any) -> Path:
    """A daemon config in ``folder`` (launched now, fast checks, no services), with ``settings`` on top."""
    secrets = folder / "secrets"
    secrets.mkdir(mode=0o700, exist_ok=True)
    config = {
        "launched_at": datetime.now(timezone.utc).isoformat(), "workers": 1,
        "state_dir": str(folder / "state"), "token_file": str(write_secret(secrets / "token", TOKEN)),
        "api_key_file": str(write_secret(secrets / "api-key", API_KEY)),
        "boot_log": str(folder / "boot.log"), "sglang_metrics_url": "", "n8n_metrics_url": "",
        "forwarded_ports": [], "wall": False, "poweroff_command": [], "check_interval_seconds": 0.2,
        "idle_timeout_minutes": 10080, **settings,
    }
    path = folder / "daemon.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


class Role:
    """``[prefix...] soong-daemon --config FILE ARGS...`` in its own session, its output in ``log_path``."""

    def __init__(self, config_path: Path, *args: str, prefix: tuple[str, ...] = (), env: dict | None = None,
                 name: str = "daemon") -> None:
        self.log_path = config_path.parent / f"{name}.log"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([*prefix, SOONG_DAEMON, "--config", str(config_path), *args],
                                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True, env=env)

    def log(self) -> str:
        """What it printed so far."""
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL for the whole group; return its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait(10)
        return self.proc.returncode


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, log: Callable[[], str] = lambda: "") -> Any:
    """Poll ``predicate`` every 0.1 s until it returns something true; AssertionError (with ``log()``) after ``timeout`` s."""
    from soong.testing.polling import wait_until as poll

    try:
        return poll(predicate, timeout=timeout, what=what, interval=0.1)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{log()}") from None


def terminate_calls(emulator) -> list[dict]:
    """The terminate requests the emulator received."""
    return [e for e in emulator.requests() if e["path"] == "/instance-operations/terminate"]

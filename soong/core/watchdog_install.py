"""Install the watchdog as a systemd user timer, or a cron entry where there is no systemd.

The installed job runs ``soong [--profile P] watchdog run --once`` every
``watchdog.interval_minutes``. Unit files and cron lines hold no secret: the job
reads the API key from the keyring (or ``secrets.backend: file``) like any
command; only the non-secret XDG/soong location variables of the installing
shell are copied, so the job sees the same ledger and config.

Where things go can be changed (tests do): the unit folder (default
``$XDG_CONFIG_HOME/systemd/user``) and the programs called for ``systemctl``
and ``crontab`` (``$SOONG_WATCHDOG_SYSTEMCTL``, ``$SOONG_WATCHDOG_CRONTAB``).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Mapping, Sequence

from soong.core.atomic import write_private
from soong.core.errors import SoongError

#: Environment variables copied into the job (locations only; never secrets).
PASSED_ENV = ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME", "SOONG_CONFIG_DIR",
              "SOONG_LAMBDA_API_URL", "PYTHON_KEYRING_BACKEND")
CRON_MARKER = "# soong-watchdog"


class InstallError(SoongError):
    """The watchdog job could not be installed or removed."""


def soong_executable() -> str:
    """Absolute path of the ``soong`` program of this installation."""
    beside = Path(sys.executable).parent / "soong"
    if beside.exists():
        return str(beside)
    found = shutil.which("soong")
    if found:
        return str(Path(found).resolve())
    raise InstallError("cannot find the soong executable to schedule; is soong installed?")


def job_command(profile: str | None, executable: str | None = None) -> list[str]:
    """The command the scheduler runs."""
    command = [executable or soong_executable()]
    if profile and profile != "default":
        command += ["--profile", profile]
    return command + ["watchdog", "run", "--once"]


def job_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The location variables of ``env`` the job needs (see :data:`PASSED_ENV`)."""
    return {name: env[name] for name in PASSED_ENV if env.get(name)}


def _systemd_quote(word: str) -> str:
    if word and all(c.isalnum() or c in "/._-+=:@," for c in word):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _run(argv: Sequence[str], *, input: str | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(list(argv), input=input, capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise InstallError(f"'{argv[0]}' is not installed") from None
    except subprocess.TimeoutExpired:
        raise InstallError(f"'{' '.join(argv[:3])}' did not finish in 30 s") from None


class SystemdInstaller:
    """A ``soong-watchdog[-profile].timer`` + ``.service`` pair in the user's systemd."""

    method = "systemd"

    def __init__(self, unit_dir: Path, *, profile: str | None = None, systemctl: str = "systemctl") -> None:
        self.unit_dir = Path(unit_dir)
        self.systemctl = shlex.split(systemctl) + ["--user"]
        self.unit = "soong-watchdog" + (f"-{profile}" if profile and profile != "default" else "")

    @property
    def paths(self) -> tuple[Path, Path]:
        """The service and timer files."""
        return self.unit_dir / f"{self.unit}.service", self.unit_dir / f"{self.unit}.timer"

    def render(self, command: Sequence[str], env: Mapping[str, str], interval_minutes: int) -> tuple[str, str]:
        """The service and timer unit texts."""
        lines = ["[Unit]", "Description=soong watchdog: terminate forgotten GPU instances (one pass)", "",
                 "[Service]", "Type=oneshot"]
        lines += [f"Environment={_systemd_quote(f'{k}={v}')}" for k, v in sorted(env.items())]
        lines += ["ExecStart=" + " ".join(_systemd_quote(w) for w in command), ""]
        timer = ["[Unit]", f"Description=Run the soong watchdog every {interval_minutes} minutes", "",
                 "[Timer]", "OnBootSec=2min", f"OnUnitActiveSec={interval_minutes}min", "AccuracySec=30s",
                 f"Unit={self.unit}.service", "", "[Install]", "WantedBy=timers.target", ""]
        return "\n".join(lines), "\n".join(timer)

    def install(self, command: Sequence[str], env: Mapping[str, str], interval_minutes: int) -> str:
        """Write the units and enable the timer; return a description of what was done."""
        service, timer = self.render(command, env, interval_minutes)
        service_path, timer_path = self.paths
        write_private(service_path, service, mode=0o644)
        write_private(timer_path, timer, mode=0o644)
        for argv in (self.systemctl + ["daemon-reload"], self.systemctl + ["enable", "--now", f"{self.unit}.timer"]):
            result = _run(argv)
            if result.returncode != 0:
                raise InstallError(f"'{' '.join(argv)}' failed: {(result.stderr or result.stdout).strip()[:200]}",
                                   hint=f"the unit files are in {self.unit_dir}")
        return f"systemd user timer {self.unit}.timer (every {interval_minutes} min; units in {self.unit_dir})"

    def uninstall(self) -> bool:
        """Disable the timer and remove the units; False if they were not there."""
        present = any(p.exists() for p in self.paths)
        if present:
            _run(self.systemctl + ["disable", "--now", f"{self.unit}.timer"])
        for path in self.paths:
            path.unlink(missing_ok=True)
        if present:
            _run(self.systemctl + ["daemon-reload"])
        return present

    def installed(self) -> str | None:
        """Where it is installed, or None."""
        return str(self.paths[1]) if self.paths[1].exists() else None


class CronInstaller:
    """One line in the user's crontab, marked so it can be found and removed again."""

    method = "cron"

    def __init__(self, *, profile: str | None = None, crontab: str = "crontab", log_path: Path | None = None) -> None:
        self.crontab = shlex.split(crontab)
        self.marker = CRON_MARKER + (f"-{profile}" if profile and profile != "default" else "")
        self.log_path = log_path

    def read(self) -> list[str]:
        """The current crontab lines (none if there is no crontab)."""
        result = _run(self.crontab + ["-l"])
        if result.returncode != 0:
            if "no crontab" in (result.stderr or "").lower():
                return []
            raise InstallError(f"'crontab -l' failed: {result.stderr.strip()[:200]}")
        return result.stdout.splitlines()

    def _write(self, lines: list[str]) -> None:
        result = _run(self.crontab + ["-"], input="".join(line + "\n" for line in lines))
        if result.returncode != 0:
            raise InstallError(f"'crontab -' failed: {result.stderr.strip()[:200]}")

    def _ours(self, line: str) -> bool:
        return line.rstrip().endswith(self.marker)

    def render(self, command: Sequence[str], env: Mapping[str, str], interval_minutes: int) -> str:
        """The crontab line."""
        words = [f"{k}={shlex.quote(v)}" for k, v in sorted(env.items())] + [shlex.quote(w) for w in command]
        if self.log_path is not None:
            words += [">>", shlex.quote(str(self.log_path)), "2>&1"]
        schedule = f"*/{interval_minutes} * * * *" if interval_minutes < 60 else "0 * * * *"
        return f"{schedule} {' '.join(words)} {self.marker}"

    def install(self, command: Sequence[str], env: Mapping[str, str], interval_minutes: int) -> str:
        """Replace our line (if any) with a fresh one; keep every other line."""
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
        lines = [line for line in self.read() if not self._ours(line)]
        lines.append(self.render(command, env, interval_minutes))
        self._write(lines)
        return f"cron entry (every {interval_minutes} min)"

    def uninstall(self) -> bool:
        """Remove our line; False if it was not there."""
        lines = self.read()
        kept = [line for line in lines if not self._ours(line)]
        if len(kept) == len(lines):
            return False
        self._write(kept)
        return True

    def installed(self) -> str | None:
        """The installed line, or None."""
        try:
            return next((line for line in self.read() if self._ours(line)), None)
        except InstallError:
            return None


def has_systemd_user(env: Mapping[str, str], systemctl: str = "systemctl") -> bool:
    """Whether a systemd user manager is running for this user."""
    if not shutil.which(shlex.split(systemctl)[0]):
        return False
    runtime = env.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
    return Path(runtime, "systemd").is_dir()


def installers(context, *, unit_dir: Path | None = None) -> tuple[SystemdInstaller, CronInstaller]:
    """Both installers for ``context``'s profile, honouring the override variables."""
    env = context.env
    config_home = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else Path(env.get("HOME", "~")).expanduser() / ".config"
    systemd = SystemdInstaller(unit_dir or config_home / "systemd" / "user", profile=context.profile,
                               systemctl=env.get("SOONG_WATCHDOG_SYSTEMCTL") or "systemctl")
    cron = CronInstaller(profile=context.profile, crontab=env.get("SOONG_WATCHDOG_CRONTAB") or "crontab",
                         log_path=context.paths.state_dir / "watchdog" / "cron.log")
    return systemd, cron


def choose(context, method: str = "auto", *, unit_dir: Path | None = None) -> SystemdInstaller | CronInstaller:
    """The installer for ``method`` (``auto``: systemd if a user manager runs, else cron)."""
    systemd, cron = installers(context, unit_dir=unit_dir)
    if method == "systemd":
        return systemd
    if method == "cron":
        return cron
    if has_systemd_user(context.env, context.env.get("SOONG_WATCHDOG_SYSTEMCTL") or "systemctl"):
        return systemd
    return cron

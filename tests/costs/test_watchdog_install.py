"""Installing the watchdog: systemd user units (checked by systemd-analyze) or a cron line; never the real ones."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.conftest import TEST_SECRETS

FAKE_SYSTEMCTL = """#!/bin/sh
echo "$@" >> "{log}"
exit 0
"""

# A crontab(1) stand-in that keeps the table in a file: "-l" prints it, "-" replaces it from stdin.
FAKE_CRONTAB = """#!/bin/sh
table="{table}"
case "$1" in
  -l) if [ -f "$table" ]; then cat "$table"; else echo "no crontab for $(id -un)" >&2; exit 1; fi ;;
  -) cat > "$table" ;;
  *) echo "unsupported: $*" >&2; exit 2 ;;
esac
"""


def script(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def systemd_env(tmp_path):
    log = tmp_path / "systemctl.log"
    fake = script(tmp_path / "systemctl", FAKE_SYSTEMCTL.format(log=log))
    env = {"SOONG_WATCHDOG_SYSTEMCTL": str(fake), "LAMBDA_API_KEY": TEST_SECRETS["lambda_api_key"],
           "SOONG_DAEMON_TOKEN": TEST_SECRETS["daemon_token"]}
    return env, log


@pytest.fixture
def cron_env(tmp_path):
    table = tmp_path / "crontab.txt"
    fake = script(tmp_path / "crontab", FAKE_CRONTAB.format(table=table))
    env = {"SOONG_WATCHDOG_CRONTAB": str(fake), "LAMBDA_API_KEY": TEST_SECRETS["lambda_api_key"],
           "XDG_RUNTIME_DIR": str(tmp_path / "no-systemd")}
    return env, table


def unit_dir(home: Path) -> Path:
    return home / ".config" / "systemd" / "user"


def test_systemd_timer_install_status_uninstall(run_soong, systemd_env, isolated_env, tmp_path):
    env, log = systemd_env
    result = run_soong("watchdog", "install", "--method", "systemd", env=env)
    assert result.returncode == 0, result.stderr
    service = unit_dir(isolated_env) / "soong-watchdog.service"
    timer = unit_dir(isolated_env) / "soong-watchdog.timer"
    text = service.read_text() + timer.read_text()
    assert "watchdog run --once" in text and "OnUnitActiveSec=5min" in text
    exec_start = next(line for line in service.read_text().splitlines() if line.startswith("ExecStart="))
    assert Path(exec_start.split("=", 1)[1].split()[0]).is_absolute()
    for secret in TEST_SECRETS.values():
        assert secret not in text  # secrets never go into unit files
    assert f"XDG_DATA_HOME={isolated_env / '.local/share'}" in text  # the job uses this profile's ledger
    assert log.read_text().splitlines() == ["--user daemon-reload", "--user enable --now soong-watchdog.timer"]

    if shutil.which("systemd-analyze"):
        runtime = tmp_path / "runtime"
        runtime.mkdir(mode=0o700)
        check = subprocess.run(["systemd-analyze", "verify", "--user", str(timer), str(service)], capture_output=True,
                               text=True, env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)})
        assert check.returncode == 0, check.stderr

    status = run_soong("watchdog", "status", "-f", "json", env=env)
    assert status.returncode == 0 and '"Method": "systemd"' in status.stdout

    removed = run_soong("watchdog", "uninstall", "--method", "systemd", env=env)
    assert removed.returncode == 0 and "removed" in removed.stdout
    assert not service.exists() and not timer.exists()
    assert "--user disable --now soong-watchdog.timer" in log.read_text()


def test_interval_and_profile_go_into_the_timer(run_soong, systemd_env, isolated_env):
    env, _ = systemd_env
    profile_config = isolated_env / ".local/state/soong/work/config/config.yaml"
    profile_config.parent.mkdir(parents=True)
    profile_config.write_text("profiles:\n  work: {}\n")
    result = run_soong("--profile", "work", "watchdog", "install", "--method", "systemd", "--interval", "15", env=env)
    assert result.returncode == 0, result.stderr
    service = (unit_dir(isolated_env) / "soong-watchdog-work.service").read_text()
    assert "--profile work watchdog run --once" in service
    assert "OnUnitActiveSec=15min" in (unit_dir(isolated_env) / "soong-watchdog-work.timer").read_text()


def test_bad_interval_is_refused(run_soong, systemd_env, isolated_env):
    env, log = systemd_env
    result = run_soong("watchdog", "install", "--method", "systemd", "--interval", "0", env=env)
    assert result.returncode == 3 and "interval_minutes" in result.stderr and "Traceback" not in result.stderr
    assert not unit_dir(isolated_env).exists() and not log.exists()


def test_failing_systemctl_is_one_readable_error(run_soong, tmp_path):
    fake = script(tmp_path / "systemctl", "#!/bin/sh\necho 'Failed to connect to bus' >&2\nexit 1\n")
    result = run_soong("watchdog", "install", "--method", "systemd", env={"SOONG_WATCHDOG_SYSTEMCTL": str(fake)})
    assert result.returncode == 1 and "Failed to connect to bus" in result.stderr
    assert result.stderr.count("\n") == 1


def test_cron_entry_without_systemd_keeps_other_lines(run_soong, cron_env):
    env, table = cron_env
    table.write_text("0 3 * * * /usr/local/bin/backup\n")
    for _ in range(2):  # installing twice leaves one entry
        result = run_soong("watchdog", "install", env=env)
        assert result.returncode == 0, result.stderr
        assert "cron" in result.stdout
    lines = table.read_text().splitlines()
    assert lines[0] == "0 3 * * * /usr/local/bin/backup"
    ours = [line for line in lines if "soong-watchdog" in line]
    assert len(ours) == 1 and ours[0].startswith("*/5 * * * * ") and "watchdog run --once" in ours[0]
    assert TEST_SECRETS["lambda_api_key"] not in table.read_text()

    status = run_soong("watchdog", "status", "-f", "json", env=env)
    assert '"Method": "cron"' in status.stdout

    removed = run_soong("watchdog", "uninstall", env=env)
    assert removed.returncode == 0 and "cron" in removed.stdout
    assert table.read_text().splitlines() == ["0 3 * * * /usr/local/bin/backup"]
    again = run_soong("watchdog", "uninstall", env=env)
    assert again.returncode == 0 and "was not installed" in again.stdout


def test_cron_entry_runs(cron_env, tmp_path):
    """The installed line is a valid shell command that runs the watchdog (here: one pass, no provider)."""
    from soong.core.context import Context
    from soong.core.watchdog_install import CronInstaller, job_command, job_environment

    env, table = cron_env
    context = Context(env={**os.environ, **env})
    installer = CronInstaller(crontab=env["SOONG_WATCHDOG_CRONTAB"], log_path=tmp_path / "cron.log")
    installer.install(job_command(None), job_environment(context.env), 5)
    line = table.read_text().splitlines()[0]
    command = line.split(" ", 5)[5]
    subprocess.run(["sh", "-c", command], env={"PATH": "/usr/bin:/bin"}, timeout=60)
    log = (tmp_path / "cron.log").read_text()
    assert "could not list instances" in log or "no provider" in log or "secret" in log, log

"""``soong sandbox up|down|status`` driven as a user would: the ``soong`` executable in a subprocess."""

from __future__ import annotations

import json
import os
import signal
import time

from soong.sandbox import processes
from soong.sandbox.layout import SandboxLayout, read_json
from soong.sandbox.manager import Sandbox
from soong.testing.sandbox import SandboxHandle, kill_sandbox_processes, sandbox_processes


def _json(result):
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _rows(run_soong):
    return _json(run_soong("sandbox", "status", "-f", "json"))


def _by_component(rows):
    return {(r["Component"], r["Instance"]): r for r in rows}


def _cmdlines(pids):
    return [" ".join(processes.cmdline(p) or []) for p in pids]


def test_up_use_status_and_down(run_soong):
    try:
        before = _by_component(_rows(run_soong))
        assert before[("emulator", "")]["Alive"] is False and before[("emulator", "")]["Note"] == "not started"

        up = _json(run_soong("sandbox", "up", "--boot-delay", "0", "-f", "json"))
        assert up["started"] == "emulator, host" and up["profile"] == "sandbox"
        assert up["api_url"].startswith("http://127.0.0.1:") and up["api_url"].endswith("/api/v1")
        creds = read_json(SandboxLayout.from_env().credentials)
        secrets = (creds["api_key"], creds["admin_token"])

        config = _json(run_soong("--profile", "sandbox", "config", "show", "-f", "json"))
        values = {row["Key"]: row["Value"] for row in config} if isinstance(config, list) else config
        assert json.dumps(values).count(up["api_url"]) == 1
        assert "direct" in json.dumps(values)

        handle = SandboxHandle(Sandbox())
        inst = handle.launch()
        handle.wait_running(inst.id)
        rows = _by_component(_rows(run_soong))
        daemon, standin = rows[("daemon", inst.id)], rows[("standin", inst.id)]
        assert daemon["Alive"] is True and standin["Alive"] is True
        ip = handle.machine_record(inst.id)["ip"]
        assert (daemon["Address"], standin["Address"]) == (f"{ip}:8080", f"{ip}:8000")
        assert rows[("emulator", "")]["Alive"] is True and rows[("host", "")]["Alive"] is True

        # no secret on any command line, in any output
        running = sandbox_processes()
        assert len(running) >= 8
        for line in _cmdlines(running):
            assert not any(s in line for s in secrets + (handle.daemon_token(),)), line
        for result in (run_soong("sandbox", "status"), run_soong("sandbox", "up")):
            assert not any(s in result.stdout + result.stderr for s in secrets + (handle.daemon_token(),))

        down = run_soong("sandbox", "down")
        assert down.returncode == 0, down.stderr
        assert f"terminated 1 instance(s): {inst.id}" in down.stdout
        assert "no sandbox process is left" in down.stdout
        assert sandbox_processes() == []
        assert all(processes.cmdline(p) is None for p in running)
        after = _by_component(_rows(run_soong))
        assert after[("emulator", "")]["Note"] == "not started"
        assert not any(key[0] in ("daemon", "standin") for key in after)
        again = run_soong("sandbox", "down")
        assert again.returncode == 0 and "nothing was running" in again.stdout
    finally:
        run_soong("sandbox", "down")
        kill_sandbox_processes()


def test_up_twice_keeps_what_runs_and_a_stale_record_is_cleaned(run_soong):
    try:
        _json(run_soong("sandbox", "up", "--boot-delay", "0", "-f", "json"))
        sandbox = Sandbox()
        emulator, host = sandbox.record("emulator").pid, sandbox.record("host").pid

        second = _json(run_soong("sandbox", "up", "--time-scale", "60", "-f", "json"))
        assert (second["started"], second["kept"]) == ("-", "emulator, host")
        assert (sandbox.record("emulator").pid, sandbox.record("host").pid) == (emulator, host)
        assert read_json(sandbox.layout.settings)["time_scale"] == 60.0

        for pid in (emulator, host):  # a crash: the processes die, their records stay
            os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while sandbox_processes() and time.monotonic() < deadline:
            time.sleep(0.05)
        rows = _by_component(_rows(run_soong))
        assert rows[("emulator", "")]["Alive"] is False and "stale record" in rows[("emulator", "")]["Note"]

        third = _json(run_soong("sandbox", "up", "-f", "json"))
        assert third["started"] == "emulator, host" and "emulator" in third["cleaned"] and "host" in third["cleaned"]
        assert sandbox.is_up() and sandbox.record("emulator").pid != emulator
        assert read_json(sandbox.layout.settings)["time_scale"] == 1.0
    finally:
        result = run_soong("sandbox", "down")
        assert result.returncode == 0, result.stderr
        assert sandbox_processes() == []


def test_bad_options_are_one_line_errors(run_soong):
    result = run_soong("sandbox", "up", "--time-scale", "0.5")
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "--time-scale must be between 1" in result.stderr
    assert "Traceback" not in result.stderr
    assert sandbox_processes() == []


def test_up_without_a_keyring_keeps_secrets_in_the_sandbox_profile(run_soong):
    env = {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    try:
        up = run_soong("sandbox", "up", "--boot-delay", "0", env=env)
        assert up.returncode == 0, up.stderr
        secrets_file = SandboxLayout.from_env().root.parent.parent / "config" / "secrets.yaml"
        assert oct(secrets_file.stat().st_mode & 0o777) == "0o600"
        available = run_soong("--profile", "sandbox", "available", "-f", "json", env=env)
        assert available.returncode == 0, available.stderr
        assert any(row["Instance type"] == "gpu_1x_a10" for row in json.loads(available.stdout))
    finally:
        down = run_soong("sandbox", "down", env=env)
        assert down.returncode == 0, down.stderr
    assert sandbox_processes() == []


def test_failed_up_leaves_nothing_running(run_soong):
    config = SandboxLayout.from_env().root.parent.parent / "config" / "config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("lambda: [unclosed\n")
    result = run_soong("sandbox", "up", "--boot-delay", "0")
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr and str(config) in result.stderr
    assert sandbox_processes() == []
    assert config.read_text() == "lambda: [unclosed\n"
    status = _by_component(_rows(run_soong))
    assert status[("emulator", "")]["Alive"] is False

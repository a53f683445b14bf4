"""The sandbox's parts on their own: config rewrite, user-data reading, processes, addresses, profile."""

from __future__ import annotations

import os
import random
import signal
import socket
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from soong.core.bootstrap import LaunchPlan, LaunchSecrets, build_user_data
from soong.core.catalog import find_model
from soong.core.context import Context
from soong.sandbox import processes
from soong.sandbox.environment import child_env
from soong.sandbox.errors import PortInUseError, SandboxError
from soong.sandbox.host import LEDGER_REASONS, ledger_reason
from soong.sandbox.instance_setup import daemon_port, local_daemon_config, plan_instance, served_model
from soong.sandbox.layout import MARKER_ENV, InstanceFiles, SandboxLayout
from soong.sandbox.manager import choose_ip_base
from soong.sandbox.ports import ensure_free, port_is_free, require_loopback

REWRITTEN = {"bind", "state_dir", "boot_log", "token_file", "api_key_file", "provider_api_url", "sglang_metrics_url",
             "n8n_metrics_url", "time_scale", "check_interval_seconds", "forwarded_ports", "poweroff_command", "wall",
             "control_socket"}


def _document(*, sglang: bool = True, **overrides) -> tuple[str, LaunchPlan]:
    context = Context(profile="sandbox")
    spec = find_model(context.models(), "llama-3.1-8b")
    plan = LaunchPlan.from_context(context, spec, instance_name="soong-test-abc123", gpu_count=1,
                                   secrets=LaunchSecrets("key-" + "k" * 20, "tok-" + "t" * 20),
                                   services={"sglang": sglang, "n8n": False}, **overrides)
    return build_user_data(context.plugins, plan), plan


# -- from user data to the local daemon ----------------------------------------------------------------------


def test_plan_from_real_user_data(tmp_path):
    document, plan = _document(lease_hours=2.0, idle_timeout_minutes=10)
    files = InstanceFiles(tmp_path / "inst")
    result = plan_instance(document, ip="127.44.0.2", files=files, api_url="http://127.0.0.1:5000/api/v1", time_scale=60)
    config = result.daemon_config
    assert result.model == plan.model.hf_path
    assert (result.token, result.api_key) == ("tok-" + "t" * 20, "key-" + "k" * 20)
    assert "tok-" not in repr(result) and "key-" not in repr(result)
    assert config["bind"] == "127.44.0.2:8080"
    assert config["instance_name"] == "soong-test-abc123"
    assert (config["lease_hours"], config["idle_timeout_minutes"]) == (2.0, 10)
    assert config["sglang_metrics_url"] == "http://127.44.0.2:8000/metrics"
    assert config["state_dir"] == str(files.daemon_state) and config["token_file"] == str(files.token)
    assert config["poweroff_command"] == [] and config["wall"] is False and config["forwarded_ports"] == []


def test_user_data_without_sglang_runs_no_stand_in(tmp_path):
    document, _plan = _document(sglang=False)
    assert served_model(document) is None
    result = plan_instance(document, ip="127.44.0.3", files=InstanceFiles(tmp_path), api_url="http://127.0.0.1:1/api/v1",
                           time_scale=1)
    assert result.model is None and result.daemon_config["sglang_metrics_url"] == ""


@settings(max_examples=60, deadline=None)
@given(
    extra=st.dictionaries(st.sampled_from(["instance_id", "model", "webhook_url", "lease_hours", "workers",
                                           "warn_minutes", "launched_at", "hard_limit_hours"]),
                          st.one_of(st.text(max_size=20), st.integers(0, 100), st.none())),
    scale=st.floats(1, 10_000),
    interval=st.floats(0.05, 3600),
    port=st.integers(1, 65535),
    n8n=st.booleans(),
)
def test_only_machine_specific_keys_change(extra, scale, interval, port, n8n):
    rendered = dict(extra, bind=f"127.0.0.1:{port}", check_interval_seconds=interval,
                    n8n_metrics_url="http://127.0.0.1:5678/metrics" if n8n else None)
    files = InstanceFiles(Path("/srv/sandbox/inst"))
    config, notes = local_daemon_config(rendered, ip="127.9.9.9", port=daemon_port(rendered["bind"]), files=files,
                                        api_url="http://127.0.0.1:1/api/v1", time_scale=scale, model_server=True)
    assert {k: v for k, v in config.items() if k not in REWRITTEN} == {k: v for k, v in rendered.items() if k not in REWRITTEN}
    assert config["bind"] == f"127.9.9.9:{port}"
    assert config["n8n_metrics_url"] == "" and bool(notes) == n8n
    assert config["poweroff_command"] == [] and config["wall"] is False and config["control_socket"] == ""
    if scale > 1:
        assert config["check_interval_seconds"] == max(0.5, interval / scale)
    else:
        assert config["check_interval_seconds"] == interval


@pytest.mark.parametrize("bind,port", [("127.0.0.1:8080", 8080), ("0.0.0.0:9", 9), ("[::1]:8081", 8081),
                                        ("garbage", 8080), (None, 8080), ("127.0.0.1:70000", 8080)])
def test_daemon_port(bind, port):
    assert daemon_port(bind) == port


def test_every_daemon_reason_has_a_ledger_reason():
    from soong.core.types import TERMINATION_REASONS
    from soong_daemon import rules

    for reason in (*rules.REASONS, rules.REQUESTED):
        assert ledger_reason(reason) in TERMINATION_REASONS
    assert set(LEDGER_REASONS.values()) <= set(TERMINATION_REASONS)
    assert ledger_reason("something-new") is None


# -- processes ---------------------------------------------------------------------------------------------


def _sleeper(tmp_path: Path, script: str, marker: str) -> processes.ProcessRecord:
    env = dict(os.environ, **{MARKER_ENV: marker})
    return processes.spawn("sleeper", ["/bin/sh", "-c", script], log=tmp_path / "sleeper.log", env=env)


def test_spawned_process_is_recognised_and_stopped(tmp_path):
    record = _sleeper(tmp_path, "exec sleep 60", "t1")
    assert processes.is_running(record)
    assert oct((tmp_path / "sleeper.log").stat().st_mode & 0o777) == "0o600"
    impostor = processes.ProcessRecord(**{**record.__dict__, "extra": {"start_ticks": record.extra["start_ticks"] + 1}})
    assert not processes.is_running(impostor)  # same pid, other start time: a reused pid
    assert processes.stop(record, timeout=5)
    assert processes.cmdline(record.pid) is None and not processes.is_running(record)
    assert processes.stop(record) is False


def test_stop_kills_marked_children_left_by_a_dead_leader(tmp_path):
    record = _sleeper(tmp_path, "sleep 60 & sleep 60 & wait", "t2")
    deadline = time.monotonic() + 5
    while len(processes.group_members(record.pid)) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    children = [p for p in processes.group_members(record.pid) if p != record.pid]
    assert len(children) == 2 and all(processes.has_marker(p, MARKER_ENV, "t2") for p in children)
    os.kill(record.pid, signal.SIGKILL)  # the leader dies; its children live on in its group
    time.sleep(0.1)
    processes.stop(record, timeout=2, marker=(MARKER_ENV, "t2"))
    assert not processes.group_members(record.pid)
    assert not processes.marked_processes(MARKER_ENV, "t2")


def test_marked_processes_skip_others(tmp_path):
    record = _sleeper(tmp_path, "exec sleep 60", "t3")
    try:
        assert processes.marked_processes(MARKER_ENV, "t3") == [record.pid]
        assert processes.marked_processes(MARKER_ENV, "t3-other") == []
    finally:
        processes.stop(record)


# -- addresses, environment, profile ----------------------------------------------------------------------------


def test_ip_base_is_loopback_outside_127_0_0():
    for seed in range(20):
        host = choose_ip_base(random.Random(seed))
        octets = [int(x) for x in host.split(".")]
        assert octets[0] == 127 and octets[1] >= 16 and octets[3] == 2
        require_loopback(host)


def test_port_checks_name_the_address():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert not port_is_free("127.0.0.1", port)
        with pytest.raises(PortInUseError, match=f"127.0.0.1:{port} is already in use.*the emulator") as info:
            ensure_free("127.0.0.1", port, "the emulator")
        assert info.value.exit_code == 6
    assert port_is_free("127.0.0.1", port)
    with pytest.raises(SandboxError, match="not a loopback"):
        require_loopback("10.0.0.1")


def test_child_env_drops_secrets_and_marks(tmp_path):
    env = {"PATH": "/bin", "LAMBDA_API_KEY": "x", "SOONG_DAEMON_TOKEN": "y", "SOONG_SECRET_FOO": "z",
           "SOONG_EMULATOR_API_KEY": "w", "NO_PROXY": "example.com"}
    out = child_env(env, tmp_path)
    assert out["PATH"] == "/bin" and out[MARKER_ENV] == str(tmp_path)
    assert not {"LAMBDA_API_KEY", "SOONG_DAEMON_TOKEN", "SOONG_SECRET_FOO", "SOONG_EMULATOR_API_KEY"} & set(out)
    assert out["NO_PROXY"].split(",") == ["example.com", "127.0.0.0/8", "localhost"]
    assert "127.0.0.0/8" in out["no_proxy"]


def test_profile_without_keyring_keeps_secrets_in_its_own_folder(monkeypatch, tmp_path):
    from soong.sandbox.profile import store_secrets, write_profile

    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    import keyring.core

    keyring.core._keyring_backend = None
    path = write_profile(os.environ, api_url="http://127.0.0.1:4242/api/v1", ssh_key_path=None)
    layout = SandboxLayout.from_env()
    assert layout.root.parent.parent in path.parents  # under $XDG_STATE_HOME/soong/sandbox
    config = Context(profile="sandbox").config  # with the Lambda plugin's keys
    assert config.get("secrets.backend") == "file"
    assert config.get("lambda.api_url") == "http://127.0.0.1:4242/api/v1"
    assert (config.get("tunnel.backend"), config.get("services.n8n")) == ("direct", False)
    store_secrets(os.environ, "sandbox-key-1234")
    secrets_file = path.parent / "secrets.yaml"
    assert oct(secrets_file.stat().st_mode & 0o777) == "0o600"
    assert Context(profile="sandbox").secrets.get("lambda_api_key") == "sandbox-key-1234"
    assert not (Path(os.environ["XDG_CONFIG_HOME"]) / "soong").exists()  # the default profile is untouched


def test_sandbox_profile_before_up_reaches_nothing():
    config = Context(profile="sandbox").config
    assert config.get("lambda.api_url").startswith("http://127.0.0.1:9/")
    assert config.source("tunnel.backend") == "profile"


def test_host_module_runs_as_a_script():
    import subprocess

    result = subprocess.run([sys.executable, "-m", "soong.sandbox.host", "--help"], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0 and "--root" in result.stdout

"""What ``soong start`` does when the wait does not end in a ready model: Ctrl-C, a failed service, a timeout.

It never ends an instance silently and never leaves one silently: on a terminal it
asks (and says what it costs per hour), without one it leaves it running and
prints how to stop it.
"""

from __future__ import annotations

import os
import pty
import signal

import pytest

from tests.lifecycle.conftest import ledger, live_instances
from tests.lifecycle.instance_host import InstanceHost
from tests.lifecycle.test_interrupted_start import Running

pytestmark = pytest.mark.slow


def test_ctrl_c_without_a_terminal_leaves_it_running_and_says_how_to_stop_it(soong_env, emu, daemon_port, tmp_path):
    with InstanceHost(emu, tmp_path / "m", daemon_port, model_delay=600):
        start = Running()
        start.wait_for("] model loading")
        start.proc.send_signal(signal.SIGINT)
        start.wait_for("soong stop --instance-id")
        assert start.finish() == 130
        assert "$0.75/h" in start.text
        [inst] = live_instances(emu)
        assert ledger().require(inst["id"]).is_open


def test_ctrl_c_on_a_terminal_asks_and_terminates(soong_env, emu, daemon_port, tmp_path):
    master, slave = pty.openpty()
    try:
        with InstanceHost(emu, tmp_path / "m", daemon_port, model_delay=600):
            start = Running(stdin=slave)
            start.wait_for("] model loading")
            start.proc.send_signal(signal.SIGINT)
            start.wait_for("[t/L]")
            assert "$0.75/h" in start.text.splitlines()[-1]
            os.write(master, b"t\n")
            start.wait_for("terminated")
            assert start.finish() == 130
    finally:
        os.close(master)
        os.close(slave)
    assert live_instances(emu) == []
    [record] = ledger().records()
    assert record.state == "ended" and record.end_reason == "user"


def test_a_failed_model_server_stops_the_wait_and_names_where_to_look(run_soong, soong_env, emu, daemon_port, tmp_path):
    with InstanceHost(emu, tmp_path / "m", daemon_port, model_fails=True):
        result = run_soong("start", "-y", timeout=120)
    assert result.returncode == 1, result.stderr
    assert "sglang-failed" in result.stderr and "soong-boot.log" in result.stderr
    assert "left" in result.stderr and "soong stop --instance-id" in result.stderr
    [inst] = live_instances(emu)
    assert ledger().require(inst["id"]).is_open


def test_not_ready_in_time_is_unavailable_and_leaves_it_tracked(run_soong, soong_env, emu, daemon_port, tmp_path):
    with InstanceHost(emu, tmp_path / "m", daemon_port, hold=True):
        result = run_soong("start", "-y", env={"SOONG_START_READY_TIMEOUT_MINUTES": "0.02"})
    assert result.returncode == 6, result.stderr
    assert "was not ready after 1s" in result.stderr and "last: active" in result.stderr
    [inst] = live_instances(emu)
    assert ledger().require(inst["id"]).is_open


def test_on_a_terminal_a_region_without_capacity_offers_the_others_then_asks_about_the_cost(soong_env, emu):
    emu.set_capacity("gpu_1x_a10", "us-west-1", 0)
    master, slave = pty.openpty()
    try:
        start = Running("--no-wait", "--gpu", "gpu_1x_a10", "--region", "us-west-1", stdin=slave, yes=False)
        start.wait_for("Choose 1-1")
        assert "1) us-east-1" in start.text
        os.write(master, b"1\n")
        start.wait_for("[y/N]")
        assert "in us-east-1" in start.text and "$0.75/h" in start.text
        os.write(master, b"y\n")
        assert start.finish() == 0, start.text
    finally:
        os.close(master)
        os.close(slave)
    [inst] = live_instances(emu)
    assert inst["region"] == "us-east-1"


def test_the_live_display_lists_every_step_and_the_boot_phase():
    import io

    from soong.core.progress_display import LiveProgress
    from soong.core.readiness import LABELS, Progress

    out = io.StringIO()
    with LiveProgress(out, "waiting for test") as display:
        display.update(Progress("booting", 1.0))
        display.update(Progress("loading", 65.0, daemon_phase="sglang-loading"))
    text = out.getvalue()
    assert "waiting for test" in text and "boot phase sglang-loading" in text
    assert all(label in text for label in LABELS.values())
    assert "elapsed 1:0" in text

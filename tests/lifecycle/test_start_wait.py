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

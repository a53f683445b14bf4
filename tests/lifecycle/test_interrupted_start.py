"""``soong start`` killed with SIGKILL at each step between the launch and ready.

Whatever the moment, the instance must be one ``soong status`` shows and ``soong
stop`` ends, with the ledger closed: nothing launched is ever left untracked.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import time

import pytest

from soong.testing.net import default_sigint
from tests.conftest import COMMAND_OUTPUT, VENV_BIN
from tests.lifecycle.conftest import ledger, live_instances
from tests.lifecycle.instance_host import InstanceHost

pytestmark = pytest.mark.slow


class Running:
    """``soong start [-y]`` in the background, its stderr collected as it comes (prompts have no newline)."""

    def __init__(self, *args: str, stdin=subprocess.DEVNULL, yes: bool = True) -> None:
        argv = [str(VENV_BIN / "soong"), "start", *(["-y"] if yes else []), *args]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=stdin,
                                     preexec_fn=default_sigint)
        self.chunks: queue.Queue[bytes] = queue.Queue()
        self.text = ""
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while chunk := os.read(self.proc.stderr.fileno(), 4096):
            self.chunks.put(chunk)

    def wait_for(self, text: str, timeout: float = 60) -> None:
        """Wait until ``text`` appeared in stderr after the last thing waited for."""
        start = len(self.text)
        deadline = time.monotonic() + timeout
        while text not in self.text[start:]:
            try:
                self.text += self.chunks.get(timeout=0.1).decode(errors="replace")
            except queue.Empty:
                if self.proc.poll() is not None and self.chunks.empty() or time.monotonic() > deadline:
                    raise AssertionError(f"'{text}' never appeared; output so far: {self.text}") from None

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.finish()

    def finish(self) -> int:
        """Wait for the end; record the output for the secret check; the exit code."""
        code = self.proc.wait(20)
        out = self.proc.stdout.read().decode(errors="replace")
        COMMAND_OUTPUT.append(("start (background)", out + self.text))
        return code


def wait_until(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


@pytest.mark.parametrize("step", ["launch call", "booting", "active", "model loading"])
def test_start_killed_leaves_an_instance_status_shows_and_stop_ends(step, run_soong, soong_env, emu, daemon_port,
                                                                    tmp_path):
    if step == "launch call":
        emu.add_fault(path="/instance-operations/launch", action="latency", delay=2.0, times=1)
    if step == "booting":
        emu.configure(boot_delay=600)
    host = InstanceHost(emu, tmp_path / "machines", daemon_port, hold=(step == "active"), model_delay=600)
    with host:
        start = Running()
        if step == "launch call":
            wait_until(lambda: any(r.state == "intent" for r in ledger().records()))
            # The intent is written before the request is sent; kill only once the request has reached the API
            # (the latency fault counts it on arrival, then holds the answer for 2 s).
            wait_until(lambda: any(f["fired"] for f in emu.faults()))
        else:
            start.wait_for(f"] {step}")
        start.kill()
        if step == "launch call":
            wait_until(lambda: live_instances(emu))  # the request was already with the API
            assert ledger().records()[0].instance_id is None  # killed before the id came back
        [inst] = live_instances(emu)

        status = run_soong("status", "-f", "json")
        assert status.returncode == 0, status.stderr
        rows = json.loads(status.stdout)
        assert [r["Instance ID"] for r in rows] == [inst["id"]]
        assert "untracked" not in rows[0]["Status"]

        stopped = run_soong("stop", "-y")
        assert stopped.returncode == 0, stopped.stderr
        assert inst["id"] in stopped.stdout
    assert live_instances(emu) == []
    [record] = ledger().records()
    assert record.instance_id == inst["id"] and record.state == "ended" and record.end_reason == "user"

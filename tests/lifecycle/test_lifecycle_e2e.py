"""The whole lifecycle as a user runs it: start -> status -> extend -> stop.

soong runs as a subprocess against the emulator over HTTP; each instance gets
the real status daemon (under gunicorn, configured from the instance's own user
data) and the SGLang stand-in on its loopback address, reached with the
``direct`` tunnel backend.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
import requests

from tests.conftest import TEST_SECRETS
from tests.lifecycle.conftest import ledger, live_instances
from tests.lifecycle.instance_host import InstanceHost

pytestmark = pytest.mark.slow


def daemon_status(machine) -> dict:
    answer = requests.get(machine.daemon_url + "/status", timeout=5,
                          headers={"Authorization": f"Bearer {TEST_SECRETS['daemon_token']}"})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_start_status_extend_stop(run_soong, soong_env, emu, daemon_port, tmp_path):
    emu.configure(boot_delay=2.5)
    with InstanceHost(emu, tmp_path / "machines", daemon_port, model_delay=2.0) as host:
        started = run_soong("start", "-y", "--model", "llama-3.1-8b", timeout=120)
        assert started.returncode == 0, started.stderr + str(host.errors)
        for step in ("booting", "model loading"):
            assert f"] {step}" in started.stderr
        [inst] = live_instances(emu)
        api = f"http://{inst['ip']}:8000/v1"
        assert f"OpenAI-compatible API: {api}" in started.stdout
        chat = requests.post(api + "/chat/completions", timeout=5,
                             json={"model": "x", "messages": [{"role": "user", "content": "hello"}]})
        assert "you said: hello" in chat.json()["choices"][0]["message"]["content"]

        status = run_soong("status", "-f", "json")
        assert status.returncode == 0, status.stderr
        [row] = json.loads(status.stdout)
        assert row["Instance ID"] == inst["id"] and row["Status"] == "active"
        assert row["SGLang"] == "ready" and row["Tunnel"] == "up" and row["Model"] == "llama-3.1-8b"
        assert row["Idle"] is not None and 0 < row["Lease left"] <= 4 * 3600

        machine = host.machines[inst["id"]]
        before = dt.datetime.fromisoformat(daemon_status(machine)["lease"]["end"].replace("Z", "+00:00"))
        extended = run_soong("extend", "1", "-y", "-f", "json")
        assert extended.returncode == 0, extended.stderr
        after = dt.datetime.fromisoformat(daemon_status(machine)["lease"]["end"].replace("Z", "+00:00"))
        assert (after - before).total_seconds() == pytest.approx(3600, abs=1)
        assert json.loads(extended.stdout)["Lease ends"] == after.strftime("%Y-%m-%dT%H:%M:%SZ")

        refused = run_soong("extend", "8", "-y")
        assert refused.returncode == 5, refused.stderr
        assert "hard limit" in refused.stderr

        stopped = run_soong("stop", "-y")
        assert stopped.returncode == 0, stopped.stderr
    assert live_instances(emu) == []
    [record] = ledger().records(include_failed=True)
    assert record.instance_id == inst["id"] and record.state == "ended" and record.end_reason == "user"
    assert record.final_cost_usd is not None and record.launched_at is not None
    assert [hours for _at, hours, _end in ledger().extensions(inst["id"])] == [1.0]
    assert [e.kind for e in ledger().events(instance_id=inst["id"])] == ["launched", "extended", "activity", "terminated"]
    assert "no tunnel" in run_soong("tunnel", "stop").stdout

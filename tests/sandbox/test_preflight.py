"""Each sandbox instance runs its user data's own preflight program, with a stand-in nvidia-smi."""

from __future__ import annotations

import json

from soong.sandbox.layout import read_json
from soong.testing.polling import wait_until

OLD = "535.129.03"




def test_a_current_driver_passes_and_the_model_stand_in_starts(sandbox_factory):
    sb = sandbox_factory()
    inst = sb.launch(model="mistral-7b", instance_type="gpu_1x_a10")  # mistral-7b fits one A10
    record = sb.wait_running(inst.id)
    assert record["preflight"] == "passed" and "preflight-ok" in record["phases"]
    status = sb.daemon_status(inst.id)
    assert status["preflight"]["status"] == "ok"
    assert "NVIDIA driver 580.95.05" in status["preflight"]["summary"]
    assert "NVIDIA A10 with 22.5 GiB each" in status["preflight"]["summary"]
    files = sb.sandbox.layout.instance(inst.id)
    assert (files.gpu_bin / "nvidia-smi").read_text().count("NVIDIA A10, 23028, 580.95.05") == 1
    assert read_json(files.preflight_config)["boot_log"] == str(files.boot_log)


def test_an_old_driver_fails_the_preflight_starts_nothing_and_the_daemon_ends_it(sandbox_factory, run_soong):
    sb = sandbox_factory(nvidia_driver=OLD, time_scale=600)  # the 10-minute grace takes a second
    inst = sb.launch(instance_type="gpu_2x_h100_sxm5")
    wait_until(lambda: sb.machine_record(inst.id).get("preflight") == "failed", timeout=30.0, what="the preflight's result")
    files = sb.sandbox.layout.instance(inst.id)
    lines = [line for line in files.boot_log.read_text().splitlines() if "phase=preflight" in line]
    assert len(lines) == 1 and lines[0].endswith(
        f"phase=preflight-failed NVIDIA driver {OLD} is older than 580.65.06, which SGLang 0.5.23 "
        "(torch 2.14.1, CUDA 13.0) needs")
    assert (files.gpu_bin / "nvidia-smi").read_text().count(f", {OLD}\n") == 2  # the type's two GPUs
    assert sb.process(inst.id, "standin") is None  # nothing else starts after a failed preflight
    sb.wait_instance(inst.id, ("terminated", "gone"), timeout=60)
    shutdown = sb.machine_record(inst.id)["shutdown"]
    assert shutdown["reason"] == "preflight_failed" and OLD in shutdown["detail"]
    def ended_by():
        result = run_soong("--profile", "sandbox", "history", "-f", "json")
        assert result.returncode == 0, result.stderr
        row = {r["Instance ID"]: r for r in json.loads(result.stdout)}.get(inst.id) or {}
        return row.get("Ended by")

    assert wait_until(ended_by, timeout=30.0, what="the ledger's end") == "preflight"

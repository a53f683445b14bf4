"""``soong available`` against the emulator (gunicorn), as a user runs it."""

from __future__ import annotations

import json

from tests.lambda_cloud.conftest import FAST


def run(run_soong, emu, *args):
    env = dict(FAST, SOONG_LAMBDA_API_URL=emu.url, LAMBDA_API_KEY=emu.api_key)
    return run_soong("available", *args, env=env)


def test_json_lists_types_with_capacity(run_soong, emu_g):
    emu_g.set_capacity("gpu_1x_a10", "us-west-1", 0)
    result = run(run_soong, emu_g, "-f", "json")
    assert result.returncode == 0, result.stderr
    rows = {r["Instance type"]: r for r in json.loads(result.stdout)}
    assert rows["gpu_8x_h100_sxm5"]["GPU"] == "H100" and rows["gpu_8x_h100_sxm5"]["VRAM total (GB)"] == 640
    assert rows["gpu_1x_a10"]["Regions with capacity"] == ["us-east-1"]
    assert rows["gpu_1x_a10"]["$/hour"] == 0.75
    assert "gpu_1x_rtx6000" not in rows  # no capacity anywhere
    assert all(r["Regions with capacity"] for r in rows.values())


def test_all_and_filters(run_soong, emu_g):
    every = json.loads(run(run_soong, emu_g, "--all", "-f", "json").stdout)
    assert len(every) == 20 and {"cpu_4x_general", "gpu_1x_rtx6000"} <= {r["Instance type"] for r in every}
    big = json.loads(run(run_soong, emu_g, "--all", "--min-vram", "600", "-f", "json").stdout)
    assert {r["Instance type"] for r in big} == {"gpu_8x_h100_sxm5", "gpu_8x_a100_80gb_sxm4", "gpu_8x_b200_sxm6"}
    utah = json.loads(run(run_soong, emu_g, "--region", "us-west-3", "-f", "json").stdout)
    assert {r["Instance type"] for r in utah} == {"gpu_8x_h100_sxm5", "gpu_1x_h100_pcie"}


def test_table_output(run_soong, emu_g):
    result = run(run_soong, emu_g)
    assert result.returncode == 0
    assert "gpu_1x_a10" in result.stdout and "Regions with capacity" in result.stdout


def test_provider_down_is_one_line(run_soong, emu_g):
    emu_g.add_fault(path="/instance-types", action="error", status=503)
    result = run_soong("available", env=dict(FAST, SOONG_LAMBDA_API_URL=emu_g.url, LAMBDA_API_KEY=emu_g.api_key,
                                             SOONG_LAMBDA_RETRY_BUDGET_SECONDS="0.2"))
    assert result.returncode == 6 and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr

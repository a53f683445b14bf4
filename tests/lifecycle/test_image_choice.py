"""The image a launch boots, as a user sees it: ``soong start`` and ``soong models`` against the emulator (subprocesses).

The emulator serves Lambda's sample ``GET /images``: lambda-stack-24-04 for x86_64 in
us-east-1 (and most regions), for arm64 only in us-east-3.
"""

from __future__ import annotations

import json

from tests.lifecycle.conftest import ledger, live_instances

FAMILY = "lambda-stack-24-04"


def _image(emu, family: str, arch: str, region: str) -> dict:
    [image] = [i for i in emu.api("GET", "/images").json()["data"]
               if (i["family"], i["architecture"], i["region"]["name"]) == (family, arch, region)]
    return image


def _one_error_line(result, code: int, *fragments: str) -> str:
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.startswith("soong: error:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def test_dry_run_shows_the_image_family_architecture_and_the_exact_image(run_soong, soong_env, emu):
    result = run_soong("start", "--model", "mistral-7b", "--gpu", "gpu_1x_a10", "--dry-run")
    assert result.returncode == 0, result.stderr
    image = _image(emu, FAMILY, "x86_64", "us-east-1")
    assert (f"# image: {FAMILY} (Lambda Stack, Ubuntu 24.04; Python 3.12; x86_64, arm64); x86_64 image {image['id']}"
            in result.stdout)
    body = json.loads(result.stdout.split("\n", 2)[2].split("\n# user data")[0])
    assert body["image"] == {"id": image["id"]}
    assert emu.instances() == []


def test_launch_names_the_x86_64_image_of_the_family(run_soong, soong_env, emu):
    result = run_soong("start", "-y", "--no-wait", "--gpu", "gpu_1x_a10", "--model", "mistral-7b")
    assert result.returncode == 0, result.stderr
    assert f"image: {FAMILY}" in result.stderr
    [inst] = live_instances(emu)
    [raw] = [i for i in emu.instances() if i["id"] == inst["id"]]
    assert raw["image"] == {"id": _image(emu, FAMILY, "x86_64", "us-east-1")["id"]}


def test_gh200_launches_with_the_arm64_image(run_soong, soong_env, emu):
    emu.set_capacity("gpu_1x_gh200", "us-east-3", 1)
    result = run_soong("start", "-y", "--no-wait", "--gpu", "gpu_1x_gh200", "--model", "qwen3-32b-fp8")
    assert result.returncode == 0, result.stderr
    [raw] = emu.instances()
    assert raw["region"] == "us-east-3"
    assert raw["image"] == {"id": _image(emu, FAMILY, "arm64", "us-east-3")["id"]}


def test_no_image_for_the_architecture_in_the_region_is_refused_before_launching(run_soong, soong_env, emu):
    emu.set_capacity("gpu_1x_gh200", "us-east-1", 1)
    result = run_soong("start", "-y", "--no-wait", "--gpu", "gpu_1x_gh200", "--model", "qwen3-32b-fp8")
    _one_error_line(result, 8, f"no {FAMILY} image for arm64 in us-east-1", "nothing was launched", "us-east-3")
    assert emu.instances() == []
    assert ledger().records(include_failed=True) == []


def test_a_family_with_python_3_10_is_refused_before_launching(run_soong, soong_env, emu):
    result = run_soong("start", "-y", "--no-wait", env={"SOONG_LAMBDA_IMAGE_FAMILY": "lambda-stack-22-04"})
    _one_error_line(result, 3, "lambda-stack-22-04 has Python 3.10", "3.11, 3.12 or 3.13")
    dry = run_soong("start", "--dry-run", env={"SOONG_LAMBDA_IMAGE_FAMILY": "lambda-stack-22-04"})
    _one_error_line(dry, 3, "Python 3.10")
    recommend = run_soong("models", "recommend", "qwen3-8b", env={"SOONG_LAMBDA_IMAGE_FAMILY": "lambda-stack-22-04"})
    _one_error_line(recommend, 3, "Python 3.10")
    assert emu.instances() == []
    assert ledger().records(include_failed=True) == []


def test_an_unknown_family_is_refused(run_soong, soong_env, emu):
    result = run_soong("start", "-y", "--no-wait", env={"SOONG_LAMBDA_IMAGE_FAMILY": "ubuntu-24-04"})
    _one_error_line(result, 3, "image family 'ubuntu-24-04'", "known families", FAMILY)
    assert emu.instances() == []


def test_recommend_and_info_leave_gh200_out_with_an_amd64_only_family_and_say_why(run_soong, soong_env, emu):
    env = {"SOONG_LAMBDA_IMAGE_FAMILY": "gpu-base-24-04"}
    both = json.loads(run_soong("models", "recommend", "qwen3-32b-fp8", "-f", "json").stdout)
    assert {"gpu_1x_gh200": "arm64"}.items() <= {r["Instance type"]: r["Arch"] for r in both}.items()
    result = run_soong("models", "recommend", "qwen3-32b-fp8", "-f", "json", env=env)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert rows and all(r["Arch"] == "x86_64" for r in rows)
    assert "left out gpu_1x_gh200 is an arm64 host and image family gpu-base-24-04 has no arm64 image" in result.stderr
    info = json.loads(run_soong("models", "info", "qwen3-32b-fp8", "-f", "json", env=env).stdout)
    assert info["recommended"] != "gpu_1x_gh200" and info["architecture"] == "x86_64"
    assert info["image_family"].startswith("gpu-base-24-04 (")
    assert "gpu_1x_gh200 is an arm64 host" in info["excluded_by_architecture"]
    offline = json.loads(run_soong("models", "info", "qwen3-32b-fp8", "--offline", "-f", "json", env=env).stdout)
    assert offline["recommended"] != "gpu_1x_gh200" and "gpu_1x_gh200" in offline["excluded_by_architecture"]
    start = run_soong("start", "--dry-run", "--model", "qwen3-32b-fp8", "--gpu", "gpu_1x_gh200", env=env)
    _one_error_line(start, 2, "gpu_1x_gh200 cannot serve", "arm64 host")


def test_capacity_where_the_image_is_missing_is_not_used(run_soong, soong_env, emu):
    emu.set_capacity("gpu_1x_gh200", "us-east-1", 1)
    emu.set_capacity("gpu_1x_gh200", "us-east-3", 1)
    result = run_soong("start", "-y", "--no-wait", "--gpu", "gpu_1x_gh200", "--model", "qwen3-32b-fp8",
                       env={"SOONG_LAMBDA_DEFAULT_REGION": "us-east-1"})
    assert result.returncode == 0, result.stderr
    assert f"gpu_1x_gh200 has capacity in us-east-1, where {FAMILY} has no arm64 image" in result.stderr
    [raw] = emu.instances()
    assert raw["region"] == "us-east-3" and raw["image"] == {"id": _image(emu, FAMILY, "arm64", "us-east-3")["id"]}


def test_the_recommendation_skips_a_type_whose_capacity_has_no_image(run_soong, soong_env, emu):
    """gh200 is the cheapest fit for qwen3-32b-fp8, but its only capacity is where no arm64 image exists."""
    emu.set_capacity("gpu_1x_gh200", "us-east-1", 1)
    result = run_soong("start", "--dry-run", "--model", "qwen3-32b-fp8")
    assert result.returncode == 0, result.stderr
    assert '"instance_type_name": "gpu_1x_gh200"' not in result.stdout
    assert "x86_64 image" in result.stdout


def test_dry_run_without_capacity_shows_a_region_where_the_image_exists(run_soong, soong_env, emu):
    result = run_soong("start", "--dry-run", "--model", "qwen3-32b-fp8", "--gpu", "gpu_1x_gh200")
    assert result.returncode == 0, result.stderr
    assert "the request below names us-east-3" in result.stderr
    assert f"arm64 image {_image(emu, FAMILY, 'arm64', 'us-east-3')['id']}" in result.stdout
    assert emu.instances() == []

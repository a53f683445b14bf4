"""The preflight as the instance runs it: the embedded program, its rendered config, a stand-in nvidia-smi."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from soong.core.bootstrap import build_user_data, file_content, split_user_data
from soong.plugins.sglang import platform, preflight, preflight_part, scripts
from soong.sandbox import gpu_standin
from tests.models.helpers import write_files

LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ phase=(?P<phase>preflight-(ok|failed)) (?P<message>.+)$")
OLD_DRIVER_LINE = ("NVIDIA driver 535.129.03 is older than 580.65.06, which SGLang 0.5.23 "
                   "(torch 2.14.1, CUDA 13.0) needs")


@pytest.fixture
def rendered(host, make_plan, tmp_path):
    """``render(**plan) -> (program path, config dict)``: what the document writes, installed under tmp_path."""

    def render(**overrides):
        files = write_files(build_user_data(host, make_plan(**overrides)))
        program = tmp_path / "lib" / "preflight.py"
        program.parent.mkdir(exist_ok=True)
        program.write_bytes(file_content(files[preflight_part.PREFLIGHT_PROGRAM_PATH]))
        config = json.loads(file_content(files[preflight_part.PREFLIGHT_CONFIG_PATH]))
        return program, config

    return render


def run_program(program, config, tmp_path, gpus, *, python=sys.executable):
    """Run the program with ``config`` (paths made local) and a stand-in nvidia-smi for ``gpus`` (None: no nvidia-smi)."""
    config = dict(config, boot_log=str(tmp_path / "boot.log"), failed_marker=str(tmp_path / "state" / "failed"),
                  local_data_dir=str(tmp_path / "data"), fs_mount=str(tmp_path / "nfs" / "team-fs"))
    path = tmp_path / "preflight.json"
    path.write_text(json.dumps(config))
    bin_dir = tmp_path / "bin"
    if gpus is not None:
        gpu_standin.install(bin_dir, gpus)
    elif (bin_dir / "nvidia-smi").exists():
        (bin_dir / "nvidia-smi").unlink()
    env = dict(os.environ, PATH=f"{bin_dir}:/usr/bin:/bin")
    result = subprocess.run([python, str(program), "--config", str(path)], env=env, capture_output=True, text=True,
                            timeout=60)
    lines = (tmp_path / "boot.log").read_text().splitlines() if (tmp_path / "boot.log").exists() else []
    return result, [LINE.match(line).groupdict() for line in lines]


def a10(driver=gpu_standin.DEFAULT_DRIVER, count=1):
    return [gpu_standin.StandinGpu("NVIDIA A10", 23028, driver)] * count


def test_the_rendered_config_carries_the_platform_facts_and_the_plan(rendered, make_plan):
    from soong.core import vram

    _, config = rendered(model_id="llama-3.1-8b", gpu_count=1, instance_type="gpu_1x_a10")
    plan = make_plan(model_id="llama-3.1-8b", gpu_count=1)
    assert config["min_nvidia_driver"] == list(platform.MIN_NVIDIA_DRIVER)
    assert config["min_python"] == list(platform.MIN_PYTHON) and config["min_glibc"] == list(platform.MIN_GLIBC)
    assert config["wheel_pythons"] == [list(v) for v in platform.WHEEL_PYTHONS]
    assert config["per_gpu_gib"] == round(vram.estimate(plan.model, plan.context, tp_size=1).per_gpu_gib, 1)
    assert config["gpu_count"] == 1 and config["instance_type"] == "gpu_1x_a10"
    assert config["fs_mount"] == "/lambda/nfs/team-fs" and config["weights_gib"] > 10
    assert config["failed_marker"] == scripts.PREFLIGHT_FAILED_MARKER


def test_a_machine_that_fits_passes_and_logs_a_summary(rendered, tmp_path):
    program, config = rendered(model_id="mistral-7b", instance_type="gpu_1x_a10")  # fits one A10
    result, lines = run_program(program, config, tmp_path, a10())
    assert result.returncode == 0, result.stdout + result.stderr
    assert [line["phase"] for line in lines] == ["preflight-ok"]
    summary = lines[0]["message"]
    assert f"Python {sys.version_info[0]}.{sys.version_info[1]}" in summary
    assert "NVIDIA driver 580.95.05" in summary and "NVIDIA A10 with 22.5 GiB each" in summary
    assert not (tmp_path / "state" / "failed").exists()


def test_an_old_driver_fails_with_the_one_line_reason(rendered, tmp_path):
    program, config = rendered(model_id="mistral-7b", instance_type="gpu_1x_a10")  # fits one A10
    result, lines = run_program(program, config, tmp_path, a10("535.129.03"))
    assert result.returncode == preflight.EXIT_FAILED
    assert lines == [{"phase": "preflight-failed", "message": OLD_DRIVER_LINE}]
    assert (tmp_path / "state" / "failed").read_text().strip() == OLD_DRIVER_LINE


@pytest.mark.parametrize("case, gpus, change, expected", [
    ("no nvidia-smi", None, {}, "no NVIDIA driver: nvidia-smi is not installed"),
    ("no GPU listed", [], {}, "no NVIDIA driver: nvidia-smi lists no GPU"),
    ("too few GPUs", a10(count=1), {"gpu_count": 2, "instance_type": "gpu_2x_a10"},
     "1 GPU(s) found, the plan needs 2 (gpu_2x_a10)"),
    ("too little memory", a10(), {"per_gpu_gib": 30.0}, "GPU 0 (NVIDIA A10) has 22.5 GiB, the plan needs 30.0 GiB per GPU"),
    ("python without wheels", a10(), {"wheel_pythons": [[3, 99]], "min_python": [3, 99]},
     f"Python {sys.version_info[0]}.{sys.version_info[1]} cannot install SGLang 0.5.23: its wheels are for Python 3.99 only"),
    ("old glibc", a10(), {"min_glibc": [9, 99]}, "is older than 9.99, which SGLang 0.5.23's wheels need"),
    ("full disk", a10(), {"weights_gib": 10.0 ** 9, "disk_margin_gib": 5.0}, "GiB free at"),
])
def test_each_check_fails_with_its_message(rendered, tmp_path, case, gpus, change, expected):
    program, config = rendered(model_id="mistral-7b", instance_type="gpu_1x_a10")  # fits one A10
    result, lines = run_program(program, {**config, **change}, tmp_path, gpus)
    assert result.returncode == preflight.EXIT_FAILED, (case, result.stdout, result.stderr)
    assert [line["phase"] for line in lines] == ["preflight-failed"]
    assert expected in lines[0]["message"], lines[0]["message"]


def test_the_disk_check_looks_where_hf_home_will_be(tmp_path):
    config = {"fs_mount": str(tmp_path / "nfs" / "x"), "local_data_dir": str(tmp_path / "local" / "data")}
    assert preflight.hf_home_base(config) == config["local_data_dir"]  # not mounted: local disk
    assert preflight.hf_home_base({"fs_mount": "/", "local_data_dir": "/nope"}) == "/"  # a mount point: there
    assert preflight.existing_ancestor(str(tmp_path / "a" / "b" / "c")) == str(tmp_path)
    with pytest.raises(preflight.CheckFailed, match=r"^1\.0 GiB free at .*, the weights need 15\.0 GiB \(10\.0 GiB \+ 5\.0"):
        preflight.check_disk({**config, "weights_gib": 10, "disk_margin_gib": 5}, free=1.0)


def test_a_stand_in_that_answers_another_query_is_refused(tmp_path):
    gpu_standin.install(tmp_path, a10())
    wrong = subprocess.run([str(tmp_path / "nvidia-smi"), "-L"], capture_output=True, text=True)
    assert wrong.returncode == 2 and "answers only" in wrong.stderr
    right = subprocess.run([str(tmp_path / "nvidia-smi"), *preflight.NVIDIA_SMI_ARGS], capture_output=True, text=True)
    assert right.stdout == "NVIDIA A10, 23028, 580.95.05\n"


def test_unexpected_nvidia_smi_output_is_a_failure_not_a_crash():
    def answering(stdout, returncode=0):
        return lambda *a, **k: subprocess.CompletedProcess(a, returncode, stdout, "")

    with pytest.raises(preflight.CheckFailed, match="unexpected line"):
        preflight.query_gpus(answering("NVIDIA A10, 23028\n"))
    with pytest.raises(preflight.CheckFailed, match="failed with status 9"):
        preflight.query_gpus(answering("NVIDIA-SMI has failed because it couldn't communicate with the driver", 9))
    assert preflight.query_gpus(answering("NVIDIA H100 80GB HBM3, 81559, 580.95.05\n\n")) == [
        ("NVIDIA H100 80GB HBM3", 81559.0, "580.95.05")]


def test_every_check_has_a_message_and_the_order_is_documented():
    names = [name for name, _ in preflight.CHECKS]
    assert set(names) == set(preflight.MESSAGES)
    doc = (preflight_part.Path(__file__).resolve().parents[2] / "docs" / "bootstrap.md").read_text()
    for name in names:
        assert f"| `{name}` |" in doc, f"docs/bootstrap.md lacks the {name} check"


def test_the_shell_part_logs_a_program_that_cannot_run(host, make_plan, tmp_path):
    document = build_user_data(host, make_plan())
    part = next(p for p in split_user_data(document) if p.filename.endswith("-soong-preflight.sh"))
    files = write_files(document)
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "bootlog").write_bytes(file_content(files[f"{scripts.LIB}/bootlog"]))
    (lib / "bootlog").chmod(0o755)
    script = tmp_path / "preflight.sh"
    script.write_text(part.text)
    env = dict(os.environ, SOONG_LIB=str(lib), SOONG_BOOT_LOG=str(tmp_path / "boot.log"),
               SOONG_PREFLIGHT_MARKER=str(tmp_path / "failed"), SOONG_PREFLIGHT_PYTHON=str(tmp_path / "no-python"))
    result = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    assert result.returncode == 1
    log = (tmp_path / "boot.log").read_text()
    assert f"phase=preflight-failed the image has no {tmp_path / 'no-python'} to run the preflight with" in log
    assert (tmp_path / "failed").exists()


def test_later_parts_start_nothing_after_a_failed_preflight(host, make_plan, tmp_path):
    parts = {p.filename.split("-", 1)[1]: p.text for p in split_user_data(build_user_data(host, make_plan()))
             if p.content_type == "text/x-shellscript"}
    (tmp_path / "failed").write_text(OLD_DRIVER_LINE + "\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "systemctl-calls"
    (bin_dir / "systemctl").write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\n")
    (bin_dir / "systemctl").chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", SOONG_PREFLIGHT_MARKER=str(tmp_path / "failed"))
    for name in ("soong-fs.sh", "soong-sglang.sh", "soong-n8n.sh"):
        script = tmp_path / name
        script.write_text(parts[name])
        result = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
        assert result.returncode == 0 and "the preflight failed (NVIDIA driver 535.129.03" in result.stderr
    assert not calls.exists()
    (tmp_path / "failed").unlink()  # without the marker they do start their units
    script = tmp_path / "soong-fs.sh"
    assert subprocess.run(["bash", str(script)], env=env).returncode == 0
    assert "start --no-block soong-fs.service" in calls.read_text()


def test_no_preflight_without_sglang(host, make_plan):
    document = build_user_data(host, make_plan(services={"sglang": False, "n8n": True}))
    assert preflight_part.PREFLIGHT_CONFIG_PATH not in write_files(document)


@given(st.lists(st.integers(min_value=0, max_value=999), min_size=1, max_size=4))
def test_versions_parse_and_compare_as_numbers(parts):
    text = ".".join(str(p) for p in parts)
    assert preflight.parse_version(text) == tuple(parts)
    if len(parts) == 3:
        assert preflight.parse_version(preflight.version_text(tuple(parts))) == tuple(parts)


@given(st.tuples(st.integers(0, 999), st.integers(0, 99), st.integers(0, 99)))
def test_the_driver_check_agrees_with_tuple_order(version):
    driver = f"{version[0]}.{version[1]:02d}.{version[2]:02d}"
    config = {"min_nvidia_driver": [580, 65, 6], "sglang_version": "0.5.23", "torch_version": "2.14.1",
              "cuda_runtime": "13.0"}
    gpus = [("NVIDIA A10", 23028.0, driver)]
    if version >= (580, 65, 6):
        assert preflight.check_driver(config, gpus) == f"NVIDIA driver {driver}"
    else:
        with pytest.raises(preflight.CheckFailed, match=f"^NVIDIA driver {re.escape(driver)} is older than 580.65.06"):
            preflight.check_driver(config, gpus)


@pytest.mark.parametrize("bad", ["", "580", "abc", "580.x.1", "1..2"])
def test_bad_versions_are_refused(bad):
    if bad == "580":
        assert preflight.parse_version(bad) == (580,)
        return
    with pytest.raises(ValueError):
        preflight.parse_version(bad)


def _interpreters():
    """Other CPython 3 interpreters on this machine (pyenv's, the system's), by (major, minor)."""
    import glob
    import pwd
    from pathlib import Path

    home = Path(pwd.getpwuid(os.getuid()).pw_dir)  # the tests' HOME is a temporary one
    found = {}
    for path in sorted(glob.glob(str(home / ".pyenv" / "versions" / "3.*" / "bin" / "python3")) +
                       glob.glob("/usr/bin/python3.[0-9]*")):
        probe = subprocess.run([path, "-c", "import sys; print(sys.version_info[0], sys.version_info[1])"],
                               capture_output=True, text=True)
        if probe.returncode == 0 and probe.stdout.strip():
            major, minor = map(int, probe.stdout.split())
            if (major, minor) >= (3, 8):
                found.setdefault((major, minor), path)
    return found


def test_the_program_runs_on_each_image_python_and_judges_it(rendered, tmp_path):
    interpreters = _interpreters()
    if len(interpreters) < 2:
        pytest.skip("no other Python interpreters on this machine")
    program, config = rendered(model_id="mistral-7b", instance_type="gpu_1x_a10")  # fits one A10
    for version, path in sorted(interpreters.items()):
        run_dir = tmp_path / f"py{version[0]}{version[1]}"
        run_dir.mkdir()
        result, lines = run_program(program, config, run_dir, a10(), python=path)
        if version in platform.WHEEL_PYTHONS:
            assert result.returncode == 0, (version, result.stdout, result.stderr)
            assert lines[0]["phase"] == "preflight-ok"
        else:
            assert result.returncode == 1, (version, result.stdout, result.stderr)
            assert lines == [{"phase": "preflight-failed", "message":
                              f"Python {version[0]}.{version[1]} cannot install SGLang 0.5.23: its wheels are for "
                              "Python 3.11, 3.12, 3.13 only"}]


def test_a_bind_mount_counts_as_mounted_like_mountpoint_says(tmp_path):
    """The rehearsal bind-mounts a folder as the NFS; Python's os.path.ismount misses those (same device)."""
    fs = tmp_path / "nfs" / "team fs"
    fs.mkdir(parents=True)
    escaped = str(fs).replace(" ", "\\040")
    info = tmp_path / "mountinfo"
    info.write_text("22 1 252:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n"
                    f"95 22 252:1 /srv/models {escaped} rw,relatime shared:1 - ext4 /dev/vda1 rw\n")
    assert preflight.is_mounted(str(fs), str(info))
    assert not preflight.is_mounted(str(tmp_path / "nfs"), str(info))
    assert preflight.mount_points(str(tmp_path / "missing")) is None
    assert preflight.is_mounted("/", str(tmp_path / "missing"))  # without the list: os.path.ismount

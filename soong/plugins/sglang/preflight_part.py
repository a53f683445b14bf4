"""The preflight's user-data part: its program, its inputs and the shell part that runs it (order 15).

The program (:mod:`soong.plugins.sglang.preflight`, standard library only) is
embedded as-is and run with the image's ``/usr/bin/python3`` right after the
daemon's part, before the file system, SGLang and n8n parts. Its inputs are
computed here, at render time, from the launch plan and SGLang's platform needs,
and written to :data:`PREFLIGHT_CONFIG_PATH` (no secrets).
"""

from __future__ import annotations

import json
from pathlib import Path

from soong.core.bootstrap import BOOT_LOG, LaunchPlan, UserDataPart
from soong.plugins.sglang import platform, scripts

PREFLIGHT_PROGRAM_PATH = f"{scripts.LIB}/preflight.py"
PREFLIGHT_CONFIG_PATH = "/etc/soong/preflight.json"
#: Written when the preflight fails; the later parts start nothing while it exists.
PREFLIGHT_FAILED_MARKER = scripts.PREFLIGHT_FAILED_MARKER
#: Where the file-system part puts the data when no persistent file system is mounted.
LOCAL_DATA_DIR = "/var/lib/soong-data"
#: The interpreter the preflight runs with: the image's own.
IMAGE_PYTHON = "/usr/bin/python3"
#: Disk the weights need beyond their size: a fixed reserve plus a share of the size
#: (the Hub's download keeps partial files, and SGLang's and pip's caches grow too).
DISK_MARGIN_GIB = 5.0
DISK_MARGIN_SHARE = 0.1
#: The shell part's order: after the daemon (10), before the file system (20).
PREFLIGHT_ORDER = 15


def program_text() -> str:
    """The preflight program exactly as it is embedded."""
    return (Path(__file__).resolve().parent / "preflight.py").read_text(encoding="utf-8")


def preflight_config(plan: LaunchPlan) -> dict:
    """The preflight's inputs for ``plan`` (see the program's docstring for each key)."""
    from soong.core import vram

    estimate = vram.estimate(plan.model, plan.context, tp_size=plan.tp_size)
    weights = vram.weights_gib(plan.model)
    torch_version = platform.TORCH_PIN.partition("==")[2] or platform.TORCH_PIN
    return {
        "model": plan.model.id,
        "instance_type": plan.instance_type or "",
        "sglang_version": platform.SGLANG_VERSION,
        "torch_version": torch_version,
        "cuda_runtime": platform.CUDA_RUNTIME,
        "min_python": list(platform.MIN_PYTHON),
        "wheel_pythons": [list(v) for v in platform.WHEEL_PYTHONS],
        "min_glibc": list(platform.MIN_GLIBC),
        "min_nvidia_driver": list(platform.MIN_NVIDIA_DRIVER),
        "gpu_count": plan.tp_size,
        "per_gpu_gib": round(estimate.per_gpu_gib, 1),
        "weights_gib": round(weights, 1),
        "disk_margin_gib": round(DISK_MARGIN_GIB + DISK_MARGIN_SHARE * weights, 1),
        "fs_mount": plan.fs_mount,
        "local_data_dir": LOCAL_DATA_DIR,
        "boot_log": BOOT_LOG,
        "failed_marker": PREFLIGHT_FAILED_MARKER,
    }


def preflight_parts(plan: LaunchPlan) -> list[UserDataPart]:
    """The program and its config (cloud-config) and the shell part that runs it."""
    config_text = json.dumps(preflight_config(plan), indent=1, sort_keys=True) + "\n"
    files = [
        {"path": PREFLIGHT_PROGRAM_PATH, "content": program_text(), "owner": "root:root", "permissions": "0755"},
        {"path": PREFLIGHT_CONFIG_PATH, "content": config_text, "owner": "root:root", "permissions": "0644"},
    ]
    run = scripts.fill(scripts.PREFLIGHT_SH, PYTHON=IMAGE_PYTHON, CONFIG=PREFLIGHT_CONFIG_PATH,
                       MARKER=PREFLIGHT_FAILED_MARKER)
    return [UserDataPart("soong-preflight", "cloud-config", {"write_files": files}, order=PREFLIGHT_ORDER),
            UserDataPart("soong-preflight.sh", "shellscript", run, order=PREFLIGHT_ORDER)]

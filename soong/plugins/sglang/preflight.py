#!/usr/bin/env python3
"""soong preflight: can this machine serve the planned model, before anything big is installed?

This file is embedded as-is in the user data (``/usr/local/lib/soong/preflight.py``)
and run with the image's own ``/usr/bin/python3`` right after the status daemon is
up, so it uses the standard library only and runs on any Python 3.8 or newer. Its
inputs are a small JSON file written at launch (``/etc/soong/preflight.json``, no
secrets; see :func:`soong.plugins.sglang.preflight_part.preflight_config`):

``min_python``, ``wheel_pythons``, ``min_glibc``, ``min_nvidia_driver``
    SGLang's machine needs (``soong/plugins/sglang/platform.py``);
``sglang_version``, ``torch_version``, ``cuda_runtime``
    named in the messages;
``gpu_count``, ``per_gpu_gib``, ``instance_type``
    the plan: tensor-parallel size and the memory each GPU must hold;
``weights_gib``, ``disk_margin_gib``, ``fs_mount``, ``local_data_dir``
    the weights' size and where ``HF_HOME`` will be (the persistent file system
    when it is mounted, else the local data folder);
``boot_log``, ``failed_marker``
    where the result goes.

Every check is in :data:`CHECKS` with its failure message in :data:`MESSAGES`
(one line each; docs/bootstrap.md lists them, and the boot rehearsal imports
them). The first failing check ends the run: the boot log gets
``<time> phase=preflight-failed <message>``, ``failed_marker`` is written (the
later parts start nothing while it exists) and the exit status is 1. When all
pass, ``phase=preflight-ok <summary>`` and exit 0. Any other exit status means
the program itself could not run.

The GPUs are read with exactly :data:`NVIDIA_SMI_ARGS` (one CSV line per GPU:
``NVIDIA A10, 23028, 580.95.05``); a stand-in ``nvidia-smi`` (the sandbox, the
boot rehearsal) must answer that query.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

#: The one nvidia-smi query the preflight makes (contracts: exactly this).
NVIDIA_SMI_ARGS = ("--query-gpu=name,memory.total,driver_version", "--format=csv,noheader,nounits")
NVIDIA_SMI_TIMEOUT = 60

#: Exit statuses.
EXIT_PASSED = 0
EXIT_FAILED = 1

#: The checks, in the order they run: (name, what it checks).
CHECKS = (
    ("python", "the image's python3 is a version SGLang's pinned wheels exist for"),
    ("glibc", "the C library is at least what SGLang's manylinux wheels need"),
    ("nvidia-smi", "an NVIDIA driver answers nvidia-smi"),
    ("driver", "the NVIDIA driver is at least what the pinned torch's CUDA runtime needs"),
    ("gpu-count", "at least as many GPUs as the plan's tensor-parallel size"),
    ("gpu-memory", "each GPU holds what the plan needs per GPU"),
    ("disk", "free disk where HF_HOME will be for the weights and a margin"),
)

#: The failure message of each check (``str.format`` fields filled at run time).
MESSAGES = {
    "python": "Python {found} cannot install SGLang {sglang}: its wheels are for Python {wheels} only",
    "glibc": "glibc {found} is older than {need}, which SGLang {sglang}'s wheels need",
    "nvidia-smi": "no NVIDIA driver: nvidia-smi {why}",
    "driver": "NVIDIA driver {found} is older than {need}, which SGLang {sglang} (torch {torch}, CUDA {cuda}) needs",
    "gpu-count": "{found} GPU(s) found, the plan needs {need} ({instance_type})",
    "gpu-memory": "GPU {index} ({name}) has {found} GiB, the plan needs {need} GiB per GPU",
    "disk": "{free} GiB free at {path}, the weights need {need} GiB ({weights} GiB + {margin} GiB margin)",
}

#: Boot-log phases.
PHASE_OK = "preflight-ok"
PHASE_FAILED = "preflight-failed"


class CheckFailed(Exception):
    """One check failed; ``check`` is its name and the message is the one line for the boot log."""

    def __init__(self, check: str, **fields: object) -> None:
        self.check = check
        super().__init__(MESSAGES[check].format(**fields))


# -- versions ------------------------------------------------------------------------------------


def parse_version(text: str) -> tuple:
    """``"580.65.06"`` -> ``(580, 65, 6)``; ValueError when a part is not a number."""
    parts = str(text).strip().split(".")
    if not parts or not all(part.strip().isdigit() for part in parts):
        raise ValueError(f"not a version: {text!r}")
    return tuple(int(part) for part in parts)


def version_text(version) -> str:
    """``(580, 65, 6)`` as ``580.65.06`` (driver style); two parts as ``3.11``."""
    version = tuple(version)
    if len(version) == 3:
        return f"{version[0]}.{version[1]}.{version[2]:02d}"
    return ".".join(str(part) for part in version)


def gib(value: float) -> str:
    """A GiB figure for a message: one decimal."""
    return f"{value:.1f}"


# -- the machine -----------------------------------------------------------------------------------


def glibc_version() -> tuple | None:
    """The running C library's version if it is glibc (``os.confstr``), else None."""
    try:
        text = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError, AttributeError):
        return None
    name, _, version = text.partition(" ")
    if name != "glibc":
        return None
    try:
        return parse_version(version)
    except ValueError:
        return None


def query_gpus(run=subprocess.run) -> list:
    """``[(name, memory MiB, driver version text), ...]`` from nvidia-smi; CheckFailed("nvidia-smi") when it cannot tell."""
    try:
        result = run(["nvidia-smi", *NVIDIA_SMI_ARGS], capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT)
    except FileNotFoundError:
        raise CheckFailed("nvidia-smi", why="is not installed") from None
    except subprocess.TimeoutExpired:
        raise CheckFailed("nvidia-smi", why=f"did not answer in {NVIDIA_SMI_TIMEOUT} s") from None
    except OSError as exc:
        raise CheckFailed("nvidia-smi", why=f"cannot run ({exc.strerror or exc})") from None
    if result.returncode != 0:
        said = " ".join((result.stdout + " " + result.stderr).split())[:160]
        raise CheckFailed("nvidia-smi", why=f"failed with status {result.returncode}" + (f" ({said})" if said else ""))
    gpus = []
    for line in result.stdout.splitlines():
        if not line.strip():
            continue
        fields = [field.strip() for field in line.split(",")]
        if len(fields) != 3:
            raise CheckFailed("nvidia-smi", why=f"answered an unexpected line: {line.strip()[:120]!r}")
        name, memory, driver = fields
        try:
            memory_mib = float(memory)
            parse_version(driver)
        except ValueError:
            raise CheckFailed("nvidia-smi", why=f"answered an unexpected line: {line.strip()[:120]!r}") from None
        gpus.append((name, memory_mib, driver))
    if not gpus:
        raise CheckFailed("nvidia-smi", why="lists no GPU")
    return gpus


def mount_points(mountinfo: str = "/proc/self/mountinfo") -> set | None:
    """Every mount point the kernel lists (bind mounts included); None when the list cannot be read."""
    try:
        with open(mountinfo, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    points = set()
    for line in lines:
        fields = line.split(" ")
        if len(fields) > 4:  # the 5th field is the mount point, with space, tab, newline, backslash as octal escapes
            points.add(fields[4].replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n")
                       .replace("\\134", "\\"))
    return points


def is_mounted(path: str, mountinfo: str = "/proc/self/mountinfo") -> bool:
    """Whether ``path`` is a mount point, as ``mountpoint -q`` tells (a bind mount counts too)."""
    points = mount_points(mountinfo)
    try:
        if points is not None:
            return os.path.realpath(path) in points and os.path.isdir(path)
        return os.path.ismount(path)
    except OSError:
        return False


def existing_ancestor(path: str) -> str:
    """``path`` or its nearest existing parent (a folder made later lives on that file system)."""
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def hf_home_base(config: dict) -> str:
    """Where the weights will go: the persistent file system when it is mounted, else the local data folder."""
    mount = config.get("fs_mount")
    if mount and is_mounted(mount):
        return mount
    return config.get("local_data_dir") or "/var/lib/soong-data"


def free_gib(path: str) -> float:
    """Free GiB for an unprivileged writer on the file system holding ``path``."""
    stats = os.statvfs(existing_ancestor(path))
    return stats.f_bavail * stats.f_frsize / 1024 ** 3


# -- the checks ----------------------------------------------------------------------------------------


def check_python(config: dict, version=None) -> str:
    """The interpreter running this (the image's python3) can install the pinned wheels."""
    version = tuple(version or sys.version_info[:2])[:2]
    wheels = [tuple(v) for v in config["wheel_pythons"]]
    if version < tuple(config["min_python"]) or version not in wheels:
        raise CheckFailed("python", found=version_text(version), sglang=config["sglang_version"],
                          wheels=", ".join(version_text(v) for v in wheels))
    return f"Python {version_text(version)}"


def check_glibc(config: dict, version=None) -> str:
    """glibc is new enough (a machine without glibc cannot install manylinux wheels either)."""
    found = version if version is not None else glibc_version()
    need = tuple(config["min_glibc"])
    if found is None or tuple(found) < need:
        raise CheckFailed("glibc", found=version_text(found) if found else "(none: not a glibc system)",
                          need=version_text(need), sglang=config["sglang_version"])
    return f"glibc {version_text(found)}"


def check_driver(config: dict, gpus: list) -> str:
    """The driver (the lowest any GPU reports) is at least the CUDA runtime's minimum."""
    need = tuple(config["min_nvidia_driver"])
    oldest = min((driver for _, _, driver in gpus), key=parse_version)
    if parse_version(oldest) < need:
        raise CheckFailed("driver", found=oldest, need=version_text(need), sglang=config["sglang_version"],
                          torch=config["torch_version"], cuda=config["cuda_runtime"])
    return f"NVIDIA driver {oldest}"


def check_gpu_count(config: dict, gpus: list) -> str:
    """At least ``gpu_count`` GPUs."""
    need = int(config["gpu_count"])
    if len(gpus) < need:
        raise CheckFailed("gpu-count", found=len(gpus), need=need, instance_type=config.get("instance_type") or "the plan")
    return f"{len(gpus)} GPU(s)"


def check_gpu_memory(config: dict, gpus: list) -> str:
    """Each of the first ``gpu_count`` GPUs holds ``per_gpu_gib``."""
    need = float(config["per_gpu_gib"])
    used = gpus[: max(1, int(config["gpu_count"]))]
    for index, (name, memory_mib, _) in enumerate(used):
        if memory_mib / 1024 < need:
            raise CheckFailed("gpu-memory", index=index, name=name, found=gib(memory_mib / 1024), need=gib(need))
    smallest = min(memory for _, memory, _ in used) / 1024
    return f"{gpus[0][0]} with {gib(smallest)} GiB each ({gib(need)} needed)"


def check_disk(config: dict, free=None) -> str:
    """Free disk where HF_HOME will be: the weights plus a margin."""
    path = hf_home_base(config)
    weights = float(config["weights_gib"])
    margin = float(config["disk_margin_gib"])
    need = weights + margin
    available = free_gib(path) if free is None else free
    if available < need:
        raise CheckFailed("disk", free=gib(available), path=path, need=gib(need), weights=gib(weights), margin=gib(margin))
    return f"{gib(available)} GiB free at {path} ({gib(need)} needed)"


def run_checks(config: dict, *, gpus=None) -> str:
    """Every check in order; the summary line when all pass, CheckFailed at the first that fails."""
    summary = [check_python(config), check_glibc(config)]
    gpus = query_gpus() if gpus is None else gpus
    summary += [check_driver(config, gpus), check_gpu_count(config, gpus), check_gpu_memory(config, gpus),
                check_disk(config)]
    return ", ".join(summary)


# -- reporting -----------------------------------------------------------------------------------------


def boot_log_line(phase: str, message: str, now: float | None = None) -> str:
    """One boot-log line: ``<ISO-8601 UTC time> phase=<phase> <message>``."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if now is None else now))
    return f"{stamp} phase={phase} {' '.join(message.split())}\n"


def append_line(path: str, line: str) -> None:
    """Append ``line`` to ``path`` (created 0644 if missing)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        handle.write(line)


def write_marker(path: str, reason: str) -> None:
    """Write the failure marker the later parts look for."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(reason + "\n")


def main(argv=None) -> int:
    """Run the checks with the config file; log the result; 0 passed, 1 failed, 2 could not run."""
    parser = argparse.ArgumentParser(prog="soong-preflight", description="check the machine before the bootstrap installs SGLang")
    parser.add_argument("--config", default="/etc/soong/preflight.json")
    args = parser.parse_args(argv)
    try:
        with open(args.config, encoding="utf-8") as handle:
            config = json.load(handle)
    except (OSError, ValueError) as exc:
        print(f"soong-preflight: cannot read {args.config}: {exc}", file=sys.stderr)
        return 2
    boot_log = config.get("boot_log") or "/var/log/soong-boot.log"
    try:
        summary = run_checks(config)
    except CheckFailed as exc:
        reason = str(exc)
        marker = config.get("failed_marker")
        if marker:
            write_marker(marker, reason)
        append_line(boot_log, boot_log_line(PHASE_FAILED, reason))
        print(f"preflight failed ({exc.check}): {reason}")
        return EXIT_FAILED
    append_line(boot_log, boot_log_line(PHASE_OK, summary))
    print(f"preflight passed: {summary}")
    return EXIT_PASSED


if __name__ == "__main__":
    sys.exit(main())

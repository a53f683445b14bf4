"""Resolve pinned packages for a target image's Python and platform, for real, without installing them.

The boot rehearsal replaces SGLang's serving by a stand-in, but SGLang's install is
still resolved against PyPI for the image the instance boots: pip's resolver runs
as a dry run with the image's Python version and platform tags, so a pin that
cannot install there (no wheel for Python 3.10, a dependency without a wheel for
the platform) fails the rehearsal::

    from soong.testing.rehearsal_resolve import LAMBDA_STACK_24_04, resolve_pins

    result = resolve_pins(SGLANG_PINS, LAMBDA_STACK_24_04)
    assert result.ok, result.error            # "sglang==0.5.23 cannot install on Python 3.10 ...: ..."

pip downloads every resolved wheel's metadata; where an index offers no separate
metadata file (PEP 658) it downloads the whole wheel (several GB for SGLang's CUDA
stack), so a successful verdict is cached for a week under the rehearsal cache,
keyed by the pins, the Python version, the platform tags and pip's version.
Failures are never cached.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

#: A successful verdict is reused for this long (seconds).
VERDICT_TTL = 7 * 24 * 3600


@dataclasses.dataclass(frozen=True)
class TargetImage:
    """The facts about an image that decide which wheels install on it."""

    name: str
    python: tuple[int, int]
    glibc: tuple[int, int]
    architecture: str = "x86_64"


#: Lambda Stack on Ubuntu 24.04: CPython 3.12 (Ubuntu noble's python3 is 3.12.3,
#: https://packages.ubuntu.com/noble/python3) and glibc 2.39 (https://packages.ubuntu.com/noble/libc6).
LAMBDA_STACK_24_04 = TargetImage("lambda-stack-24.04", (3, 12), (2, 39))
#: Lambda Stack on Ubuntu 22.04: CPython 3.10 (https://packages.ubuntu.com/jammy/python3) and
#: glibc 2.35 (https://packages.ubuntu.com/jammy/libc6).
LAMBDA_STACK_22_04 = TargetImage("lambda-stack-22.04", (3, 10), (2, 35))

def target_image(plan: object) -> TargetImage:
    """The image a plan's instance boots: its ``image_family`` (22.04 or 24.04) and ``architecture``."""
    from soong.plugins.lambda_cloud.images import FAMILIES

    family = str(getattr(plan, "image_family", "") or "")
    base = LAMBDA_STACK_22_04 if "22-04" in family or "22.04" in family else LAMBDA_STACK_24_04
    architecture = str(getattr(plan, "architecture", "") or base.architecture)
    known = FAMILIES.get(family)  # the provider's own facts about the family, where it has them
    python = tuple(known.python[:2]) if known is not None else base.python
    return dataclasses.replace(base, name=family or base.name, python=python, architecture=architecture)


#: Linux machine names of soong's architecture names (Lambda's ``/images`` values).
_MACHINE = {"x86_64": "x86_64", "arm64": "aarch64"}


def pip_platforms(architecture: str, glibc: tuple[int, int]) -> list[str]:
    """Every pip platform tag a glibc ``glibc`` machine of ``architecture`` accepts, newest first.

    pip's ``--platform`` takes tags literally (it expands only the legacy
    ``manylinux2014``/``manylinux2010`` names), so each ``manylinux_2_N`` down to
    2.17 is listed, then the legacy aliases (PEP 600: manylinux2014 = 2.17,
    manylinux2010 = 2.12, manylinux1 = 2.5).
    """
    machine = _MACHINE.get(architecture)
    if machine is None:
        raise ValueError(f"unknown architecture {architecture!r} (known: {', '.join(_MACHINE)})")
    major, minor = glibc
    if major != 2 or minor < 17:
        raise ValueError(f"glibc {major}.{minor} is older than any manylinux this supports (2.17)")
    tags = [f"manylinux_2_{n}_{machine}" for n in range(minor, 16, -1)]
    tags.append(f"manylinux2014_{machine}")
    if machine == "x86_64":
        tags += [f"manylinux2010_{machine}", f"manylinux1_{machine}"]
    return tags


@dataclasses.dataclass(frozen=True)
class Resolution:
    """The outcome of one dry run: ``ok``, what would be installed (name -> version) or one error line."""

    pins: tuple[str, ...]
    image: TargetImage
    ok: bool
    installs: dict[str, str]
    error: str = ""
    seconds: float = 0.0
    cached: bool = False

    def summary(self) -> str:
        """One line for a log or an assertion message."""
        where = f"Python {'.'.join(map(str, self.image.python))} on {self.image.architecture} ({self.image.name})"
        if self.ok:
            return (f"{' '.join(self.pins)} resolves for {where}: {len(self.installs)} distributions"
                    f"{' (cached verdict)' if self.cached else ''}")
        return f"{' '.join(self.pins)} cannot install on {where}: {self.error}"


def _pip_version(python: str) -> str:
    out = subprocess.run([python, "-m", "pip", "--version"], capture_output=True, text=True, check=False)
    return out.stdout.split()[1] if out.returncode == 0 and len(out.stdout.split()) > 1 else "unknown"


def _error_line(stderr: str) -> str:
    """The most telling line of pip's error output."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for prefix in ("ERROR: Could not find a version", "ERROR: No matching distribution", "ERROR: "):
        for line in lines:
            if line.startswith(prefix):
                return line[len("ERROR: "):]
    return lines[-1] if lines else "pip failed without a message"


def pip_command(pins: Sequence[str], image: TargetImage, target: str, report: str, python: str) -> list[str]:
    """The pip command line of the dry run."""
    command = [python, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--only-binary=:all:",
               "--python-version", ".".join(map(str, image.python)), "--implementation", "cp",
               "--target", target, "--report", report, "--quiet", "--no-input", "--disable-pip-version-check"]
    for tag in pip_platforms(image.architecture, image.glibc):
        command += ["--platform", tag]
    return command + list(pins)


def pip_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment pip runs in: no machine-wide constraints, find-links or config file."""
    env = dict(os.environ if base is None else base)
    for name in [key for key in env if key.startswith("PIP_")]:
        del env[name]
    env["PIP_CONFIG_FILE"] = os.devnull
    return env


def resolve_pins(pins: Sequence[str], image: TargetImage, *, cache_dir: Path | None = None,
                 python: str = sys.executable, timeout: float = 1200.0, refresh: bool = False) -> Resolution:
    """Dry-run ``pip install pins`` for ``image``; never raises for a pin that cannot install.

    ``cache_dir`` (default: none) holds pip's HTTP cache and the verdicts of earlier
    successful runs; ``refresh`` ignores a cached verdict.
    """
    pins = tuple(pins)
    key_text = json.dumps([pins, image.python, pip_platforms(image.architecture, image.glibc), _pip_version(python)])
    key = hashlib.sha256(key_text.encode()).hexdigest()[:24]
    verdict_path = Path(cache_dir) / "resolve" / f"{key}.json" if cache_dir else None
    if verdict_path and not refresh and verdict_path.is_file() and time.time() - verdict_path.stat().st_mtime < VERDICT_TTL:
        saved = json.loads(verdict_path.read_text())
        return Resolution(pins, image, True, dict(saved["installs"]), seconds=0.0, cached=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="soong-resolve-") as tmp:
        report = os.path.join(tmp, "report.json")
        command = pip_command(pins, image, os.path.join(tmp, "target"), report, python)
        env = pip_environment()
        if cache_dir:
            command[4:4] = ["--cache-dir", str(Path(cache_dir) / "pip")]
        else:
            command[4:4] = ["--no-cache-dir"]
        try:
            done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return Resolution(pins, image, False, {}, f"pip did not finish within {timeout:g}s",
                              time.monotonic() - started)
        seconds = time.monotonic() - started
        if done.returncode != 0 or not os.path.exists(report):
            return Resolution(pins, image, False, {}, _error_line(done.stderr), seconds)
        data = json.loads(Path(report).read_text())
    installs = {item["metadata"]["name"]: item["metadata"]["version"] for item in data.get("install", [])}
    if verdict_path:
        verdict_path.parent.mkdir(parents=True, exist_ok=True)
        verdict_path.write_text(json.dumps({"pins": pins, "python": image.python, "installs": installs}))
    return Resolution(pins, image, True, installs, seconds=seconds)

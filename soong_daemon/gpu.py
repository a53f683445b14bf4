"""A short GPU summary from nvidia-smi, when the machine has it."""

from __future__ import annotations

import shutil
import subprocess

QUERY = "name,utilization.gpu,memory.used,memory.total"


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def parse_nvidia_smi(text: str) -> list[dict]:
    """Rows of ``nvidia-smi --query-gpu=name,utilization.gpu,memory.used,memory.total --format=csv,noheader,nounits``."""
    gpus = []
    for line in text.splitlines():
        fields = [field.strip() for field in line.split(",")]
        if len(fields) != 4 or not fields[0]:
            continue
        gpus.append({"name": fields[0], "utilization_percent": _number(fields[1]),
                     "memory_used_mib": _number(fields[2]), "memory_total_mib": _number(fields[3])})
    return gpus


def gpu_summary(timeout: float = 10.0) -> list[dict] | None:
    """One entry per GPU, or None when nvidia-smi is absent or fails."""
    binary = shutil.which("nvidia-smi")
    if binary is None:
        return None
    try:
        result = subprocess.run([binary, f"--query-gpu={QUERY}", "--format=csv,noheader,nounits"],
                                capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    return parse_nvidia_smi(result.stdout)

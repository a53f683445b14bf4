"""A stand-in ``nvidia-smi`` for machines without a GPU (the sandbox, the boot rehearsal).

It answers exactly the one query the preflight makes
(:data:`soong.plugins.sglang.preflight.NVIDIA_SMI_ARGS`) with one CSV line per
planned GPU, ``<name>, <memory MiB>, <driver version>``, and refuses anything
else (exit 2), so a change to the query cannot pass unnoticed.

The memory reported is what the fit is computed from: nvidia-smi's real
``memory.total`` for every GPU model with a known reading (an A10 shows 23028 MiB;
see :mod:`soong.core.gpu_memory`), the conservative derating for any other.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
from pathlib import Path
from typing import Any, Sequence

from soong.plugins.sglang.preflight import NVIDIA_SMI_ARGS

#: The driver the stand-in reports unless told otherwise (a current 580-series driver).
DEFAULT_DRIVER = "580.95.05"


@dataclasses.dataclass(frozen=True)
class StandinGpu:
    """One GPU as the stand-in reports it."""

    name: str
    memory_mib: int
    driver: str

    def csv(self) -> str:
        """The line nvidia-smi prints for it with ``--format=csv,noheader,nounits``."""
        return f"{self.name}, {self.memory_mib}, {self.driver}"


def valid_driver(version: str) -> bool:
    """Whether ``version`` looks like an NVIDIA driver version (``580.95.05``, ``535.129.03``)."""
    parts = str(version).split(".")
    return 2 <= len(parts) <= 3 and all(part.isdigit() and len(part) <= 4 for part in parts)


def memory_mib(gpu_model: str, marketed_gb: float) -> int:
    """The memory the stand-in reports for one ``gpu_model`` card sold as ``marketed_gb`` GB.

    The same figure the fit is computed from (:func:`soong.core.gpu_memory.usable`): nvidia-smi's
    ``memory.total`` where a reading is known, the conservative derating otherwise.
    """
    from soong.core.gpu_memory import GIB, MIB, usable

    return int(usable(gpu_model, marketed_gb).gib * GIB // MIB)


def gpus_for(instance_type: Any, driver: str = DEFAULT_DRIVER) -> list[StandinGpu]:
    """The GPUs of an :class:`~soong.core.types.InstanceType` (empty for a CPU-only type)."""
    model = instance_type.gpu_model
    name = model if model.upper().startswith(("NVIDIA", "TESLA")) else f"NVIDIA {model}"
    mib = memory_mib(model, instance_type.gpu_memory_gib)
    return [StandinGpu(name, mib, driver) for _ in range(int(instance_type.gpu_count))]


def script(gpus: Sequence[StandinGpu]) -> str:
    """The stand-in's text: a POSIX shell script answering the preflight's query with ``gpus``."""
    expected = " ".join(NVIDIA_SMI_ARGS)
    lines = "\n".join(gpu.csv() for gpu in gpus)
    return (
        "#!/bin/sh\n"
        "# soong stand-in nvidia-smi: no GPU here; answers only the preflight's query.\n"
        f"if [ \"$*\" != {shlex.quote(expected)} ]; then\n"
        f"  echo \"stand-in nvidia-smi answers only: nvidia-smi {expected}\" >&2\n"
        "  exit 2\n"
        "fi\n"
        + (f"cat <<'EOF'\n{lines}\nEOF\n" if gpus else "")
    )


def install(folder: Path, gpus: Sequence[StandinGpu]) -> Path:
    """Write ``<folder>/nvidia-smi`` (0755) and return the folder (put it first on ``PATH``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "nvidia-smi"
    tmp = folder / ".nvidia-smi.tmp"
    tmp.write_text(script(gpus))
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)
    return folder

"""How much memory one GPU really offers to SGLang, per GPU model (GiB, 2**30 bytes).

Providers sell GPU memory in marketed gigabytes ("A10 (24 GB)"), which are neither
GiB nor what the driver hands out. What counts is ``memory.total`` as
``nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader,nounits``
reports it (MiB), the same query the bootstrap's preflight runs on the instance.
:data:`NVIDIA_SMI_MEMORY_MIB` holds that figure for every GPU model Lambda sells, each
with a real ``nvidia-smi`` output it was read from (drivers 5xx/580; older drivers
reported slightly less on some boards, e.g. 40536 MiB on an A100 40 GB under 470).

A GPU model not in the table keeps a conservative derating: the marketed GB taken
as 10**9 bytes, converted to GiB (24 GB -> 22.35 GiB, below the A10's real 22.49),
with :func:`usable` saying so. The CUDA context is not part of this figure; it is
:data:`CUDA_CONTEXT_GIB`, charged by :mod:`soong.core.vram` on every GPU.
"""

from __future__ import annotations

import dataclasses

MIB = 2**20
GIB = 2**30

#: nvidia-smi ``memory.total`` (MiB) by (GPU model as Lambda writes it, marketed GB).
#: Sources (each a real nvidia-smi output):
#: - A10 24 GB: 23028 MiB. Issue soong#12; modal-labs/modal-client PR #2797 ("A10: 23028MiB");
#:   NVIDIA/DCGM issue #232 (A10G, driver 535.247.01: "8722MiB / 23028MiB").
#: - A100 40 GB: 40960 MiB. bottlerocket-os/bottlerocket-core-kit PR #834 (A100-SXM4-40GB,
#:   driver 580.126.09: "598MiB / 40960MiB"); modal-labs/modal-client PR #2797.
#: - A100 80 GB: 81920 MiB. modal-labs/modal-client PR #2797 ("A100 80GB: 81920MiB");
#:   dexmal/dexbotic issue #41 (A800-SXM4-80GB, same board: "34447MiB / 81920MiB").
#: - H100 80 GB (SXM5 and PCIe): 81559 MiB. NVIDIA/nccl issue #1264 (H100 80GB HBM3,
#:   driver 550.54.15: "0MiB / 81559MiB"); modal-labs/modal-client PR #2797; H100 PCIe
#:   query rows "NVIDIA H100 PCIe, 81559" in public nvidia-smi captures on GitHub.
#: - H200 141 GB: 143771 MiB. sgl-project/sglang issue #3196 ("124585MiB / 143771MiB").
#: - B200 180 GB: 183359 MiB. NVIDIA/TensorRT-LLM issue #10278 (driver 580.95.05:
#:   "166593MiB / 183359MiB").
#: - GH200 96 GB: 97871 MiB. Query rows "NVIDIA GH200 480GB, 97871" in public
#:   nvidia-smi captures on GitHub (the 480 GB is the superchip's CPU+GPU memory).
#: - L40S 48 GB: 46068 MiB. modal-labs/modal-client PR #2797 ("L40S: 46068MiB").
#: - RTX A6000 48 GB: 49140 MiB. Query rows "NVIDIA RTX A6000, 49140" in public
#:   nvidia-smi captures on GitHub (e.g. driver 570.211.01).
#: - Quadro RTX 6000 24 GB: 24576 MiB. Query rows "Quadro RTX 6000, 24576" (driver 590.44.01).
#: - Tesla V100 16 GB: 16384 MiB. Query rows "Tesla V100-SXM2-16GB, 16384" (driver 580.178.04).
NVIDIA_SMI_MEMORY_MIB: dict[tuple[str, int], int] = {
    ("A10", 24): 23028,
    ("A100", 40): 40960,
    ("A100", 80): 81920,
    ("H100", 80): 81559,
    ("H200", 141): 143771,
    ("B200", 180): 183359,
    ("GH200", 96): 97871,
    ("L40S", 48): 46068,
    ("A6000", 48): 49140,
    ("RTX 6000", 24): 24576,
    ("Tesla V100", 16): 16384,
}

#: Other spellings of the same GPU models (Lambda's and NVIDIA's).
ALIASES = {"RTX A6000": "A6000", "V100": "Tesla V100", "Quadro RTX 6000": "RTX 6000", "A10G": "A10"}

#: GiB each GPU loses before SGLang measures its memory: the CUDA context, torch's
#: allocator and (single GPU) the torch.distributed setup. SGLang sizes its pool from
#: what is free *after* this (see :mod:`soong.core.vram`). Measured in SGLang's own
#: logs: on an H100 80GB HBM3 (81559 MiB = 79.65 GiB) "Load weight begin. avail
#: mem=78.43 GB" .. "78.81 GB" at TP 1 (0.84-1.22 GiB gone before the weights); on
#: 24 GB-class Ampere cards at TP 4 "avail mem=21.63 GB" of 22.49 GiB (0.86 GiB).
#: 1.25 GiB covers the worst of these.
CUDA_CONTEXT_GIB = 1.25
#: Extra GiB per GPU for tensor parallelism: NCCL and custom all-reduce buffers set up
#: before SGLang measures free memory. SGLang's log at TP 8 on NVLink GPUs
#: (sgl-project/sglang PR #11716): "Init torch distributed ends. mem usage=1.77 .. 2.01 GB".
TENSOR_PARALLEL_OVERHEAD_GIB = 2.0


@dataclasses.dataclass(frozen=True)
class UsableMemory:
    """What one GPU of a model offers, in GiB, and whether the figure was measured."""

    gib: float
    measured: bool
    note: str


def _model_key(gpu_model: str) -> str:
    name = (gpu_model or "").strip()
    if name.upper().startswith("NVIDIA "):
        name = name[len("NVIDIA "):]
    return ALIASES.get(name, name)


def derated_gib(marketed_gb: float) -> float:
    """The conservative figure for a GPU soong has no nvidia-smi reading of: GB (10**9) as GiB."""
    return max(float(marketed_gb), 0.0) * 1e9 / GIB


def usable(gpu_model: str, marketed_gb: float) -> UsableMemory:
    """Usable GiB of one ``gpu_model`` GPU sold as ``marketed_gb`` GB.

    Known models give nvidia-smi's ``memory.total``; others the derating of
    :func:`derated_gib`, with a note that says so.
    """
    key = (_model_key(gpu_model), int(round(float(marketed_gb))))
    mib = NVIDIA_SMI_MEMORY_MIB.get(key)
    if mib is not None:
        return UsableMemory(mib * MIB / GIB, True, f"{gpu_model}: nvidia-smi reports {mib} MiB")
    gib = derated_gib(marketed_gb)
    return UsableMemory(gib, False, f"{gpu_model or 'unknown GPU'} ({marketed_gb:g} GB): no nvidia-smi reading known; "
                                    f"counted as {marketed_gb:g}e9 bytes = {gib:.2f} GiB")


def overhead_gib(gpu_count: int) -> float:
    """GiB each GPU of a ``gpu_count``-GPU setup loses before SGLang sizes its memory pool."""
    return CUDA_CONTEXT_GIB + (TENSOR_PARALLEL_OVERHEAD_GIB if gpu_count > 1 else 0.0)

"""How much GPU memory a model needs to be served, and whether a GPU setup holds it.

All sizes are GiB (2**30 bytes). GPU memory is *sold* in marketed GB; what a GPU
really offers is :func:`soong.core.gpu_memory.usable` (nvidia-smi's ``memory.total``).

SGLang's rule (sglang 0.5.23, ``sglang/srt/mem_cache/kv_cache_configurator.py``,
``_profile_available_bytes``): the KV pool gets what is free after the weights are
loaded, minus ``pre_model_load_memory x (1 - mem_fraction_static)``, where
``pre_model_load_memory`` is what was free before loading, measured after the CUDA
context and torch.distributed are set up (``model_runner.py``, ``init_torch_distributed``).
Per GPU, with ``usable`` GiB and a context overhead ``ctx``
(:func:`soong.core.gpu_memory.overhead_gib`)::

    pool = (usable - ctx) - weights/tp - (usable - ctx) x (1 - f)
         = (usable - ctx) x f - weights/tp

so a setup serves ``kv_cache`` when ``usable >= (weights + kv_cache) / tp / f + ctx``.
The estimate keeps that as three terms::

    weights  = params x bits_per_weight(precision) / 8
    kv_cache = 2 (K and V) x layers x kv_heads_stored x head_dim x kv_bytes x context x concurrency
    runtime  = (weights + kv_cache) x (1 / f - 1) + tp x ctx
    total    = weights + kv_cache + runtime          (per GPU: total / tp)

``bits_per_weight`` is the checkpoint's real storage precision plus the overhead
of its quantization scales (see :data:`BITS_PER_WEIGHT`). ``kv_heads_stored`` is
the model's KV head count, or the tensor-parallel size when that is larger
(each GPU then keeps a replica of one KV head). ``runtime`` is the share of
every GPU that SGLang leaves outside its static pool (weights + KV cache) for
activations and CUDA graphs (``f`` = SGLang's ``--mem-fraction-static``, which soong
passes explicitly, :data:`MEM_FRACTION_STATIC`, so that this estimate and the server
agree), plus the CUDA context every GPU loses first.

A setup of ``n`` GPUs with ``u`` usable GiB each fits when ``total <= n x u``, the
GPU count divides the attention heads (tensor parallelism splits heads evenly) and
the KV heads split or replicate evenly. Worked example in ``docs/models.md``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from soong.core.gpu_memory import overhead_gib
from soong.core.types import ModelSpec

GIB = float(2**30)

#: SGLang's static memory fraction (weights + KV pool) that soong launches with.
MEM_FRACTION_STATIC = 0.88

#: Effective stored bits per parameter of each precision, scale overhead included.
#: int4 (AWQ/GPTQ, group size 128): 4 bits + a 16-bit scale and a 4-bit zero point
#: per 128 weights (~0.16 bit) + the 16-bit embeddings and output head such
#: checkpoints keep (~0.1 bit on a 70B model): 4.25. mxfp4: 4 bits + one 8-bit
#: scale per 32 weights = 4.25. nvfp4: 4 bits + one 8-bit scale per 16 = 4.5.
#: fp8/int8: per-channel or 128x128-block scales are negligible (< 0.01 bit).
BITS_PER_WEIGHT: dict[str, float] = {
    "fp32": 32.0,
    "bf16": 16.0,
    "fp16": 16.0,
    "fp8": 8.0,
    "int8": 8.0,
    "int4": 4.25,
    "awq": 4.25,
    "gptq": 4.25,
    "mxfp4": 4.25,
    "nvfp4": 4.5,
}

#: Bytes per KV-cache element: SGLang keeps the KV cache in the activation dtype
#: (bf16) unless ``--kv-cache-dtype`` says otherwise, also for fp8/int4 weights.
DEFAULT_KV_BYTES = 2


@dataclasses.dataclass(frozen=True)
class VramEstimate:
    """The memory a model needs for one context length, concurrency and tensor-parallel size (GiB)."""

    weights_gib: float
    kv_cache_gib: float
    runtime_gib: float
    context: int
    concurrency: int
    tp_size: int

    @property
    def total_gib(self) -> float:
        """Weights + KV cache + runtime reserve."""
        return self.weights_gib + self.kv_cache_gib + self.runtime_gib

    @property
    def per_gpu_gib(self) -> float:
        """What each of the ``tp_size`` GPUs must hold."""
        return self.total_gib / self.tp_size

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready breakdown, rounded to 0.1 GiB."""
        return {
            "weights_gib": round(self.weights_gib, 1),
            "kv_cache_gib": round(self.kv_cache_gib, 1),
            "runtime_gib": round(self.runtime_gib, 1),
            "total_gib": round(self.total_gib, 1),
            "per_gpu_gib": round(self.per_gpu_gib, 1),
            "context": self.context,
            "concurrency": self.concurrency,
            "tp_size": self.tp_size,
        }


def bits_per_weight(precision: str) -> float:
    """Stored bits per parameter of ``precision``; ValueError for an unknown one."""
    try:
        return BITS_PER_WEIGHT[precision]
    except KeyError:
        raise ValueError(f"unknown precision {precision!r} (known: {', '.join(BITS_PER_WEIGHT)})") from None


def weights_gib(spec: ModelSpec) -> float:
    """GiB of the checkpoint's weights as loaded on the GPUs."""
    return spec.params_billion * 1e9 * bits_per_weight(spec.precision) / 8 / GIB


def kv_bytes_per_token(spec: ModelSpec, tp_size: int = 1, kv_bytes: int = DEFAULT_KV_BYTES) -> int:
    """KV-cache bytes one token takes over all GPUs (KV heads replicated when tp_size > kv_heads)."""
    stored_heads = max(spec.kv_heads, tp_size)
    return 2 * spec.layers * stored_heads * spec.head_dim * kv_bytes


def estimate(spec: ModelSpec, context: int | None = None, *, concurrency: int = 1, tp_size: int = 1,
             kv_bytes: int = DEFAULT_KV_BYTES, mem_fraction_static: float = MEM_FRACTION_STATIC) -> VramEstimate:
    """The memory ``spec`` needs to serve ``concurrency`` requests of ``context`` tokens each.

    :param context: tokens per request (default: the model's default context).
    :param tp_size: tensor-parallel size (the GPU count); it only matters for KV-head replication.
    :raises ValueError: on a non-positive context/concurrency/tp size or a bad memory fraction.
    """
    context = spec.default_context if context is None else context
    if context < 1 or concurrency < 1 or tp_size < 1:
        raise ValueError("context, concurrency and tp_size must be at least 1")
    if not 0 < mem_fraction_static < 1:
        raise ValueError("mem_fraction_static must be between 0 and 1")
    weights = weights_gib(spec)
    kv = kv_bytes_per_token(spec, tp_size, kv_bytes) * context * concurrency / GIB
    runtime = (weights + kv) * (1 / mem_fraction_static - 1) + tp_size * overhead_gib(tp_size)
    return VramEstimate(weights, kv, runtime, context, concurrency, tp_size)


def pool_gib(spec: ModelSpec, usable_gib_per_gpu: float, *, gpu_count: int = 1,
             mem_fraction_static: float = MEM_FRACTION_STATIC) -> float:
    """GiB SGLang's KV pool gets over all ``gpu_count`` GPUs of ``usable_gib_per_gpu`` each (<= 0: none).

    SGLang's rule, per GPU: ``(usable - overhead) x f - weights / tp`` (module docstring).
    """
    per_gpu = (usable_gib_per_gpu - overhead_gib(gpu_count)) * mem_fraction_static - weights_gib(spec) / gpu_count
    return per_gpu * gpu_count


def pool_tokens(spec: ModelSpec, usable_gib_per_gpu: float, *, gpu_count: int = 1, kv_bytes: int = DEFAULT_KV_BYTES,
                mem_fraction_static: float = MEM_FRACTION_STATIC) -> int:
    """How many tokens SGLang's KV pool holds on ``gpu_count`` GPUs of ``usable_gib_per_gpu`` GiB (0 if none)."""
    pool = pool_gib(spec, usable_gib_per_gpu, gpu_count=gpu_count, mem_fraction_static=mem_fraction_static)
    if pool <= 0:
        return 0
    return int(pool * GIB // kv_bytes_per_token(spec, gpu_count, kv_bytes))


def tp_problem(spec: ModelSpec, gpu_count: int) -> str | None:
    """Why ``gpu_count``-way tensor parallelism cannot serve ``spec``, or None when it can."""
    if gpu_count < 1:
        return "no GPU"
    if spec.attention_heads % gpu_count:
        return f"{gpu_count} GPUs do not divide the model's {spec.attention_heads} attention heads"
    if spec.kv_heads % gpu_count and gpu_count % spec.kv_heads:
        return f"{gpu_count} GPUs neither divide nor are a multiple of the model's {spec.kv_heads} KV heads"
    return None


def max_context_for(spec: ModelSpec, total_vram_gib: float, *, gpu_count: int = 1, concurrency: int = 1,
                    kv_bytes: int = DEFAULT_KV_BYTES, mem_fraction_static: float = MEM_FRACTION_STATIC) -> int:
    """The longest context (capped at the model's maximum) that fits ``total_vram_gib`` usable GiB; 0 if none."""
    tokens = pool_tokens(spec, total_vram_gib / max(gpu_count, 1), gpu_count=max(gpu_count, 1), kv_bytes=kv_bytes,
                         mem_fraction_static=mem_fraction_static)
    return min(tokens // concurrency, spec.max_context)

"""Which instance types can serve a model, ranked cheapest first.

A type qualifies when all of these hold (:func:`assess`):

- it has GPUs, and the GPU generation supports the checkpoint's precision
  (:data:`MIN_COMPUTE_CAPABILITY`; bf16, 4-bit and fp8 kernels need compute
  capability 8.0: fp8 runs on A100/A10/A6000 through Marlin). The provider
  states each type's :attr:`~soong.core.types.InstanceType.compute_capability`;
  a type without one fails every precision check, since nothing says it can run
  the weights;
- tensor-parallel size = GPU count divides the attention heads, and the KV heads
  split (or replicate) evenly (:func:`soong.core.vram.tp_problem`);
- the estimate (:func:`soong.core.vram.estimate`) fits the *usable* GPU memory
  (:func:`usable_vram_gib`: nvidia-smi's figure per GPU model, not the marketed GB).

:func:`recommend` ranks qualifying live types by price per hour, then by
capacity available now, then by more free memory. It never returns a type that
does not fit. :func:`smallest_setup` answers the same question offline against
:data:`STATIC_SETUPS`, a documented table of Lambda's usual GPU line-up.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Iterable, Sequence

from soong.core.errors import UsageError
from soong.core.gpu_memory import UsableMemory, usable
from soong.core.images import architecture_problem
from soong.core.types import InstanceType, ModelSpec
from soong.core.vram import VramEstimate, estimate, tp_problem

#: Minimum compute capability for SGLang's kernels of each precision.
#: fp8: SGLang 0.5.23 serves FP8 checkpoints down to sm80 (``Fp8Config.get_min_capability``
#: returns 80, sglang/srt/layers/quantization/fp8.py); on 8.0 <= sm < 8.9 (A100, A10,
#: A6000) ``Fp8LinearMethod`` switches to the weight-only Marlin kernel by itself
#: (``use_marlin = ... can_auto_enable_marlin_fp8()``, fp8.py; ``80 <= sm < 89`` in
#: ``can_auto_enable_marlin_fp8``, fp8_utils.py), block-quantized checkpoints included
#: (``prepare_fp8_layer_for_marlin`` with ``weight_block_size``, fp8.py). The weights
#: stay 8-bit in memory, so the estimate is the same as on Hopper.
#: awq/gptq: Marlin kernels need sm80 (``check_marlin_supported``), below it SGLang falls
#: back to its slow kernels, which soong does not offer.
MIN_COMPUTE_CAPABILITY: dict[str, float] = {
    "fp32": 8.0, "bf16": 8.0, "fp16": 8.0, "int8": 8.0,
    "int4": 8.0, "awq": 8.0, "gptq": 8.0,
    "fp8": 8.0, "mxfp4": 9.0, "nvfp4": 10.0,
}


def _static(name: str, count: int, gib: float, gpu: str, capability: float) -> InstanceType:
    return InstanceType(name=name, description=f"{count}x {gpu} ({gib:g} GB)", gpu_description=f"{gpu} ({gib:g} GB)",
                        gpu_count=count, gpu_memory_gib=gib, price_cents_per_hour=0, compute_capability=capability)


#: Lambda's usual GPU line-up, used offline (``soong models list``) where no live
#: prices are needed. Live recommendations always use the provider's own list.
#: Compute capabilities from NVIDIA's table (https://developer.nvidia.com/cuda-gpus):
#: A100 8.0, A10 and RTX A6000 8.6, H100 and GH200 9.0, B200 10.0.
STATIC_SETUPS: tuple[InstanceType, ...] = (
    _static("gpu_1x_a10", 1, 24, "A10", 8.6),
    _static("gpu_1x_a100_sxm4", 1, 40, "A100", 8.0),
    _static("gpu_1x_a6000", 1, 48, "A6000", 8.6),
    _static("gpu_2x_a6000", 2, 48, "A6000", 8.6),
    _static("gpu_1x_h100_pcie", 1, 80, "H100", 9.0),
    _static("gpu_2x_a100", 2, 40, "A100", 8.0),
    dataclasses.replace(_static("gpu_1x_gh200", 1, 96, "GH200", 9.0), architecture="arm64"),  # Grace (Arm) host
    _static("gpu_4x_a6000", 4, 48, "A6000", 8.6),
    _static("gpu_2x_h100_sxm5", 2, 80, "H100", 9.0),
    _static("gpu_8x_a100", 8, 40, "A100", 8.0),
    _static("gpu_4x_h100_sxm5", 4, 80, "H100", 9.0),
    _static("gpu_8x_a100_80gb_sxm4", 8, 80, "A100", 8.0),
    _static("gpu_8x_h100_sxm5", 8, 80, "H100", 9.0),
    _static("gpu_8x_b200_sxm6", 8, 180, "B200", 10.0),
)


@dataclasses.dataclass(frozen=True)
class Fit:
    """Whether one instance type can serve a model, with the estimate for its GPU count."""

    instance_type: InstanceType
    estimate: VramEstimate | None
    problem: str | None

    @property
    def fits(self) -> bool:
        """True when nothing stops this type from serving the model."""
        return self.problem is None

    @property
    def usable_gib(self) -> float:
        """Usable GPU memory over all GPUs of the type (:func:`usable_vram_gib`)."""
        return usable_vram_gib(self.instance_type)

    @property
    def headroom_gib(self) -> float:
        """Usable GPU memory left over after the estimate (negative when it does not fit)."""
        if self.estimate is None:
            return -1.0
        return self.usable_gib - self.estimate.total_gib


@dataclasses.dataclass(frozen=True)
class Recommendation:
    """A qualifying instance type, as :func:`recommend` ranks it."""

    rank: int
    fit: Fit

    @property
    def instance_type(self) -> InstanceType:
        """The recommended type."""
        return self.fit.instance_type

    @property
    def available(self) -> bool:
        """Whether the provider reports capacity for it in some region now."""
        return self.instance_type.has_capacity()

    def to_dict(self) -> dict:
        """A JSON-ready row."""
        it = self.instance_type
        assert self.fit.estimate is not None
        return {
            "rank": self.rank,
            "instance_type": it.name,
            "gpus": f"{it.gpu_count}x {it.gpu_description}",
            "tp_size": it.gpu_count,
            "price_per_hour": it.price_per_hour,
            "total_vram_gib": round(self.fit.usable_gib, 1),
            "needed_gib": round(self.fit.estimate.total_gib, 1),
            "headroom_gib": round(self.fit.headroom_gib, 1),
            "available": self.available,
            "regions": [r.name for r in it.regions_with_capacity],
        }


def usable_memory(instance_type: InstanceType) -> UsableMemory:
    """What one GPU of ``instance_type`` offers (GiB), from its GPU model and marketed GB."""
    return usable(instance_type.gpu_model, instance_type.gpu_memory_gib)


def usable_vram_gib(instance_type: InstanceType) -> float:
    """Usable GiB over all GPUs of ``instance_type`` (the marketed figure only for unknown GPUs, derated)."""
    if instance_type.gpu_count < 1 or instance_type.gpu_memory_gib <= 0:
        return 0.0
    return instance_type.gpu_count * usable_memory(instance_type).gib


def compute_capability(instance_type: InstanceType) -> float | None:
    """The GPU's compute capability as the provider states it, or None when it does not."""
    return instance_type.compute_capability


def check_context(spec: ModelSpec, context: int | None) -> int:
    """The context to plan for (default: the model's); UsageError when out of range."""
    if context is None:
        return spec.default_context
    if isinstance(context, bool) or not isinstance(context, int) or context < 1:
        raise UsageError(f"context must be a positive number of tokens, not {context!r}")
    if context > spec.max_context:
        raise UsageError(f"context {context} exceeds {spec.id}'s maximum of {spec.max_context} tokens")
    return context


def assess(spec: ModelSpec, instance_type: InstanceType, *, context: int | None = None, concurrency: int = 1,
           platform: Any = None) -> Fit:
    """Whether ``instance_type`` can serve ``spec`` at ``context`` x ``concurrency`` tokens.

    :param platform: the image family and serving engines launches would use
        (:class:`soong.core.images.Platform`); None judges memory and GPU only.
    """
    context = check_context(spec, context)
    count = instance_type.gpu_count
    if count < 1 or instance_type.gpu_memory_gib <= 0:
        return Fit(instance_type, None, "no GPU")
    if problem := architecture_problem(spec, instance_type, platform):  # image family / engine builds
        return Fit(instance_type, None, problem)
    capability = compute_capability(instance_type)
    needed = MIN_COMPUTE_CAPABILITY.get(spec.precision, 8.0)
    if capability is None:  # unknown is not "good enough": nothing says the kernels run there
        return Fit(instance_type, None, f"{instance_type.gpu_model}'s compute capability is unknown (the provider does "
                                        f"not state it), so soong cannot tell whether it runs {spec.precision} weights")
    if capability < needed:
        return Fit(instance_type, None, f"{instance_type.gpu_model} (compute {capability:g}) cannot run {spec.precision} "
                                        f"weights (needs {needed:g}+)")
    problem = tp_problem(spec, count)
    if problem:
        return Fit(instance_type, None, problem)
    need = estimate(spec, context, concurrency=concurrency, tp_size=count)
    has = usable_vram_gib(instance_type)
    if need.total_gib > has:
        return Fit(instance_type, need, f"needs {need.total_gib:.1f} GiB, has {has:.1f} usable GiB")
    return Fit(instance_type, need, None)


def recommend(spec: ModelSpec, instance_types: Iterable[InstanceType], *, context: int | None = None,
              concurrency: int = 1, max_price_cents: int | None = None, region: str | None = None,
              available_only: bool = False, platform: Any = None) -> list[Recommendation]:
    """Instance types that fit ``spec``, ranked by price, then capacity now, then headroom.

    :param max_price_cents: drop types above this hourly price.
    :param region: count capacity only in this region (and with ``available_only``, require it).
    :param available_only: drop types without capacity now.
    :param platform: see :func:`assess`.
    """
    if concurrency < 1:
        raise UsageError("concurrency must be at least 1")
    fits = []
    for itype in instance_types:
        if max_price_cents is not None and itype.price_cents_per_hour > max_price_cents:
            continue
        if available_only and not itype.has_capacity(region):
            continue
        fit = assess(spec, itype, context=context, concurrency=concurrency, platform=platform)
        if fit.fits:
            fits.append(fit)
    fits.sort(key=lambda f: (f.instance_type.price_cents_per_hour, not f.instance_type.has_capacity(region),
                             -len(f.instance_type.regions_with_capacity), -f.headroom_gib, f.instance_type.name))
    return [Recommendation(index + 1, fit) for index, fit in enumerate(fits)]


def smallest_setup(spec: ModelSpec, *, context: int | None = None, concurrency: int = 1,
                   setups: Sequence[InstanceType] = STATIC_SETUPS, platform: Any = None) -> Fit | None:
    """The fitting setup of :data:`STATIC_SETUPS` with the least usable GPU memory (then fewest GPUs), offline."""
    fits = [f for f in (assess(spec, s, context=context, concurrency=concurrency, platform=platform) for s in setups)
            if f.fits]
    if not fits:
        return None
    return min(fits, key=lambda f: (f.usable_gib, f.instance_type.gpu_count, f.instance_type.name))


def gpu_count_from_name(name: str) -> int | None:
    """The GPU count written in a Lambda instance type name (``gpu_8x_h100_sxm5`` -> 8), if any."""
    match = re.match(r"^gpu_(\d+)x_", name)
    return int(match.group(1)) if match else None

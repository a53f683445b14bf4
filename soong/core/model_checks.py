"""Sanity checks of a model catalog entry, shared by plugins and ``custom_models``."""

from __future__ import annotations

import re

from soong.core.types import ModelSpec

PRECISIONS = ("fp32", "bf16", "fp16", "fp8", "int8", "int4", "awq", "gptq", "mxfp4", "nvfp4")
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_HF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")

#: The checkpoint ``quant_method`` values (SGLang's names) that match each stored precision;
#: None means unquantized weights. The value documents the checkpoint: the bootstrap
#: passes no ``--quantization`` and lets SGLang read it (see ``sglang_command``).
QUANTIZATION_FOR_PRECISION: dict[str, tuple[str | None, ...]] = {
    "fp32": (None,),
    "bf16": (None,),
    "fp16": (None,),
    "fp8": ("fp8",),
    "int8": ("w8a8_int8", "gptq", "gptq_marlin"),
    "int4": ("awq", "awq_marlin", "gptq", "gptq_marlin"),
    "awq": ("awq", "awq_marlin"),
    "gptq": ("gptq", "gptq_marlin"),
    "mxfp4": ("mxfp4",),
    "nvfp4": ("modelopt_fp4",),
}


def problems(spec: ModelSpec) -> list[str]:
    """Every problem with ``spec``, as short phrases naming the field; empty when valid."""
    found = []
    if not isinstance(spec.id, str) or not _ID.match(spec.id):
        found.append(f"id {spec.id!r} must be lower-case letters, digits, '.', '_' or '-'")
    if not isinstance(spec.hf_path, str) or not _HF.match(spec.hf_path):
        found.append(f"hf_path {spec.hf_path!r} must look like 'org/name'")
    if spec.precision not in PRECISIONS:
        found.append(f"precision {spec.precision!r} must be one of {', '.join(PRECISIONS)}")
    for field in ("params_billion", "layers", "attention_heads", "kv_heads", "head_dim", "max_context", "default_context"):
        value = getattr(spec, field)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            found.append(f"{field} must be a positive number, not {value!r}")
    if not found:
        if spec.attention_heads % spec.kv_heads:
            found.append("attention_heads must be a multiple of kv_heads")
        if spec.default_context > spec.max_context:
            found.append("default_context must not exceed max_context")
        allowed = QUANTIZATION_FOR_PRECISION.get(spec.precision, ())
        if spec.quantization not in allowed:
            names = ", ".join("none" if value is None else value for value in allowed)
            found.append(f"quantization {spec.quantization!r} does not match a {spec.precision} checkpoint (use {names})")
    return found

"""The built-in catalog: real models, facts with sources, precision labels that match their checkpoints."""

from __future__ import annotations

import dataclasses

import pytest

from soong.core.catalog import merged_catalog
from soong.core.errors import ConfigError
from soong.core.model_checks import problems
from soong.plugins.sglang.catalog import BUILTIN_MODELS


def test_size_and_span():
    assert 10 <= len(BUILTIN_MODELS) <= 15
    params = [m.params_billion for m in BUILTIN_MODELS]
    assert min(params) <= 8 and max(params) >= 70
    ids = {m.id for m in BUILTIN_MODELS}
    assert {"deepseek-r1-distill-llama-70b", "qwen2.5-coder-32b", "llama-3.1-8b", "llama-3.1-70b", "mistral-7b"} <= ids
    assert len(ids) == len(BUILTIN_MODELS)


@pytest.mark.parametrize("spec", BUILTIN_MODELS, ids=lambda s: s.id)
def test_entry_is_valid_and_cited(spec):
    assert problems(spec) == []
    assert spec.builtin and spec.engine == "sglang"
    assert spec.source.startswith(f"https://huggingface.co/{spec.hf_path}/")
    assert spec.good_for and spec.not_good_for


@pytest.mark.parametrize("spec", [m for m in BUILTIN_MODELS if m.precision not in ("bf16", "fp16")], ids=lambda s: s.id)
def test_quantized_entries_point_at_quantized_checkpoints(spec):
    marker = {"awq": "AWQ", "gptq": "GPTQ", "fp8": "FP8"}[spec.quantization]
    assert marker in spec.hf_path.upper()
    assert spec.precision == ("fp8" if spec.quantization == "fp8" else "int4")


def test_unquantized_entries_carry_no_flag():
    for spec in BUILTIN_MODELS:
        if spec.precision in ("bf16", "fp16"):
            assert spec.quantization is None, spec.id


def test_mismatched_quantization_is_rejected():
    spec = next(m for m in BUILTIN_MODELS if m.id == "llama-3.1-8b")
    assert any("quantization" in p for p in problems(dataclasses.replace(spec, precision="int4")))
    assert any("quantization" in p for p in problems(dataclasses.replace(spec, quantization="awq")))


def test_custom_models_are_validated(catalog):
    good = {"id": "my-7b", "hf_path": "me/my-7b", "params_billion": 7.0, "precision": "bf16", "layers": 32,
            "attention_heads": 32, "kv_heads": 8, "head_dim": 128, "max_context": 8192, "default_context": 4096}
    merged = merged_catalog(catalog, [good])
    assert merged["my-7b"].builtin is False
    with pytest.raises(ConfigError, match="already a catalog model"):
        merged_catalog(catalog, [dict(good, id="mistral-7b")])
    with pytest.raises(ConfigError, match="quantization"):
        merged_catalog(catalog, [dict(good, precision="int4")])

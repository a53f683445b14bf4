"""Recommendations from Lambda's sample instance types, and the property that nothing returned fails to fit."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from soong.core.errors import UsageError
from soong.core.recommend import assess, recommend, smallest_setup
from soong.core.types import InstanceType, Region
from soong.core.vram import estimate
from soong.plugins.lambda_cloud.parsing import GPU_COMPUTE_CAPABILITY


def names(ranked):
    return [r.instance_type.name for r in ranked]


def test_8b_cheapest_fitting_type_first(catalog, sample_types):
    ranked = recommend(catalog["llama-3.1-8b"], sample_types, context=16384)
    # at 16k tokens the A10 (22.5 usable GiB) fits; the cheaper Turing RTX 6000 cannot run bf16.
    assert names(ranked)[0] == "gpu_1x_a10"
    assert "gpu_1x_rtx6000" not in names(ranked)
    assert "cpu_4x_general" not in names(ranked)
    prices = [r.instance_type.price_cents_per_hour for r in ranked]
    assert prices == sorted(prices)


def test_70b_bf16_needs_several_gpus(catalog, sample_types):
    ranked = recommend(catalog["llama-3.1-70b"], sample_types)
    assert ranked and all(r.instance_type.gpu_count >= 2 for r in ranked)
    for rec in ranked:
        assert rec.instance_type.total_vram_gib >= rec.fit.estimate.total_gib
        assert rec.fit.estimate.tp_size == rec.instance_type.gpu_count


def test_equal_price_ranks_capacity_first(catalog, sample_types):
    ranked = recommend(catalog["llama-3.1-8b"], sample_types)
    a100s = [r for r in ranked if r.instance_type.price_cents_per_hour == 129]
    assert [r.instance_type.name for r in a100s] == ["gpu_1x_a100_sxm4", "gpu_1x_a100"]  # SXM4 has capacity
    assert a100s[0].available and not a100s[1].available


def test_heads_rule_drops_eight_gpus_for_28_heads(catalog, sample_types):
    ranked = recommend(catalog["qwen2.5-7b"], sample_types)
    assert all(r.instance_type.gpu_count != 8 for r in ranked)
    assert any(r.instance_type.gpu_count == 4 for r in ranked)


def test_fp8_runs_on_ampere_through_marlin_but_not_older(catalog, sample_types):
    ranked = recommend(catalog["qwen3-32b-fp8"], sample_types)
    assert ranked
    assert {"A100", "A6000"} & {r.instance_type.gpu_model for r in ranked}
    assert assess(catalog["qwen3-32b-fp8"], next(t for t in sample_types if t.name == "gpu_8x_a100_80gb_sxm4")).fits
    fit = assess(catalog["qwen3-32b-fp8"], next(t for t in sample_types if t.name == "gpu_8x_v100"))
    assert not fit.fits and "fp8" in fit.problem


def _h100_like(name, capability):
    return InstanceType(name=name, description="", gpu_description=f"{name} (80 GB)", gpu_count=1, gpu_memory_gib=80,
                        price_cents_per_hour=100, regions_with_capacity=(Region("r1"),), compute_capability=capability)


def test_compute_capability_is_the_providers_word_and_unknown_fails_every_precision(catalog):
    spec = catalog["llama-3.1-8b"]
    # the GPU's name means nothing to core: a model it has never heard of fits when the provider states 9.0 ...
    assert assess(spec, _h100_like("Mystery GPU", 9.0)).fits
    # ... and a famous name without a stated capability fits nothing, whatever the precision
    for model_id in ("llama-3.1-8b", "qwen3-32b-fp8", "llama-3.1-70b-awq"):
        fit = assess(catalog[model_id], _h100_like("H100", None))
        assert not fit.fits and "compute capability is unknown" in fit.problem
    assert recommend(spec, [_h100_like("H100", None)]) == []
    assert not assess(spec, _h100_like("Old GPU", 7.0)).fits


def test_filters(catalog, sample_types):
    spec = catalog["llama-3.1-70b-awq"]
    cheap = recommend(spec, sample_types, max_price_cents=300)
    assert cheap and all(r.instance_type.price_cents_per_hour <= 300 for r in cheap)
    available = recommend(spec, sample_types, available_only=True, region="us-south-2")
    assert available and all(r.instance_type.has_capacity("us-south-2") for r in available)
    assert recommend(spec, sample_types, max_price_cents=10) == []


def test_context_checks(catalog, sample_types):
    with pytest.raises(UsageError, match="exceeds"):
        recommend(catalog["mistral-7b"], sample_types, context=65536)
    with pytest.raises(UsageError):
        recommend(catalog["mistral-7b"], sample_types, context=0)
    long = recommend(catalog["llama-3.1-8b"], sample_types, context=131072)
    assert "gpu_1x_a10" not in names(long)


def test_smallest_static_setup(catalog):
    assert smallest_setup(catalog["mistral-7b"]).instance_type.name == "gpu_1x_a10"
    seventy = smallest_setup(catalog["llama-3.1-70b"])
    assert seventy.instance_type.total_vram_gib >= estimate(catalog["llama-3.1-70b"], tp_size=seventy.instance_type.gpu_count).total_gib


gpu_models = st.sampled_from(sorted(GPU_COMPUTE_CAPABILITY) + ["Mystery GPU"])
instance_types = st.builds(
    lambda n, count, mem, price, gpu, cap: InstanceType(
        name=f"t{n}", description="", gpu_description=f"{gpu} ({mem:g} GB)", gpu_count=count, gpu_memory_gib=mem,
        price_cents_per_hour=price, regions_with_capacity=(Region("r1"),) if cap else (),
        compute_capability=GPU_COMPUTE_CAPABILITY.get(gpu)),
    st.integers(0, 10**6), st.integers(0, 16), st.floats(0, 256, allow_nan=False), st.integers(1, 10000), gpu_models,
    st.booleans(),
)


@settings(max_examples=200, deadline=None)
@given(types=st.lists(instance_types, max_size=12, unique_by=lambda t: t.name),
       model_id=st.sampled_from(["mistral-7b", "qwen2.5-7b", "qwen2.5-coder-32b", "qwen3-32b-fp8", "llama-3.1-70b",
                                 "qwen2.5-72b-gptq"]),
       context=st.integers(1, 32768), concurrency=st.integers(1, 8))
def test_recommendation_never_returns_a_setup_that_does_not_fit(catalog, types, model_id, context, concurrency):
    spec = catalog[model_id]
    ranked = recommend(spec, types, context=context, concurrency=concurrency)
    for rec in ranked:
        it = rec.instance_type
        need = estimate(spec, context, concurrency=concurrency, tp_size=it.gpu_count)
        assert it.gpu_count >= 1
        assert it.total_vram_gib >= need.total_gib
        assert spec.attention_heads % it.gpu_count == 0
        assert spec.kv_heads % it.gpu_count == 0 or it.gpu_count % spec.kv_heads == 0
    fitting = {t.name for t in types if assess(spec, t, context=context, concurrency=concurrency).fits}
    assert set(names(ranked)) == fitting
    keys = [(r.instance_type.price_cents_per_hour, not r.available) for r in ranked]
    assert keys == sorted(keys)

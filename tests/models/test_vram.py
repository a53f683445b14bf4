"""The VRAM estimate against published figures, and its properties."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from soong.core.vram import GIB, estimate, kv_bytes_per_token, max_context_for, tp_problem, weights_gib

GB = 1e9


def test_7b_bf16_weights_about_15_gb(catalog):
    # A 7B model in bf16 needs about 15 GB of weights (7.25e9 parameters x 2 bytes = 14.5 GB).
    weights_gb = weights_gib(catalog["mistral-7b"]) * GIB / GB
    assert 14.0 <= weights_gb <= 15.5


def test_llama_3_1_published_weights(catalog):
    # Hugging Face's Llama 3.1 release post (huggingface.co/blog/llama31, "Inference memory
    # requirements"): FP16 weights 8B = 16 GB, 70B = 140 GB; INT4 70B = 35 GB.
    assert weights_gib(catalog["llama-3.1-8b"]) * GIB / GB == pytest.approx(16, rel=0.03)
    assert weights_gib(catalog["llama-3.1-70b"]) * GIB / GB == pytest.approx(140, rel=0.03)
    int4_gb = weights_gib(catalog["llama-3.1-70b-awq"]) * GIB / GB
    assert 35 <= int4_gb <= 40


def test_llama_70b_awq_matches_its_model_card(catalog):
    # hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4 model card: ~35 GiB to load the checkpoint.
    assert weights_gib(catalog["llama-3.1-70b-awq"]) == pytest.approx(35, rel=0.05)


def test_llama_3_1_published_kv_cache(catalog):
    # Same post: KV cache (fp16) for 128k tokens: 8B = 15.62 GB, 70B = 39.06 GB (128,000 tokens, GiB).
    for model_id, published in (("llama-3.1-8b", 15.62), ("llama-3.1-70b", 39.06)):
        got = estimate(catalog[model_id], 128_000).kv_cache_gib
        assert got == pytest.approx(published, abs=0.01), model_id


def test_fp8_halves_the_bf16_weights(catalog):
    assert weights_gib(catalog["qwen3-32b-fp8"]) == pytest.approx(weights_gib(catalog["qwen3-32b"]) / 2)


def test_breakdown_adds_up_and_reserve_is_sglang_fraction(catalog):
    need = estimate(catalog["qwen2.5-coder-32b"], 16384, mem_fraction_static=0.8)
    assert need.total_gib == pytest.approx(need.weights_gib + need.kv_cache_gib + need.runtime_gib)
    # the static share is 0.8 of what is left after the CUDA context (SGLang's pre-load measurement)
    from soong.core.gpu_memory import overhead_gib

    static_base = need.total_gib - need.tp_size * overhead_gib(need.tp_size)
    assert (need.weights_gib + need.kv_cache_gib) / static_base == pytest.approx(0.8)


def test_kv_heads_replicate_when_tp_exceeds_them(catalog):
    spec = catalog["qwen2.5-7b"]  # 4 KV heads
    assert kv_bytes_per_token(spec, tp_size=4) == kv_bytes_per_token(spec, tp_size=1)
    assert kv_bytes_per_token(spec, tp_size=2) == kv_bytes_per_token(spec)
    wider = dataclasses.replace(spec, attention_heads=32, kv_heads=4)
    assert kv_bytes_per_token(wider, tp_size=8) == 2 * kv_bytes_per_token(wider, tp_size=1)


def test_tp_problem(catalog):
    assert tp_problem(catalog["qwen2.5-7b"], 8) is not None  # 28 heads
    assert tp_problem(catalog["qwen2.5-7b"], 4) is None
    assert tp_problem(catalog["qwen2.5-coder-32b"], 3) is not None  # 40 heads
    assert tp_problem(catalog["llama-3.1-70b"], 8) is None
    assert tp_problem(catalog["llama-3.1-70b"], 0) == "no GPU"


def test_bad_arguments_raise(catalog):
    with pytest.raises(ValueError):
        estimate(catalog["mistral-7b"], 0)
    with pytest.raises(ValueError):
        estimate(catalog["mistral-7b"], 1024, mem_fraction_static=1.5)


model_ids = st.sampled_from(["mistral-7b", "qwen2.5-7b", "llama-3.1-8b", "qwen3-32b-fp8", "llama-3.1-70b-awq",
                             "deepseek-r1-distill-llama-70b", "qwen2.5-72b-gptq"])


@settings(max_examples=200, deadline=None)
@given(model_id=model_ids, a=st.integers(1, 131072), b=st.integers(1, 131072), concurrency=st.integers(1, 64),
       tp=st.sampled_from([1, 2, 4, 8]))
def test_estimate_is_monotonic_in_context(catalog, model_id, a, b, concurrency, tp):
    spec = catalog[model_id]
    low, high = sorted((a, b))
    small = estimate(spec, low, concurrency=concurrency, tp_size=tp)
    large = estimate(spec, high, concurrency=concurrency, tp_size=tp)
    assert small.total_gib <= large.total_gib
    assert small.weights_gib == large.weights_gib
    if high > low:
        assert large.kv_cache_gib > small.kv_cache_gib


@settings(max_examples=100, deadline=None)
@given(model_id=model_ids, context=st.integers(1, 32768), c1=st.integers(1, 32), c2=st.integers(1, 32))
def test_estimate_is_monotonic_in_concurrency(catalog, model_id, context, c1, c2):
    spec = catalog[model_id]
    low, high = sorted((c1, c2))
    assert estimate(spec, context, concurrency=low).total_gib <= estimate(spec, context, concurrency=high).total_gib


@settings(max_examples=150, deadline=None)
@given(model_id=model_ids, vram=st.floats(1, 1500), gpus=st.sampled_from([1, 2, 4, 8]))
def test_max_context_is_the_largest_that_fits(catalog, model_id, vram, gpus):
    spec = catalog[model_id]
    best = max_context_for(spec, vram, gpu_count=gpus)
    assert 0 <= best <= spec.max_context
    if best:
        assert estimate(spec, best, tp_size=gpus).total_gib <= vram + 1e-9
    if best < spec.max_context:
        assert estimate(spec, best + 1, tp_size=gpus).total_gib > vram - 1e-9

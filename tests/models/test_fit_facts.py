"""The facts the fit relies on: usable GiB per GPU model, SGLang's pool rule, FP8 on Ampere, no --quantization."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from soong.core import gpu_memory
from soong.core.gpu_memory import CUDA_CONTEXT_GIB, NVIDIA_SMI_MEMORY_MIB, derated_gib, overhead_gib, usable
from soong.core.recommend import MIN_COMPUTE_CAPABILITY, STATIC_SETUPS, assess, recommend, usable_vram_gib
from soong.core.types import InstanceType
from soong.core.vram import GIB, estimate, kv_bytes_per_token, max_context_for, pool_gib, pool_tokens, weights_gib
from soong.plugins.lambda_cloud.parsing import compute_capability


def a10(count: int = 1) -> InstanceType:
    return InstanceType(name=f"gpu_{count}x_a10", description=f"{count}x A10 (24 GB PCIe)",
                        gpu_description="A10 (24 GB PCIe)", gpu_count=count, gpu_memory_gib=24, price_cents_per_hour=75,
                        compute_capability=8.6)


def test_an_a10_offers_what_nvidia_smi_reports_not_its_marketed_24_gb():
    assert NVIDIA_SMI_MEMORY_MIB[("A10", 24)] == 23028
    assert usable("A10", 24).gib == pytest.approx(23028 / 1024)
    assert usable_vram_gib(a10()) == pytest.approx(22.49, abs=0.01)
    assert usable_vram_gib(a10()) < 24


def test_qwen3_8b_at_32k_does_not_fit_a_single_a10_because_the_pool_holds_about_25k_tokens(catalog):
    spec = catalog["qwen3-8b"]
    tokens = pool_tokens(spec, usable("A10", 24).gib)
    # (22.49 - 1.25) x 0.88 - 15.26 GiB of bf16 weights = 3.43 GiB at 144 KiB a token
    assert kv_bytes_per_token(spec) == 2 * 36 * 8 * 128 * 2
    assert 24_000 < tokens < 28_000
    fit = assess(spec, a10(), context=32768)
    assert not fit.fits and "usable" in fit.problem
    assert assess(spec, a10(), context=16384).fits
    # counted the old way (24 GiB, no CUDA context) it would have fitted: the fact this test guards
    assert (spec.params_billion * 2e9 / GIB + kv_bytes_per_token(spec) * 32768 / GIB) / 0.88 < 24


def test_the_estimate_and_the_pool_agree_at_the_boundary(catalog):
    spec = catalog["qwen3-8b"]
    tokens = pool_tokens(spec, usable("A10", 24).gib)
    assert estimate(spec, tokens).total_gib <= usable("A10", 24).gib
    assert estimate(spec, tokens + 8).total_gib > usable("A10", 24).gib
    assert max_context_for(spec, usable("A10", 24).gib) == tokens


def test_pool_follows_sglang_rule(catalog):
    spec = catalog["llama-3.1-70b-awq"]
    u = usable("H100", 80).gib
    assert pool_gib(spec, u) == pytest.approx((u - CUDA_CONTEXT_GIB) * 0.88 - weights_gib(spec))
    assert pool_gib(spec, u, gpu_count=2) == pytest.approx(2 * ((u - overhead_gib(2)) * 0.88 - weights_gib(spec) / 2))


def test_unknown_gpus_are_derated_and_say_so():
    odd = usable("X9000", 24)
    assert not odd.measured and odd.gib == pytest.approx(24e9 / 2**30) and "no nvidia-smi reading" in odd.note
    assert odd.gib < usable("A10", 24).gib
    assert usable("NVIDIA RTX A6000", 48).measured and usable("A6000", 48).gib == pytest.approx(49140 / 1024)


def test_every_measured_gpu_offers_less_than_marketed_gib_and_more_than_the_derating():
    for (model, marketed), mib in NVIDIA_SMI_MEMORY_MIB.items():
        assert mib / 1024 <= marketed + 1, model  # never more than sold (H200: 141 GB -> 140.4 GiB)
        assert mib / 1024 >= derated_gib(marketed) * 0.99, model


def test_fp8_checkpoints_are_offered_on_ampere(catalog, sample_types):
    assert MIN_COMPUTE_CAPABILITY["fp8"] == 8.0
    ranked = recommend(catalog["qwen3-32b-fp8"], sample_types)
    models = {r.instance_type.gpu_model for r in ranked}
    assert {"A6000", "A100"} <= models
    a6000 = next(t for t in sample_types if t.name == "gpu_1x_a6000")
    assert assess(catalog["qwen3-32b-fp8"], a6000).fits
    # Volta and Turing have no Marlin FP8
    for name in ("gpu_8x_v100", "gpu_1x_rtx6000"):
        fit = assess(catalog["qwen3-32b-fp8"], next(t for t in sample_types if t.name == name))
        assert not fit.fits and "fp8" in fit.problem


def test_models_recommend_qwen3_32b_fp8_lists_an_ampere_type(run_soong, plugin_site):
    from tests.models.test_commands import KEY, ok_json

    rows = ok_json(run_soong("models", "recommend", "qwen3-32b-fp8", "-f", "json", env={**plugin_site, **KEY}))
    assert any(("A6000" in row["GPUs"] or "A100" in row["GPUs"]) for row in rows), rows
    a6000 = next(row for row in rows if row["Instance type"] == "gpu_1x_a6000")
    assert a6000["VRAM (GiB)"] == pytest.approx(48.0, abs=0.05)  # usable: 49140 MiB, not "48 GB"


@pytest.mark.parametrize("model_id", ["qwen2.5-coder-32b-awq", "llama-3.1-70b-awq", "qwen2.5-72b-gptq", "qwen3-32b-fp8"])
def test_quantized_checkpoints_start_without_a_quantization_flag(make_plan, model_id):
    from soong.plugins.sglang.userdata import sglang_command

    command = sglang_command(make_plan(model_id, 2 if "70b" in model_id or "72b" in model_id else 1))
    assert "--quantization" not in command
    assert command[command.index("--mem-fraction-static") + 1] == "0.88"


# -- properties -------------------------------------------------------------------------------------------

models = st.sampled_from(["mistral-7b", "qwen3-8b", "llama-3.1-8b", "qwen2.5-coder-32b-awq", "qwen3-32b-fp8",
                          "llama-3.1-70b", "qwen2.5-72b-gptq"])
def _type(gpu: str, gb: float, count: int) -> InstanceType:
    return InstanceType(name="t", description="", gpu_description=f"{gpu} ({gb:g} GB)", gpu_count=count,
                        gpu_memory_gib=gb, price_cents_per_hour=100, compute_capability=compute_capability(gpu))


@settings(max_examples=300, deadline=None)
@given(model_id=models, count=st.sampled_from([1, 2, 4, 8]), small=st.integers(8, 300), extra=st.integers(0, 300),
       context=st.integers(1, 32768))
def test_more_memory_never_unfits(catalog, model_id, count, small, extra, context):
    spec = catalog[model_id]  # an unknown GPU model: its usable memory grows with what it is sold as
    if assess(spec, _type("X9000", small, count), context=context).fits:
        assert assess(spec, _type("X9000", small + extra, count), context=context).fits


@settings(max_examples=200, deadline=None)
@given(model_id=models, pair=st.sampled_from([("A100", 40, 80)]), count=st.sampled_from([1, 2, 4, 8]),
       context=st.integers(1, 32768))
def test_a_bigger_board_of_the_same_gpu_never_unfits(catalog, model_id, pair, count, context):
    gpu, small, big = pair
    assert usable(gpu, small).measured and usable(gpu, big).measured
    if assess(catalog[model_id], _type(gpu, small, count), context=context).fits:
        assert assess(catalog[model_id], _type(gpu, big, count), context=context).fits


@settings(max_examples=200, deadline=None)
@given(model_id=models, setup=st.sampled_from(STATIC_SETUPS), short=st.integers(1, 32768), longer=st.integers(0, 8192))
def test_a_longer_context_never_fits_where_a_shorter_did_not(catalog, model_id, setup, short, longer):
    spec = catalog[model_id]
    long = min(short + longer, spec.max_context)
    if assess(spec, setup, context=long).fits:
        assert assess(spec, setup, context=short).fits


@settings(max_examples=100, deadline=None)
@given(model_id=models, usable_gib=st.floats(10, 200), count=st.sampled_from([1, 2, 4, 8]))
def test_the_pool_is_what_the_estimate_leaves(catalog, model_id, usable_gib, count):
    spec = catalog[model_id]
    tokens = pool_tokens(spec, usable_gib, gpu_count=count)
    if tokens:
        assert estimate(spec, tokens, tp_size=count).total_gib <= usable_gib * count + 1e-6


def test_the_context_overhead_is_what_the_docs_cite():
    # 0.84-1.22 GiB gone before the weights on an H100 in SGLang's logs: the constant covers the worst case
    assert 1.22 <= gpu_memory.CUDA_CONTEXT_GIB <= 1.5
    assert dataclasses.is_dataclass(usable("A10", 24))

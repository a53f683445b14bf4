"""The built-in model catalog.

Every entry's architecture facts come from its checkpoint's ``config.json`` on
Hugging Face (``num_hidden_layers``, ``num_attention_heads``,
``num_key_value_heads``, ``head_dim`` or ``hidden_size / num_attention_heads``,
``max_position_embeddings``); the parameter count from its model card. The
``source`` field of each entry names the file the facts were read from.

``precision`` is what the checkpoint really stores. Quantized entries point at
quantized checkpoints (an ``int4`` entry at an AWQ or GPTQ repository, an ``fp8``
entry at an FP8 one) and carry the checkpoint's ``quantization_config.quant_method``
(SGLang's name for it). The bootstrap does not pass it to SGLang, which reads it
from the checkpoint and picks its Marlin kernels itself (see ``sglang_command``). ``default_context`` is
what soong launches with unless told otherwise: the model's native window, capped
at 32k tokens so that the KV cache stays a fraction of the weights.
"""

from __future__ import annotations

from soong.core.types import ModelSpec

_HF = "https://huggingface.co/{}/blob/main/config.json"


def _entry(**values) -> ModelSpec:
    values.setdefault("source", _HF.format(values["hf_path"]))
    return ModelSpec(builtin=True, **values)


BUILTIN_MODELS: tuple[ModelSpec, ...] = (
    # --- 7-8B -------------------------------------------------------------------------
    _entry(
        id="mistral-7b", hf_path="mistralai/Mistral-7B-Instruct-v0.3", params_billion=7.25, precision="bf16",
        # config.json: 32 layers, 32 heads, 8 KV heads, hidden 4096 (head_dim 128), 32768 positions
        layers=32, attention_heads=32, kv_heads=8, head_dim=128, max_context=32768, default_context=32768,
        good_for="cheap chat, summaries, classification", not_good_for="code, maths, long documents",
    ),
    _entry(
        id="qwen2.5-7b", hf_path="Qwen/Qwen2.5-7B-Instruct", params_billion=7.62, precision="bf16",
        # config.json: 28 layers, 28 heads, 4 KV heads, hidden 3584 (head_dim 128), 32768 positions
        layers=28, attention_heads=28, kv_heads=4, head_dim=128, max_context=32768, default_context=32768,
        good_for="multilingual chat, JSON output, light code", not_good_for="8-GPU setups (28 heads)",
    ),
    _entry(
        id="llama-3.1-8b", hf_path="meta-llama/Llama-3.1-8B-Instruct", params_billion=8.03, precision="bf16",
        # config.json: 32 layers, 32 heads, 8 KV heads, hidden 4096 (head_dim 128), 131072 positions
        layers=32, attention_heads=32, kv_heads=8, head_dim=128, max_context=131072, default_context=32768,
        good_for="fast chat, tool use, drafts", not_good_for="hard reasoning",
    ),
    _entry(
        id="qwen3-8b", hf_path="Qwen/Qwen3-8B", params_billion=8.19, precision="bf16",
        # config.json: 36 layers, 32 heads, 8 KV heads, head_dim 128, 40960 positions (32768 native context)
        layers=36, attention_heads=32, kv_heads=8, head_dim=128, max_context=40960, default_context=32768,
        good_for="reasoning on a budget (thinking mode), agents", not_good_for="long documents past 32k",
    ),
    # --- 24-32B -----------------------------------------------------------------------
    _entry(
        id="mistral-small-24b", hf_path="mistralai/Mistral-Small-24B-Instruct-2501", params_billion=23.6,
        precision="bf16",
        # config.json: 40 layers, 32 heads, 8 KV heads, head_dim 128, 32768 positions
        layers=40, attention_heads=32, kv_heads=8, head_dim=128, max_context=32768, default_context=32768,
        good_for="strong general assistant on one 80 GB GPU", not_good_for="long documents",
    ),
    _entry(
        id="qwen2.5-coder-32b", hf_path="Qwen/Qwen2.5-Coder-32B-Instruct", params_billion=32.8, precision="bf16",
        # config.json: 64 layers, 40 heads, 8 KV heads, hidden 5120 (head_dim 128), 32768 positions
        layers=64, attention_heads=40, kv_heads=8, head_dim=128, max_context=32768, default_context=32768,
        good_for="code generation, review and repair", not_good_for="general chat, 3-GPU splits",
    ),
    _entry(
        id="qwen2.5-coder-32b-awq", hf_path="Qwen/Qwen2.5-Coder-32B-Instruct-AWQ", params_billion=32.8,
        precision="int4", quantization="awq",
        # config.json: same architecture as Qwen2.5-Coder-32B-Instruct; quantization_config: awq, 4 bits, group 128
        layers=64, attention_heads=40, kv_heads=8, head_dim=128, max_context=32768, default_context=32768,
        good_for="code on a single 40-48 GB GPU", not_good_for="highest-fidelity output (4-bit weights)",
    ),
    _entry(
        id="deepseek-r1-distill-qwen-32b", hf_path="deepseek-ai/DeepSeek-R1-Distill-Qwen-32B", params_billion=32.8,
        precision="bf16",
        # config.json (Qwen2.5-32B base): 64 layers, 40 heads, 8 KV heads, hidden 5120, 131072 positions
        layers=64, attention_heads=40, kv_heads=8, head_dim=128, max_context=131072, default_context=32768,
        good_for="step-by-step reasoning, maths", not_good_for="quick answers (long thinking output)",
    ),
    _entry(
        id="qwen3-32b", hf_path="Qwen/Qwen3-32B", params_billion=32.8, precision="bf16",
        # config.json: 64 layers, 64 heads, 8 KV heads, head_dim 128, 40960 positions (32768 native context)
        layers=64, attention_heads=64, kv_heads=8, head_dim=128, max_context=40960, default_context=32768,
        good_for="reasoning and agents (thinking mode), multilingual", not_good_for="single 40 GB GPUs",
    ),
    _entry(
        id="qwen3-32b-fp8", hf_path="Qwen/Qwen3-32B-FP8", params_billion=32.8, precision="fp8", quantization="fp8",
        # config.json: same architecture as Qwen3-32B; quantization_config: fp8, 128x128 weight blocks
        layers=64, attention_heads=64, kv_heads=8, head_dim=128, max_context=40960, default_context=32768,
        good_for="Qwen3-32B on one 48-80 GB GPU (Marlin FP8 on A100/A6000)",
        not_good_for="top speed on Ampere (weight-only FP8 there)",
    ),
    # --- 70B+ -------------------------------------------------------------------------
    _entry(
        id="llama-3.1-70b", hf_path="meta-llama/Llama-3.1-70B-Instruct", params_billion=70.6, precision="bf16",
        # config.json: 80 layers, 64 heads, 8 KV heads, hidden 8192 (head_dim 128), 131072 positions
        layers=80, attention_heads=64, kv_heads=8, head_dim=128, max_context=131072, default_context=32768,
        good_for="general assistant work, long documents", not_good_for="single-GPU budgets",
    ),
    _entry(
        id="llama-3.1-70b-awq", hf_path="hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4", params_billion=70.6,
        precision="int4", quantization="awq",
        # config.json: Llama-3.1-70B architecture; quantization_config: awq, 4 bits, group 128 (model card: ~35 GiB to load)
        layers=80, attention_heads=64, kv_heads=8, head_dim=128, max_context=131072, default_context=32768,
        good_for="70B quality on one 80 GB GPU", not_good_for="exact bf16 fidelity",
    ),
    _entry(
        id="llama-3.3-70b", hf_path="meta-llama/Llama-3.3-70B-Instruct", params_billion=70.6, precision="bf16",
        # config.json: 80 layers, 64 heads, 8 KV heads, hidden 8192 (head_dim 128), 131072 positions
        layers=80, attention_heads=64, kv_heads=8, head_dim=128, max_context=131072, default_context=32768,
        good_for="best Llama 70B for chat, code and tool use", not_good_for="single-GPU budgets",
    ),
    _entry(
        id="deepseek-r1-distill-llama-70b", hf_path="deepseek-ai/DeepSeek-R1-Distill-Llama-70B", params_billion=70.6,
        precision="bf16",
        # config.json (Llama-3.3-70B base): 80 layers, 64 heads, 8 KV heads, hidden 8192, 131072 positions
        layers=80, attention_heads=64, kv_heads=8, head_dim=128, max_context=131072, default_context=32768,
        good_for="hard reasoning, maths, planning", not_good_for="latency-sensitive chat",
    ),
    _entry(
        id="qwen2.5-72b-gptq", hf_path="Qwen/Qwen2.5-72B-Instruct-GPTQ-Int4", params_billion=72.7,
        precision="int4", quantization="gptq",
        # config.json: 80 layers, 64 heads, 8 KV heads, hidden 8192, 32768 positions; quantization_config: gptq, 4 bits, group 128
        layers=80, attention_heads=64, kv_heads=8, head_dim=128, max_context=32768, default_context=32768,
        good_for="72B multilingual quality on one 80 GB GPU", not_good_for="contexts past 32k",
    ),
)

"""The built-in model catalog. Facts come from each checkpoint's config.json on Hugging Face
(``num_hidden_layers``, ``num_attention_heads``, ``num_key_value_heads``, ``head_dim`` or
hidden_size / heads, ``max_position_embeddings``); the parameter count from its model card."""

from __future__ import annotations

from soong.core.types import ModelSpec

BUILTIN_MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        id="llama-3.1-8b", hf_path="meta-llama/Llama-3.1-8B-Instruct", params_billion=8.03, precision="bf16",
        layers=32, attention_heads=32, kv_heads=8, head_dim=128, max_context=131072, default_context=32768,
        good_for="fast chat, tool use, drafts", not_good_for="hard reasoning",
        source="https://huggingface.co/meta-llama/Llama-3.1-8B-Instruct/blob/main/config.json", builtin=True,
    ),
    ModelSpec(
        id="llama-3.1-70b", hf_path="meta-llama/Llama-3.1-70B-Instruct", params_billion=70.6, precision="bf16",
        layers=80, attention_heads=64, kv_heads=8, head_dim=128, max_context=131072, default_context=32768,
        good_for="general assistant work, long documents", not_good_for="single-GPU budgets",
        source="https://huggingface.co/meta-llama/Llama-3.1-70B-Instruct/blob/main/config.json", builtin=True,
    ),
    ModelSpec(
        id="mistral-7b", hf_path="mistralai/Mistral-7B-Instruct-v0.3", params_billion=7.25, precision="bf16",
        layers=32, attention_heads=32, kv_heads=8, head_dim=128, max_context=32768, default_context=32768,
        good_for="cheap chat and summarising", not_good_for="code, long context",
        source="https://huggingface.co/mistralai/Mistral-7B-Instruct-v0.3/blob/main/config.json", builtin=True,
    ),
)

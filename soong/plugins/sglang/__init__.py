"""The built-in SGLang plugin: the default model catalog served with SGLang."""

from __future__ import annotations

from soong import hookimpl


@hookimpl
def soong_register_models(register):
    """Register the built-in catalog (see :mod:`soong.plugins.sglang.catalog`)."""
    from soong.plugins.sglang.catalog import BUILTIN_MODELS

    for spec in BUILTIN_MODELS:
        register(spec)

"""The built-in SGLang plugin: the default model catalog and the instance bootstrap.

It registers the catalog (:mod:`soong.plugins.sglang.catalog`) and contributes the
user-data parts that bring up the status daemon, the persistent file system,
SGLang and n8n (:mod:`soong.plugins.sglang.userdata`).
"""

from __future__ import annotations

from soong import hookimpl


@hookimpl
def soong_register_models(register):
    """Register the built-in catalog (see :mod:`soong.plugins.sglang.catalog`)."""
    from soong.plugins.sglang.catalog import BUILTIN_MODELS

    for spec in BUILTIN_MODELS:
        register(spec)


@hookimpl
def soong_serving_requirements():
    """What the pinned SGLang installs on (see :mod:`soong.plugins.sglang.platform`)."""
    from soong.plugins.sglang.platform import serving_requirements

    return serving_requirements()


@hookimpl
def soong_user_data_parts(launch):
    """The built-in parts: status daemon, file system, SGLang and n8n (as ``launch.services`` says)."""
    from soong.plugins.sglang.userdata import builtin_parts

    return builtin_parts(launch)

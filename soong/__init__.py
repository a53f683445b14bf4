"""soong: launch, watch and stop LLM-serving GPU instances without paying for forgotten ones.

A plugin author needs one import::

    from soong import hookimpl

Everything else a plugin implements (the interfaces of providers, tunnel
backends and cost sinks, and the shared types) lives in :mod:`soong.core`.
"""

import pluggy

__version__ = "0.1.0"

#: Marker for plugin hook implementations (``@hookimpl def soong_register_providers(register): ...``).
hookimpl = pluggy.HookimplMarker("soong")

__all__ = ["hookimpl", "__version__"]

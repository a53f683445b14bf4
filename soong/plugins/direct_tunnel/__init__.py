"""The built-in ``direct`` tunnel backend: no SSH, the instance's ports are reached as they are.

For a local sandbox (the "instance" is this machine) and for private networks
where the instance's ports are routable from here.
"""

from __future__ import annotations

from soong import hookimpl


@hookimpl
def soong_register_tunnel_backends(register):
    """Register the ``direct`` backend."""
    from soong.plugins.direct_tunnel.backend import DirectBackend

    register(DirectBackend)

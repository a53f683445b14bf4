"""The built-in ``plumbum-ssh`` tunnel backend: SSH port forwards to an instance.

Host keys are trusted on first use into soong's own known_hosts file, keyed per
instance; see ``docs/ssh.md``.
"""

from __future__ import annotations

from soong import hookimpl


@hookimpl
def soong_register_tunnel_backends(register):
    """Register the ``plumbum-ssh`` backend."""
    from soong.plugins.plumbum_ssh.backend import PlumbumSshBackend

    register(PlumbumSshBackend)


def forget_instance(context, instance_id: str) -> int:
    """Forget the SSH host key of a terminated instance; return how many known_hosts lines went."""
    from soong.plugins.plumbum_ssh.hostkeys import forget_host_key
    from soong.plugins.plumbum_ssh.options import known_hosts_path

    return forget_host_key(known_hosts_path(context), instance_id)

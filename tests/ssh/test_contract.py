"""The tunnel backend contract, run for both built-in backends."""

from __future__ import annotations

import pytest

from soong.core.types import TunnelTarget
from soong.plugins import direct_tunnel, plumbum_ssh
from soong.testing.tunnel_contract import TunnelBackendContract


class TestPlumbumSshContract(TunnelBackendContract):
    plugin = plumbum_ssh
    backend_name = "plumbum-ssh"
    owns_local_ports = True

    @pytest.fixture(autouse=True)
    def _server(self, sshd):
        self.sshd = sshd

    def tunnel_env(self):
        return {"SOONG_SSH_USER": self.sshd.user, "SOONG_SSH_PORT": str(self.sshd.port),
                "SOONG_SSH_KEY_PATH": str(self.sshd.client_key)}

    def tunnel_target(self, instance_id):
        return TunnelTarget(instance_id=instance_id, host=self.sshd.host, name=f"name-{instance_id}")


class TestDirectContract(TunnelBackendContract):
    plugin = direct_tunnel
    backend_name = "direct"
    owns_local_ports = False

    def tunnel_target(self, instance_id):
        return TunnelTarget(instance_id=instance_id, host="127.0.0.1")

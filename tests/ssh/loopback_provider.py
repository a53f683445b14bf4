"""A test-only provider plugin: instances read from a JSON file, reachable on this machine.

It stands in for the real provider (it registers as ``lambda`` with ``override=True``)
so the SSH commands can be driven end to end against a private sshd on 127.0.0.1.
The file named by ``$SOONG_TEST_LOOPBACK_INSTANCES`` holds
``{"instances": [Instance fields...], "ssh_keys": [SshKey fields...]}``.
"""

from __future__ import annotations

import json
from pathlib import Path

from soong import hookimpl
from soong.core.errors import ApiNotFoundError, SoongError
from soong.core.interfaces import Provider
from soong.core.types import Instance, SshKey

ENV_VAR = "SOONG_TEST_LOOPBACK_INSTANCES"


class LoopbackProvider(Provider):
    """Instances and keys from a JSON file; it cannot launch or terminate anything."""

    name = "lambda"

    def _data(self) -> dict:
        return json.loads(Path(self.context.env[ENV_VAR]).read_text())

    def self_termination(self):
        from soong.core.types import SelfTermination

        return SelfTermination("https://loopback.invalid/api/v1", "lambda_api_key")

    def list_instances(self):
        return [Instance(**{**raw, "ssh_key_names": tuple(raw.get("ssh_key_names", ()))})
                for raw in self._data()["instances"]]

    def get_instance(self, instance_id):
        for instance in self.list_instances():
            if instance.id == instance_id:
                return instance
        raise ApiNotFoundError(f"instance {instance_id} not found", code="global/object-does-not-exist", status=404)

    def list_ssh_keys(self):
        return [SshKey(**raw) for raw in self._data().get("ssh_keys", [])]

    def list_instance_types(self):
        return []

    def list_file_systems(self):
        return []

    def launch(self, request):
        raise SoongError("the loopback test provider cannot launch instances")

    def terminate(self, instance_ids):
        raise SoongError("the loopback test provider cannot terminate instances")


@hookimpl
def soong_secrets(register):
    """The API key secret, declared as the Lambda plugin declares it (this provider stands in for it)."""
    from soong.core.secrets import Secret

    register(Secret("lambda_api_key", "LAMBDA_API_KEY", "the stood-in provider's API key"))


@hookimpl
def soong_register_providers(register):
    """Register the loopback provider in place of the real one."""
    register(LoopbackProvider, override=True)

"""A small third-party provider plugin, ``acme``, registered next to Lambda (not in its place).

It declares its own config keys (``acme.*``) and secret (``acme_api_key``), names
its instances its own way, shows its own launch request, logs in as its own user,
states the compute capability of its GPUs and tells the daemon its own API. Tests
load it in-process and as an installed plugin (a ``*.dist-info`` folder on
PYTHONPATH) for runs of the real ``soong`` executable. It talks to no API.
"""

from __future__ import annotations

import secrets as _random

from soong import hookimpl
from soong.core.config_schema import Key, url_check
from soong.core.errors import ApiNotFoundError, SoongError
from soong.core.interfaces import Provider
from soong.core.secrets import Secret
from soong.core.types import InstanceType, Region, SelfTermination, SshKey

#: What each registration hook received as ``context`` (tests check it is the command's).
SEEN_CONTEXTS: list = []
#: GPUs Acme sells, with the compute capability Acme states; "Q9" is one it does not know.
ACME_GPUS = {"AX1": 9.0, "Q9": None}


class AcmeProvider(Provider):
    """Acme Cloud: machines named ``acme-<token>-<name>``, launched with ``PUT /v2/machines``."""

    name = "acme"
    name_limit = 40
    region_key = "acme.region"
    ssh_key_name_key = "acme.key_name"

    def new_token(self):
        return "ac" + _random.token_hex(4)

    def instance_name(self, name, token):
        return f"acme-{token}-{name}"[: self.name_limit]

    def launch_preview(self, request):
        label = self.instance_name(request.name, request.token or self.new_token())
        return "PUT /v2/machines", {"label": label, "size": request.instance_type, "zone": request.region,
                                    "login_key": request.ssh_key_name, "cloud_init": request.user_data}

    def ssh_user(self):
        return "acme-admin"

    def self_termination(self):
        return SelfTermination(api_url=self.context.config.get("acme.api_url"), api_key_secret="acme_api_key")

    def list_instance_types(self):
        return [InstanceType(name=f"acme_1x_{gpu.lower()}", description=f"1x {gpu}", gpu_description=f"{gpu} (80 GB)",
                             gpu_count=1, gpu_memory_gib=80, price_cents_per_hour=150 + index,
                             regions_with_capacity=(Region("acme-west"), Region("acme-east")), compute_capability=cc)
                for index, (gpu, cc) in enumerate(ACME_GPUS.items())]

    def list_instances(self):
        return []

    def get_instance(self, instance_id):
        raise ApiNotFoundError(f"acme has no instance {instance_id}")

    def launch(self, request):
        raise SoongError("the acme test provider launches nothing")

    def terminate(self, instance_ids):
        raise SoongError("the acme test provider terminates nothing")

    def list_ssh_keys(self):
        return [SshKey(id="k1", name="acme-key", public_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAcme acme")]

    def list_file_systems(self):
        return []


@hookimpl
def soong_register_providers(register, context):
    SEEN_CONTEXTS.append(context)
    register(AcmeProvider)


@hookimpl
def soong_config_keys(register, context):
    SEEN_CONTEXTS.append(context)
    register(Key("acme.api_url", "str", "https://api.acme.example/v2", "Base URL of the Acme Cloud API.",
                 check=url_check, api_endpoint=True, ask=True))
    register(Key("acme.region", "str", None, "Zone Acme launches in (None: the first with capacity).", nullable=True,
                 ask=True))
    register(Key("acme.key_name", "str", None, "Account SSH key Acme launches with.", nullable=True))
    register(Key("acme.timeout_seconds", "float", 20.0, "Read timeout of one Acme API request.", minimum=1,
                 maximum=300))


@hookimpl
def soong_secrets(register):
    register(Secret("acme_api_key", "ACME_API_KEY", "API key of the Acme Cloud account.", ask=True))

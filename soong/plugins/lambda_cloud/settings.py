"""The ``lambda.*`` configuration keys and the ``lambda_api_key`` secret, declared by the Lambda plugin.

Core knows nothing about them: :func:`keys` and :func:`secrets` are what the
plugin's ``soong_config_keys`` and ``soong_secrets`` hooks register, and
``docs/configuration.md`` lists them under the plugin.
"""

from __future__ import annotations

from soong.core.config_schema import Key, name_check, url_check
from soong.core.secrets import Secret

#: The keys the provider reads its launch defaults from (see :class:`~soong.core.interfaces.Provider`).
REGION_KEY = "lambda.default_region"
FILESYSTEM_KEY = "lambda.filesystem_name"
SSH_KEY_NAME_KEY = "lambda.ssh_key_name"
#: The secret holding the API key (``LAMBDA_API_KEY`` overrides it).
API_KEY_SECRET = "lambda_api_key"

KEYS: tuple[Key, ...] = (
    Key("lambda.api_url", "str", "https://cloud.lambda.ai/api/v1", "Base URL of the Lambda Cloud API.", check=url_check,
        api_endpoint=True),
    Key(REGION_KEY, "str", None, "Region to launch in (e.g. us-east-1).", nullable=True, check=name_check),
    Key(FILESYSTEM_KEY, "str", None, "Persistent file system to attach (regional).", nullable=True, check=name_check),
    Key(SSH_KEY_NAME_KEY, "str", None, "Name of the account SSH key to launch with.", nullable=True),
    Key("lambda.timeout_seconds", "float", 30.0, "Read timeout of one API request.", minimum=1, maximum=600),
    Key("lambda.connect_timeout_seconds", "float", 5.0, "Connect timeout of one API request.", minimum=0.1, maximum=120),
    Key("lambda.retry_budget_seconds", "float", 60.0, "Most time spent retrying one API call (waits included).", minimum=0, maximum=3600),
    Key("lambda.retry_base_seconds", "float", 1.0, "First retry delay; it doubles per attempt (with jitter).", minimum=0, maximum=60),
    Key("lambda.request_interval_seconds", "float", 1.1, "Client-side spacing of API requests, shared by all soong processes (Lambda allows about 1/s; the rest is a margin for network jitter).", minimum=0, maximum=60),
    Key("lambda.launch_interval_seconds", "float", 12.5, "Client-side spacing of launches (Lambda allows 1 per 12 s).", minimum=0, maximum=600),
    Key("lambda.image_family", "str", "lambda-stack-24-04", "Machine image family launches boot (Ubuntu 24.04 with Lambda Stack and Python 3.12 by default). Before each launch the image of this family for the instance type's architecture (x86_64 or arm64) and region is read from GET /images; see docs/lambda.md.", check=name_check),
    Key("lambda.launch_lookup_seconds", "float", 30.0, "After an ambiguous launch failure, how long to look for the instance by its name token.", minimum=0, maximum=600),
)

SECRETS: tuple[Secret, ...] = (
    Secret(API_KEY_SECRET, "LAMBDA_API_KEY", "Lambda Cloud API key (soong configure checks and stores it)."),
)

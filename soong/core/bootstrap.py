"""The instance bootstrap: what is launched (:class:`LaunchPlan`) and the cloud-init user data for it.

Plugins contribute :class:`UserDataPart` objects through the hook
``soong_user_data_parts(launch)``. :func:`render_user_data` assembles them into
one MIME multipart document: first a single ``text/cloud-config`` part (every
cloud-config contribution merged: lists such as ``write_files`` and ``bootcmd``
concatenated in part order), then every ``text/x-shellscript`` part, ordered by
``UserDataPart.order`` (cloud-init runs them in that order, by file name). The
result must stay under the provider's limit (:data:`USER_DATA_LIMIT`).

Secrets travel only inside ``write_files`` entries with mode ``0600``;
:func:`redact_user_data` masks them for display and :func:`extract_daemon_bundle`
reads the status daemon's config and secret files back out of a rendered
document (the local sandbox starts a real daemon from it). The Hugging Face token
never travels in the user data, and the Lambda API key does not either with
``secrets.api_key_delivery: ssh``: soong delivers them over SSH after boot
(:mod:`soong.core.secret_delivery`) to the receiver at :data:`SECRET_RECEIVER_PATH`.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import email
import gzip
from typing import Any, Iterable, Mapping

from soong.core.errors import SoongError
from soong.core.redact import MASK
from soong.core.types import ModelSpec
from soong.core.vram import MEM_FRACTION_STATIC

#: Lambda Cloud accepts at most 1 MB of user data; soong stays under 10**6 bytes.
USER_DATA_LIMIT = 1_000_000

#: The boot log every part appends ``<ISO time> phase=<name> <message>`` lines to.
BOOT_LOG = "/var/log/soong-boot.log"
#: Phase names written to the boot log, in their usual order (a failure logs ``<part>-failed``,
#: for example ``preflight-failed``).
BOOT_PHASES = ("userdata-private", "metadata-closed", "metadata-open", "enforcer-up", "daemon-up", "preflight-ok",
               "fs-mounted", "fs-missing", "fs-refused", "sglang-installing", "sglang-waiting-token", "sglang-loading",
               "sglang-ready", "n8n-ready")

#: Where the status daemon's config and secret files live on the instance.
DAEMON_USER = "soong-daemon"
DAEMON_CONFIG_PATH = "/etc/soong-daemon/daemon.yaml"
DAEMON_TOKEN_PATH = "/etc/soong-daemon/token"
DAEMON_API_KEY_PATH = "/etc/soong-daemon/lambda-api-key"
DAEMON_STATE_DIR = "/var/lib/soong-daemon"

#: The system users SGLang and n8n run as: no login shell, no sudo, no access to the daemon's files.
#: Model code and users' workflows run with these identities, never as root, the daemon's user or
#: the login user (who has passwordless sudo on Lambda's images).
SGLANG_USER = "soong-sglang"
N8N_USER = "soong-n8n"
#: Secrets each service needs, in a 0700 folder its own user owns (files 0600).
SGLANG_SECRETS_DIR = "/etc/soong-sglang"
HF_TOKEN_PATH = f"{SGLANG_SECRETS_DIR}/hf-token"
SGLANG_API_KEY_PATH = f"{SGLANG_SECRETS_DIR}/api-key"
N8N_SECRETS_DIR = "/etc/soong-n8n"

#: The program that stores a secret delivered over SSH (read from stdin, run as root through
#: ``sudo -n``), its inputs (names, paths, owners; no secrets), and the names it takes with the
#: boot-log phase it writes for each (the daemon's ``/status`` reports delivered secrets from them).
SECRET_RECEIVER_PATH = "/usr/local/lib/soong/receive-secret"
SECRET_RECEIVER_CONFIG = "/etc/soong/secrets.json"
HF_TOKEN_SECRET = "hf-token"
API_KEY_SECRET = "lambda-api-key"
SECRET_PHASES = {HF_TOKEN_SECRET: "hf-token-delivered", API_KEY_SECRET: "api-key-delivered"}
#: How the Lambda API key reaches the daemon (config key ``secrets.api_key_delivery``).
API_KEY_DELIVERIES = ("user-data", "ssh")

SGLANG_PORT = 8000
N8N_PORT = 5678

_BOUNDARY = "==soong-user-data-boundary=="
_KINDS = {"cloud-config": "text/cloud-config", "shellscript": "text/x-shellscript"}


class UserDataError(SoongError):
    """The user data cannot be assembled (too large, clashing parts, malformed document)."""


@dataclasses.dataclass(frozen=True)
class LaunchSecrets:
    """The secrets an instance needs; never shown by ``repr``.

    ``hf_token`` is never written into the user data: it is what soong delivers over
    SSH after boot. ``sglang_api_key`` is SGLang's per-instance key; None derives it
    from the daemon token and the instance name (:func:`soong.core.instance_keys.sglang_api_key`).
    """

    lambda_api_key: str
    daemon_token: str
    hf_token: str | None = None
    sglang_api_key: str | None = None

    def __repr__(self) -> str:
        return "LaunchSecrets(<redacted>)"

    def values(self) -> list[str]:
        """Every secret value that is set."""
        return [v for v in (self.lambda_api_key, self.daemon_token, self.hf_token, self.sglang_api_key) if v]

    @classmethod
    def placeholders(cls, with_hf_token: bool = False) -> "LaunchSecrets":
        """Stand-ins for a preview that reads no secret."""
        return cls(f"<lambda_api_key:{MASK}>", f"<daemon_token:{MASK}>", f"<hf_token:{MASK}>" if with_hf_token else None,
                   f"<sglang_api_key:{MASK}>")


@dataclasses.dataclass(frozen=True)
class LaunchPlan:
    """Everything about one launch that the bootstrap depends on.

    ``gpu_count`` is the tensor-parallel size SGLang is started with.
    ``instance_id`` is usually empty: user data exists before the provider assigns
    an id, so the daemon resolves it by the unique ``instance_name``.
    """

    model: ModelSpec
    instance_name: str
    gpu_count: int
    secrets: LaunchSecrets
    launched_at: _dt.datetime
    instance_type: str | None = None
    region: str | None = None
    filesystem_name: str | None = None
    context_length: int | None = None
    lease_hours: float = 4.0
    idle_timeout_minutes: int = 30
    hard_limit_hours: float = 8.0
    warn_minutes: int = 15
    check_interval_seconds: int = 60
    daemon_port: int = 8080
    daemon_workers: int = 2
    #: The provider API the daemon terminates its instance through (``Provider.self_termination``).
    provider_api_url: str = ""
    services: Mapping[str, bool] = dataclasses.field(default_factory=lambda: {"sglang": True, "n8n": True})
    webhook_url: str | None = None
    instance_id: str = ""
    mem_fraction_static: float = MEM_FRACTION_STATIC
    login_user: str = "ubuntu"
    fs_wait_seconds: int = 300
    #: Whether SGLang and n8n source ``secrets/env.sh`` from the persistent file system (``services.source_env_sh``).
    source_env_sh: bool = False
    #: Minutes the daemon waits after a failed preflight before it terminates the instance
    #: (time to log in and look).
    preflight_grace_minutes: float = 10.0
    #: The machine image family the instance boots and its host architecture (``x86_64``, ``arm64``).
    image_family: str | None = None
    architecture: str = "x86_64"
    #: Whether SGLang waits for the Hugging Face token delivered over SSH before it starts (a
    #: gated model). None: when ``secrets.hf_token`` is set (see :attr:`hf_token_expected`).
    await_hf_token: bool | None = None
    #: How the Lambda API key reaches the daemon: in the user data, or over SSH after boot.
    api_key_delivery: str = "user-data"

    def __post_init__(self) -> None:
        if self.api_key_delivery not in API_KEY_DELIVERIES:
            raise UserDataError(f"secrets.api_key_delivery must be one of {', '.join(API_KEY_DELIVERIES)}, "
                                f"not {self.api_key_delivery!r}")

    @property
    def tp_size(self) -> int:
        """Tensor-parallel size: one shard per GPU."""
        return self.gpu_count

    @property
    def context(self) -> int:
        """The context length SGLang is started with."""
        return self.context_length or self.model.default_context

    @property
    def fs_mount(self) -> str | None:
        """Where the persistent file system is mounted on a Lambda instance."""
        return f"/lambda/nfs/{self.filesystem_name}" if self.filesystem_name else None

    def service_enabled(self, name: str) -> bool:
        """Whether service ``name`` (``sglang``, ``n8n``) runs on the instance."""
        return bool(self.services.get(name, False))

    @property
    def hf_token_expected(self) -> bool:
        """Whether the instance waits for the Hugging Face token (SGLang on, and a gated model)."""
        if not self.service_enabled("sglang"):
            return False
        return bool(self.secrets.hf_token) if self.await_hf_token is None else bool(self.await_hf_token)

    @property
    def api_key_in_user_data(self) -> bool:
        """Whether the Lambda API key is written into the user data (``secrets.api_key_delivery: user-data``)."""
        return self.api_key_delivery != "ssh"

    @property
    def sglang_api_key(self) -> str:
        """SGLang's per-instance API key (the given one, else derived from the daemon token and the name)."""
        from soong.core.instance_keys import sglang_api_key

        return self.secrets.sglang_api_key or sglang_api_key(self.secrets.daemon_token, self.instance_name)

    def secret_values(self) -> list[str]:
        """Every secret value of this launch, SGLang's derived key included (for redaction)."""
        values = self.secrets.values()
        if self.service_enabled("sglang") and self.sglang_api_key not in values:
            values.append(self.sglang_api_key)
        return values

    @classmethod
    def from_context(cls, context: Any, model: ModelSpec, *, instance_name: str, gpu_count: int,
                     secrets: LaunchSecrets, provider: Any = None, **overrides: Any) -> "LaunchPlan":
        """A plan with the defaults from ``context.config`` (lease, limits, services, ports...) and ``provider``.

        The provider (default: the context's) gives the file system, the region, the
        login user and the API the daemon terminates through; a provider that names
        no login user needs ``ssh.user`` (ConfigError otherwise).
        """
        from soong.core.errors import ConfigError

        config = context.config
        provider = provider if provider is not None else context.provider()
        login_user = config.get("ssh.user") or provider.ssh_user()
        if not login_user:
            raise ConfigError(f"provider '{provider.name}' does not say which user logs in to its instances",
                              hint="set it with 'soong config set ssh.user NAME'")
        ending = provider.self_termination()
        values: dict[str, Any] = {
            "launched_at": context.clock(),
            "filesystem_name": provider.default_filesystem(),
            "region": provider.default_region(),
            "lease_hours": config.get("defaults.lease_hours"),
            "idle_timeout_minutes": config.get("defaults.idle_timeout_minutes"),
            "hard_limit_hours": config.get("defaults.hard_limit_hours"),
            "daemon_port": config.get("status_daemon.port"),
            "provider_api_url": ending.api_url if ending is not None else "",
            "services": {"sglang": config.get("services.sglang"), "n8n": config.get("services.n8n")},
            "source_env_sh": config.get("services.source_env_sh"),
            "login_user": login_user,
            "api_key_delivery": config.get("secrets.api_key_delivery"),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(model=model, instance_name=instance_name, gpu_count=gpu_count, secrets=secrets, **values)


@dataclasses.dataclass(frozen=True)
class UserDataPart:
    """One contribution to the user data.

    :param name: file name of the part (shell parts run in ``order``, then name, order).
    :param kind: ``cloud-config`` (``content`` is a mapping) or ``shellscript`` (text starting ``#!``).
    :param order: position; the built-ins use 10 (daemon), 20 (file system), 30 (SGLang), 40 (n8n).
    """

    name: str
    kind: str
    content: Any
    order: int = 50

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise UserDataError(f"user-data part {self.name!r}: kind must be one of {', '.join(_KINDS)}")
        if self.kind == "cloud-config" and not isinstance(self.content, Mapping):
            raise UserDataError(f"user-data part {self.name!r}: cloud-config content must be a mapping")
        if self.kind == "shellscript" and not (isinstance(self.content, str) and self.content.startswith("#!")):
            raise UserDataError(f"user-data part {self.name!r}: a shell script must start with '#!'")


# -- YAML ------------------------------------------------------------------------------------


def dump_cloud_config(data: Mapping[str, Any]) -> str:
    """``#cloud-config`` YAML; multi-line text as literal blocks, no line folding."""
    import yaml

    class _Dumper(yaml.SafeDumper):
        pass

    def _str(dumper: Any, value: str) -> Any:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    _Dumper.add_representer(str, _str)
    body = yaml.dump(dict(data), Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=10**9,
                     allow_unicode=False)
    return "#cloud-config\n" + body


def merge_cloud_configs(parts: Iterable[UserDataPart]) -> dict[str, Any]:
    """One cloud-config mapping from several: lists concatenate, mappings merge, scalars must agree."""
    merged: dict[str, Any] = {}
    paths: dict[str, str] = {}
    for part in parts:
        for entry in part.content.get("write_files", []) or []:
            path = entry.get("path")
            if path in paths:
                raise UserDataError(f"user-data parts {paths[path]!r} and {part.name!r} both write {path}")
            paths[path] = part.name
        _merge_into(merged, part.content, part.name)
    return merged


def _merge_into(target: dict[str, Any], source: Mapping[str, Any], where: str) -> None:
    for key, value in source.items():
        if key not in target:
            target[key] = list(value) if isinstance(value, list) else (dict(value) if isinstance(value, Mapping) else value)
        elif isinstance(target[key], list) and isinstance(value, list):
            target[key].extend(value)
        elif isinstance(target[key], dict) and isinstance(value, Mapping):
            _merge_into(target[key], value, where)
        elif target[key] != value:
            raise UserDataError(f"user-data part {where!r} sets '{key}' differently from an earlier part")


# -- assembly -----------------------------------------------------------------------------------


def collect_parts(plugin_host: Any, plan: LaunchPlan) -> list[UserDataPart]:
    """Every plugin's parts for ``plan`` (hook ``soong_user_data_parts``), in order."""
    parts: list[UserDataPart] = []
    for result in plugin_host.hook.soong_user_data_parts(launch=plan):
        for part in result or []:
            if not isinstance(part, UserDataPart):
                raise UserDataError(f"a plugin returned {type(part).__name__} from soong_user_data_parts, not UserDataPart")
            parts.append(part)
    return sorted(parts, key=lambda p: (p.order, p.name))


def _mime_part(content_type: str, filename: str, body: str) -> str:
    if _BOUNDARY in body:
        raise UserDataError(f"user-data part {filename!r} contains the MIME boundary")
    if not body.endswith("\n"):
        body += "\n"
    return (f'--{_BOUNDARY}\nContent-Type: {content_type}; charset="utf-8"\nMIME-Version: 1.0\n'
            f'Content-Transfer-Encoding: 8bit\nContent-Disposition: attachment; filename="{filename}"\n\n{body}')


def render_user_data(parts: Iterable[UserDataPart], *, limit: int = USER_DATA_LIMIT) -> str:
    """Assemble ``parts`` into one MIME multipart cloud-init document; UserDataError past ``limit`` bytes."""
    ordered = sorted(parts, key=lambda p: (p.order, p.name))
    configs = [p for p in ordered if p.kind == "cloud-config"]
    scripts = [p for p in ordered if p.kind == "shellscript"]
    names = [p.name for p in scripts]
    if len(set(names)) != len(names):
        raise UserDataError("two shell parts have the same name")
    chunks = ["Content-Type: multipart/mixed; boundary=\"" + _BOUNDARY + "\"\nMIME-Version: 1.0\n\n"]
    if configs:
        chunks.append(_mime_part(_KINDS["cloud-config"], "soong-cloud-config.yaml", dump_cloud_config(merge_cloud_configs(configs))))
    for index, part in enumerate(scripts):
        chunks.append(_mime_part(_KINDS["shellscript"], f"{index + 1:02d}-{part.name}", part.content))
    chunks.append(f"--{_BOUNDARY}--\n")
    document = "".join(chunks)
    size = len(document.encode("utf-8"))
    if size > limit:
        raise UserDataError(f"user data is {size} bytes, over the provider's limit of {limit}; drop a part or shrink it")
    return document


def build_user_data(plugin_host: Any, plan: LaunchPlan) -> str:
    """The rendered user data of ``plan`` from every plugin's parts."""
    return render_user_data(collect_parts(plugin_host, plan))


# -- reading a document back ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RenderedPart:
    """One part of a rendered document."""

    filename: str
    content_type: str
    text: str


def split_user_data(document: str) -> list[RenderedPart]:
    """The parts of a rendered MIME document; UserDataError when it is not one."""
    message = email.message_from_string(document)
    if not message.is_multipart():
        raise UserDataError("user data is not a MIME multipart document")
    out = []
    for sub in message.get_payload():
        if (sub.get("Content-Transfer-Encoding") or "").lower() == "base64":
            text = (sub.get_payload(decode=True) or b"").decode("utf-8")
        else:
            text = sub.get_payload()
        out.append(RenderedPart(sub.get_filename() or "", sub.get_content_type(), text))
    return out


def cloud_config_of(document: str) -> dict[str, Any]:
    """The (merged) cloud-config mapping of a rendered document."""
    import yaml

    merged: dict[str, Any] = {}
    for part in split_user_data(document):
        if part.content_type == "text/cloud-config":
            _merge_into(merged, yaml.safe_load(part.text) or {}, part.filename)
    return merged


def file_content(entry: Mapping[str, Any]) -> bytes:
    """The bytes a ``write_files`` entry writes (plain, ``b64`` or ``gz+b64`` encoded)."""
    content = entry.get("content", "") or ""
    encoding = entry.get("encoding", "text/plain")
    if encoding in ("b64", "base64"):
        return base64.b64decode(content)
    if encoding in ("gz+b64", "gzip+base64", "gz+base64", "gzip+b64"):
        return gzip.decompress(base64.b64decode(content))
    return content.encode("utf-8")


@dataclasses.dataclass(frozen=True)
class DaemonBundle:
    """The status daemon's config and secrets as a rendered document writes them.

    ``api_key`` is None when the config says the key is delivered over SSH
    (``api_key_delivery: ssh``) and the document does not carry it.
    """

    config: dict[str, Any]
    token: str
    api_key: str | None
    files: Mapping[str, Mapping[str, Any]]

    def __repr__(self) -> str:
        return f"DaemonBundle(config={self.config!r}, token=<redacted>, api_key=<redacted>)"


def extract_daemon_bundle(document: str) -> DaemonBundle:
    """Read the daemon's config (:data:`DAEMON_CONFIG_PATH`) and its two secret files out of ``document``."""
    import yaml

    files = {entry.get("path"): entry for entry in cloud_config_of(document).get("write_files", []) or []}
    if DAEMON_CONFIG_PATH not in files:
        raise UserDataError(f"the user data has no daemon config ({DAEMON_CONFIG_PATH})")
    config = yaml.safe_load(file_content(files[DAEMON_CONFIG_PATH]).decode("utf-8"))
    if not isinstance(config, dict):
        raise UserDataError("the daemon config in the user data is not a mapping")
    secrets: dict[str, str | None] = {}
    for key in ("token_file", "api_key_file"):
        path = config.get(key)
        if path not in files:
            if key == "api_key_file" and config.get("api_key_delivery") == "ssh":
                secrets[key] = None  # delivered over SSH after boot
                continue
            raise UserDataError(f"the daemon config names {key} {path!r} but the user data does not write it")
        secrets[key] = file_content(files[path]).decode("utf-8").strip()
    wanted = [p for p in (DAEMON_CONFIG_PATH, config["token_file"], config["api_key_file"]) if p in files]
    return DaemonBundle(config, secrets["token_file"] or "", secrets["api_key_file"], {p: files[p] for p in wanted})


def redact_user_data(document: str, secrets: "LaunchSecrets | LaunchPlan") -> str:
    """``document`` with every secret value of ``secrets`` (or of a plan, derived keys included) replaced by a mask."""
    values = secrets.secret_values() if isinstance(secrets, LaunchPlan) else secrets.values()
    for value in sorted(values, key=len, reverse=True):
        document = document.replace(value, MASK)
    return document

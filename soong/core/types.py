"""Plain data types shared by the core, the commands and every plugin.

They are frozen dataclasses with no behaviour beyond simple derived values, so a
plugin can build them without depending on anything else in soong.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from typing import Any, Mapping

#: Lambda instance statuses; other providers map theirs onto these.
INSTANCE_STATUSES = ("booting", "active", "unhealthy", "terminating", "terminated", "preempted")
#: Statuses in which an instance may still be billing.
BILLABLE_STATUSES = ("booting", "active", "unhealthy", "terminating")
#: CPU architectures of instance hosts and machine images, named as Lambda's ``GET /images``
#: ``architecture`` field names them (``ImageArchitecture`` in Lambda's OpenAPI description v1.8.3).
ARCHITECTURES = ("x86_64", "arm64")


@dataclasses.dataclass(frozen=True)
class Region:
    """A provider region, e.g. ``us-east-1`` ("Virginia, USA")."""

    name: str
    description: str = ""


@dataclasses.dataclass(frozen=True)
class InstanceType:
    """A kind of machine a provider can launch, with its price and live capacity.

    The provider fills in the GPU facts: ``gpu_count``, ``gpu_memory_gib`` (per GPU),
    ``architecture`` (the host CPU's, one of :data:`ARCHITECTURES`: the machine image
    launched on it must be built for it, and so must every binary package installed)
    and ``compute_capability`` (the GPU's CUDA compute capability, e.g. 9.0 for an
    H100). A type whose compute capability is None fails every precision check, so it
    is never offered for a model (``start --force`` still launches it).
    """

    name: str
    description: str
    gpu_description: str
    gpu_count: int
    gpu_memory_gib: float  # per GPU
    price_cents_per_hour: int
    vcpus: int = 0
    memory_gib: int = 0
    storage_gib: int = 0
    regions_with_capacity: tuple[Region, ...] = ()
    architecture: str = "x86_64"
    compute_capability: float | None = None

    @property
    def gpu_model(self) -> str:
        """The GPU's model name as the provider writes it, e.g. ``H100``."""
        return self.gpu_description.split("(")[0].strip()

    @property
    def total_vram_gib(self) -> float:
        """GPU memory over all GPUs of the instance."""
        return self.gpu_count * self.gpu_memory_gib

    @property
    def price_per_hour(self) -> float:
        """Price in US dollars per hour."""
        return self.price_cents_per_hour / 100.0

    def has_capacity(self, region: str | None = None) -> bool:
        """Whether the type can be launched now (in ``region`` if given)."""
        if region is None:
            return bool(self.regions_with_capacity)
        return any(r.name == region for r in self.regions_with_capacity)


@dataclasses.dataclass(frozen=True)
class Instance:
    """A running (or recently ended) instance as the provider reports it."""

    id: str
    status: str
    instance_type: str
    region: str
    name: str | None = None
    ip: str | None = None
    private_ip: str | None = None
    hostname: str | None = None
    price_cents_per_hour: int | None = None
    ssh_key_names: tuple[str, ...] = ()
    file_system_names: tuple[str, ...] = ()
    tags: tuple[tuple[str, str], ...] = ()

    @property
    def is_billable(self) -> bool:
        """True while the provider may still be charging for the instance."""
        return self.status in BILLABLE_STATUSES


@dataclasses.dataclass(frozen=True)
class LaunchRequest:
    """Everything needed to launch one instance."""

    instance_type: str
    region: str
    ssh_key_name: str
    name: str
    user_data: str | None = None
    file_system_names: tuple[str, ...] = ()
    hostname: str | None = None
    image: Mapping[str, str] | None = None
    tags: Mapping[str, str] = dataclasses.field(default_factory=dict)
    firewall_ruleset_ids: tuple[str, ...] = ()
    #: Unique launch token (None: the provider makes one). The instance is named after it,
    #: so a launch that failed ambiguously (or a process killed mid-launch) can be found again.
    token: str | None = None


@dataclasses.dataclass(frozen=True)
class SelfTermination:
    """What an instance's status daemon needs to terminate its own instance through the provider's API.

    ``api_url`` is the API's base URL; ``api_key_secret`` names the secret (in soong's
    secret store) the daemon authenticates with. The daemon's terminate call itself
    speaks Lambda's API for now (``soong_daemon``); see docs/daemon.md.
    """

    api_url: str
    api_key_secret: str


@dataclasses.dataclass(frozen=True)
class SshKey:
    """An SSH public key known to the provider account."""

    id: str
    name: str
    public_key: str


@dataclasses.dataclass(frozen=True)
class FileSystem:
    """A persistent (regional) file system, mounted at ``/lambda/nfs/<name>`` on Lambda."""

    id: str
    name: str
    region: str
    mount_point: str = ""
    in_use: bool = False
    bytes_used: int | None = None


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A model the catalog knows how to serve, with the facts its memory need depends on.

    ``precision`` is the checkpoint's real weight precision (``bf16``, ``fp16``,
    ``fp8``, ``int8``, ``int4``, ``mxfp4``...). ``quantization`` is the serving
    engine's flag value matching that checkpoint (``awq``, ``gptq``, ``fp8``...),
    or None for unquantized weights.
    """

    id: str
    hf_path: str
    params_billion: float
    precision: str
    layers: int
    attention_heads: int
    kv_heads: int
    head_dim: int
    max_context: int
    default_context: int
    engine: str = "sglang"
    quantization: str | None = None
    good_for: str = ""
    not_good_for: str = ""
    source: str = ""
    builtin: bool = False
    extra_args: tuple[str, ...] = ()


#: Kinds of cost event (see docs/cost-controls.md).
COST_EVENT_KINDS = ("launched", "extended", "activity", "terminated", "accrued")
#: Who or what ended an instance.
TERMINATION_REASONS = ("user", "idle", "lease", "hard_limit", "watchdog", "external", "preflight")


@dataclasses.dataclass(frozen=True)
class CostEvent:
    """Something that changes or reports what an instance costs, sent to every cost sink."""

    kind: str
    instance_id: str
    at: _dt.datetime
    provider: str = "lambda"
    instance_type: str | None = None
    region: str | None = None
    price_cents_per_hour: int | None = None
    cost_usd: float | None = None
    reason: str | None = None
    data: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``at`` as ISO 8601)."""
        out = dataclasses.asdict(self)
        out["at"] = self.at.isoformat()
        out["data"] = dict(self.data)
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> "CostEvent":
        """Inverse of :meth:`to_dict`."""
        values = dict(raw)
        values["at"] = _dt.datetime.fromisoformat(values["at"])
        values["data"] = dict(values.get("data") or {})
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class Forward:
    """One port forward: ``local_host:local_port`` -> ``remote_host:remote_port`` on the instance.

    ``local_port`` 0 asks the backend for any free port. ``local_host`` is where a
    client connects: loopback for an SSH tunnel, the instance itself for a backend
    that reaches ports as they are (``direct``).
    """

    name: str
    local_port: int
    remote_port: int
    remote_host: str = "127.0.0.1"
    local_host: str = "127.0.0.1"


@dataclasses.dataclass(frozen=True)
class TunnelTarget:
    """Where a tunnel backend connects: the instance, its address and the login user (None: the backend's own setting).

    Build it with :meth:`soong.core.interfaces.Provider.tunnel_target`, which fills in the
    provider's login user.
    """

    instance_id: str
    host: str
    name: str | None = None
    user: str | None = None


@dataclasses.dataclass(frozen=True)
class TunnelRecord:
    """A tunnel a backend opened, as listed by ``soong tunnel status``."""

    instance_id: str
    backend: str
    forwards: tuple[Forward, ...]
    pid: int | None = None
    alive: bool = True
    command: tuple[str, ...] = ()
    host: str | None = None
    name: str | None = None
    started_at: _dt.datetime | None = None


@dataclasses.dataclass(frozen=True)
class RemoteResult:
    """What a command run on an instance by a tunnel backend (:meth:`TunnelBackend.run`) returned."""

    returncode: int
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        """Whether the command exited with status 0."""
        return self.returncode == 0

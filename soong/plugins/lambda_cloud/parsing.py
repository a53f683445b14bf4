"""Turn Lambda Cloud API bodies into soong's types.

Tolerant of fields it does not know (the API grows), strict about the fields
soong relies on: a body that lacks one raises :class:`ResponseShapeError` naming
the field's path (``data[2].instance_type.name``), never a KeyError.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from soong.core.errors import ApiError
from soong.core.firewall import FirewallRule as CoreFirewallRule
from soong.core.types import FileSystem, Instance, InstanceType, Region, SshKey


class ResponseShapeError(ApiError):
    """A Lambda response lacks a field soong needs, or has it with the wrong type."""

    def __init__(self, message: str) -> None:
        super().__init__(f"unexpected Lambda Cloud API response: {message}", code="soong/bad-response")


@dataclasses.dataclass(frozen=True)
class Image:
    """A machine image offered in one region."""

    id: str
    name: str
    family: str
    version: str
    region: str
    architecture: str = ""
    description: str = ""


@dataclasses.dataclass(frozen=True)
class FirewallRuleset:
    """A named set of inbound firewall rules in one region."""

    id: str
    name: str
    region: str
    rules: tuple[Mapping[str, Any], ...] = ()
    instance_ids: tuple[str, ...] = ()


_MISSING = object()


def field(obj: Any, key: str, where: str, kind: type | tuple[type, ...] = str, *, required: bool = True,
          default: Any = None) -> Any:
    """``obj[key]`` checked for type.

    A missing or wrongly typed required field raises ResponseShapeError naming its
    path; an optional one is then treated as absent (``default``).
    """
    if not isinstance(obj, Mapping):
        raise ResponseShapeError(f"'{where}' is not an object")
    value = obj.get(key, _MISSING)
    path = f"{where}.{key}" if where else key
    if value is _MISSING or value is None:
        if required:
            raise ResponseShapeError(f"field '{path}' is missing")
        return default
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        if not required:  # an optional field of the wrong type is as good as absent
            return default
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise ResponseShapeError(f"field '{path}' should be {names}, not {type(value).__name__}")
    return value


def envelope_data(body: Any) -> Any:
    """The ``data`` of a success envelope."""
    if not isinstance(body, Mapping):
        raise ResponseShapeError("the body is not a JSON object")
    if "data" not in body:
        raise ResponseShapeError("field 'data' is missing")
    return body["data"]


def items(value: Any, where: str) -> list[Any]:
    """``value`` as a list, or ResponseShapeError naming ``where``."""
    if not isinstance(value, list):
        raise ResponseShapeError(f"'{where}' should be a list, not {type(value).__name__}")
    return value


# -- GPU memory ------------------------------------------------------------------------------------

_MEMORY = re.compile(r"(\d+(?:\.\d+)?)\s*(?:GB|GiB|G)\b", re.IGNORECASE)

#: Memory per GPU (GB) by GPU model, for descriptions that do not state it.
GPU_MEMORY_FALLBACK: dict[str, float] = {
    "B200": 180.0,
    "GH200": 96.0,
    "H200": 141.0,
    "H100": 80.0,
    "A100": 40.0,
    "A10": 24.0,
    "A6000": 48.0,
    "RTX A6000": 48.0,
    "RTX 6000": 24.0,
    "Quadro RTX 6000": 24.0,
    "V100": 16.0,
    "Tesla V100": 16.0,
    "L40S": 48.0,
    "L40": 48.0,
    "A40": 48.0,
}


def gpu_memory_gib(gpu_description: str, type_name: str = "") -> float:
    """Memory of one GPU: from ``gpu_description`` ("H100 (80 GB SXM5)"), else the fallback table.

    The type name breaks ties the description leaves open (``gpu_8x_a100_80gb_sxm4``).
    Returns 0.0 for CPU-only types ("N/A") and unknown models.
    """
    match = _MEMORY.search(gpu_description or "")
    if match:
        return float(match.group(1))
    name_match = re.search(r"_(\d+)gb", type_name or "", re.IGNORECASE)
    if name_match:
        return float(name_match.group(1))
    model = (gpu_description or "").split("(")[0].strip()
    if model in GPU_MEMORY_FALLBACK:
        return GPU_MEMORY_FALLBACK[model]
    for key in sorted(GPU_MEMORY_FALLBACK, key=len, reverse=True):
        if re.search(rf"(?<![A-Za-z0-9]){re.escape(key)}(?![A-Za-z0-9])", model, re.IGNORECASE):
            return GPU_MEMORY_FALLBACK[key]
    return 0.0


# -- compute capability ---------------------------------------------------------------------------

#: CUDA compute capability by GPU model name as Lambda writes it (``gpu_description`` up to "("),
#: from NVIDIA's table (https://developer.nvidia.com/cuda-gpus): Volta 7.0, Turing 7.5, Ampere
#: A100 8.0 and A10/A6000 8.6, Ada L40S/RTX 6000 Ada 8.9, Hopper 9.0, Blackwell B200/GB200 10.0.
#: A model missing here gets None, so core offers its types for no model.
GPU_COMPUTE_CAPABILITY: dict[str, float] = {
    "Tesla V100": 7.0, "V100": 7.0,
    "RTX 6000": 7.5, "Quadro RTX 6000": 7.5,  # Quadro RTX 6000 (Turing)
    "A10": 8.6, "A10G": 8.6, "A6000": 8.6, "RTX A6000": 8.6,
    "A100": 8.0,
    "L40S": 8.9, "RTX 6000 Ada": 8.9,
    "H100": 9.0, "GH200": 9.0, "H200": 9.0,
    "B200": 10.0, "GB200": 10.0,
}


def compute_capability(gpu_description: str) -> float | None:
    """The compute capability of the GPU a Lambda ``gpu_description`` names, or None for a model not in the table."""
    return GPU_COMPUTE_CAPABILITY.get((gpu_description or "").split("(")[0].strip())


# -- host architecture ----------------------------------------------------------------------------

#: GPU models that come only as part of an NVIDIA "superchip" with an Arm (Grace) host CPU.
#: Lambda's ``GET /instance-types`` carries no architecture (``InstanceType`` in Lambda's OpenAPI
#: description v1.8.3 has name, description, gpu_description, price and specs only), so it is
#: derived from the GPU. GH200 = Grace Hopper: 72 Arm Neoverse V2 cores beside an H100-class GPU
#: (https://www.nvidia.com/en-us/data-center/grace-hopper-superchip/); GB200 = Grace Blackwell,
#: the same Grace CPU (https://www.nvidia.com/en-us/data-center/gb200-nvl72/). Lambda's own image
#: list agrees: its only ``arm64`` images are in us-east-3 (tests/data/lambda-cloud-api/images.sample.json).
#: Every other GPU Lambda offers sits in an x86_64 server.
ARM64_GPU_MODELS = ("GH200", "GB200")


def host_architecture(gpu_description: str, type_name: str = "", reported: Any = None) -> str:
    """``arm64`` for a Grace superchip (GH200, GB200), else ``x86_64``.

    ``reported``: an ``architecture`` the API may one day give for the type; used when it
    is one of the names Lambda's images use (``x86_64``, ``arm64``).
    """
    if reported in ("x86_64", "arm64"):
        return str(reported)
    model = (gpu_description or "").split("(")[0]
    for gpu in ARM64_GPU_MODELS:
        pattern = rf"(?<![A-Za-z0-9]){gpu}(?![A-Za-z0-9])"
        if re.search(pattern, model, re.IGNORECASE) or re.search(rf"(?<![a-z0-9]){gpu.lower()}(?![a-z0-9])",
                                                                 (type_name or "").lower().replace("_", " ")):
            return "arm64"
    return "x86_64"


# -- objects ---------------------------------------------------------------------------------------

def parse_region(raw: Any, where: str) -> Region:
    """A Region object."""
    return Region(field(raw, "name", where), field(raw, "description", where, required=False, default=""))


def parse_instance_type(raw: Any, where: str, regions: tuple[Region, ...] = ()) -> InstanceType:
    """An InstanceType object (``specs`` supplies counts; GPU memory comes from the description)."""
    name = field(raw, "name", where)
    gpu_description = field(raw, "gpu_description", where)
    specs = field(raw, "specs", where, Mapping)
    spec_where = f"{where}.specs"
    return InstanceType(
        name=name,
        description=field(raw, "description", where, required=False, default=""),
        gpu_description=gpu_description,
        gpu_count=field(specs, "gpus", spec_where, int),
        gpu_memory_gib=gpu_memory_gib(gpu_description, name),
        price_cents_per_hour=field(raw, "price_cents_per_hour", where, int),
        vcpus=field(specs, "vcpus", spec_where, int, required=False, default=0),
        memory_gib=field(specs, "memory_gib", spec_where, int, required=False, default=0),
        storage_gib=field(specs, "storage_gib", spec_where, int, required=False, default=0),
        regions_with_capacity=regions,
        architecture=host_architecture(gpu_description, name, raw.get("architecture")),
        compute_capability=compute_capability(gpu_description),
    )


def parse_instance_types(data: Any) -> list[InstanceType]:
    """The ``data`` of ``GET /instance-types`` (a map of name to item), sorted by price."""
    if not isinstance(data, Mapping):
        raise ResponseShapeError("'data' should be an object of instance types")
    out = []
    for key, item in data.items():
        where = f"data.{key}"
        regions = tuple(parse_region(r, f"{where}.regions_with_capacity_available[{i}]")
                        for i, r in enumerate(items(field(item, "regions_with_capacity_available", where, list),
                                                    f"{where}.regions_with_capacity_available")))
        out.append(parse_instance_type(field(item, "instance_type", where, Mapping), f"{where}.instance_type", regions))
    return sorted(out, key=lambda t: (t.price_cents_per_hour, t.name))


def parse_instance(raw: Any, where: str = "data") -> Instance:
    """An Instance object. Needs id, status, instance_type.name and region.name."""
    itype = field(raw, "instance_type", where, Mapping)
    region = field(raw, "region", where, Mapping)
    tags = field(raw, "tags", where, list, required=False, default=[])
    return Instance(
        id=field(raw, "id", where),
        status=field(raw, "status", where),
        instance_type=field(itype, "name", f"{where}.instance_type"),
        region=field(region, "name", f"{where}.region"),
        name=field(raw, "name", where, required=False),
        ip=field(raw, "ip", where, required=False),
        private_ip=field(raw, "private_ip", where, required=False),
        hostname=field(raw, "hostname", where, required=False),
        price_cents_per_hour=field(itype, "price_cents_per_hour", f"{where}.instance_type", int, required=False),
        ssh_key_names=tuple(field(raw, "ssh_key_names", where, list, required=False, default=[])),
        file_system_names=tuple(field(raw, "file_system_names", where, list, required=False, default=[])),
        tags=tuple((str(t.get("key")), str(t.get("value"))) for t in tags if isinstance(t, Mapping)),
    )


def parse_instances(data: Any, where: str = "data") -> list[Instance]:
    """A list of Instance objects."""
    return [parse_instance(raw, f"{where}[{i}]") for i, raw in enumerate(items(data, where))]


def parse_launch(data: Any) -> list[str]:
    """The instance ids of a launch response."""
    ids = items(field(data, "instance_ids", "data", list), "data.instance_ids")
    if not all(isinstance(i, str) and i for i in ids):
        raise ResponseShapeError("'data.instance_ids' should hold instance id strings")
    return ids


def parse_ssh_key(raw: Any, where: str = "data") -> SshKey:
    """An SSHKey object."""
    return SshKey(id=field(raw, "id", where), name=field(raw, "name", where),
                  public_key=field(raw, "public_key", where, required=False, default=""))


def parse_file_system(raw: Any, where: str = "data") -> FileSystem:
    """A Filesystem object."""
    return FileSystem(
        id=field(raw, "id", where), name=field(raw, "name", where),
        region=field(field(raw, "region", where, Mapping), "name", f"{where}.region"),
        mount_point=field(raw, "mount_point", where, required=False, default=""),
        in_use=field(raw, "is_in_use", where, bool, required=False, default=False),
        bytes_used=field(raw, "bytes_used", where, int, required=False),
    )


def parse_image(raw: Any, where: str = "data") -> Image:
    """An Image object."""
    return Image(
        id=field(raw, "id", where), name=field(raw, "name", where, required=False, default=""),
        family=field(raw, "family", where, required=False, default=""),
        version=field(raw, "version", where, required=False, default=""),
        region=field(field(raw, "region", where, Mapping), "name", f"{where}.region"),
        architecture=field(raw, "architecture", where, required=False, default=""),
        description=field(raw, "description", where, required=False, default=""),
    )


def parse_firewall_ruleset(raw: Any, where: str = "data") -> FirewallRuleset:
    """A FirewallRuleset object."""
    return FirewallRuleset(
        id=field(raw, "id", where), name=field(raw, "name", where, required=False, default=""),
        region=field(field(raw, "region", where, Mapping), "name", f"{where}.region"),
        rules=tuple(field(raw, "rules", where, list, required=False, default=[])),
        instance_ids=tuple(field(raw, "instance_ids", where, list, required=False, default=[])),
    )


def parse_firewall_rule(raw: Any, where: str) -> CoreFirewallRule:
    """A ``FirewallRule`` (Lambda OpenAPI 1.8.3, components/schemas/FirewallRule) as core's rule.

    ``protocol`` (NetworkProtocol: tcp, udp, icmp, all), ``source_network`` and
    ``description`` are required by the schema; ``port_range`` is ``[min, max]``,
    inclusive, "not allowed for the icmp protocol but required for the others". A
    port rule without a readable range is taken as every port, and an unknown
    protocol is kept as it is (core counts it as an opening): a firewall check must
    never read a rule as narrower than it may be.
    """
    protocol = field(raw, "protocol", where)
    ports = None
    if protocol != "icmp":
        span = field(raw, "port_range", where, list, required=False, default=[])
        ok = (len(span) == 2 and all(isinstance(p, int) and not isinstance(p, bool) for p in span)
              and 1 <= span[0] <= span[1] <= 65535)
        ports = (span[0], span[1]) if ok else (1, 65535)
    return CoreFirewallRule(protocol=protocol, ports=ports, source=field(raw, "source_network", where),
                            description=field(raw, "description", where, required=False, default=""))


def parse_firewall_rules(raw: Any, where: str) -> tuple[CoreFirewallRule, ...]:
    """The ``rules`` list of a ``GlobalFirewallRuleset`` or ``FirewallRuleset``."""
    rules = items(field(raw, "rules", where, list), f"{where}.rules")
    return tuple(parse_firewall_rule(rule, f"{where}.rules[{i}]") for i, rule in enumerate(rules))

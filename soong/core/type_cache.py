"""A short-lived cache of the provider's instance types, for ``soong status``.

``status`` needs each type's GPU and price, which change rarely; asking the
provider for them on every call would cost a rate-limited API request. The list
is kept in the profile's cache folder for ``status.instance_types_cache_seconds``
(default 10 minutes). Capacity changes by the minute, so ``start`` and
``configure`` never use this cache.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Callable

from soong.core.errors import SoongError
from soong.core.types import InstanceType, Region


def _to_dict(itype: InstanceType) -> dict[str, Any]:
    return {
        "name": itype.name, "description": itype.description, "gpu_description": itype.gpu_description,
        "gpu_count": itype.gpu_count, "gpu_memory_gib": itype.gpu_memory_gib,
        "price_cents_per_hour": itype.price_cents_per_hour, "vcpus": itype.vcpus, "memory_gib": itype.memory_gib,
        "storage_gib": itype.storage_gib,
        "regions_with_capacity": [[r.name, r.description] for r in itype.regions_with_capacity],
        "architecture": itype.architecture, "compute_capability": itype.compute_capability,
    }


def _from_dict(raw: dict[str, Any]) -> InstanceType:
    values = dict(raw)
    values["regions_with_capacity"] = tuple(Region(name, desc) for name, desc in raw.get("regions_with_capacity", []))
    return InstanceType(**values)


def cache_path(context: Any, provider_name: str) -> Path:
    """The cache file of one provider and API address in ``context``'s profile."""
    try:
        url = str(context.config.get(f"{provider_name}.api_url"))
    except (KeyError, SoongError):  # a provider without an api_url key
        url = provider_name
    digest = hashlib.sha256(url.encode()).hexdigest()[:12]
    return context.paths.cache_dir / f"instance-types-{provider_name}-{digest}.json"


def read_cached(path: Path, *, max_age: float, now: float) -> list[InstanceType] | None:
    """The cached list if it is younger than ``max_age`` seconds, else None (also when unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        fetched = float(data["fetched_at"])
        if not 0 <= now - fetched <= max_age:
            return None
        return [_from_dict(item) for item in data["types"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_cached(path: Path, types: list[InstanceType], *, now: float) -> None:
    """Store ``types`` fetched at ``now`` (a failure to write is not an error: it is only a cache)."""
    from soong.core.atomic import write_private

    try:
        write_private(path, json.dumps({"fetched_at": now, "types": [_to_dict(t) for t in types]}))
    except OSError:
        pass


def cached_instance_types(context: Any, provider: Any, *, max_age: float | None = None,
                          clock: Callable[[], float] = time.time) -> list[InstanceType]:
    """The provider's instance types, from the cache when fresh enough, else fetched and cached."""
    if max_age is None:
        max_age = float(context.config.get("status.instance_types_cache_seconds"))
    path = cache_path(context, provider.name)
    now = clock()
    if max_age > 0:
        cached = read_cached(path, max_age=max_age, now=now)
        if cached is not None:
            return cached
    types = provider.list_instance_types()
    write_cached(path, types, now=now)
    return types

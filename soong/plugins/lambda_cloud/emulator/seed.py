"""Seed data: the instance types and images from Lambda's sample responses, plus optional extras.

A seed file (``--seed FILE``) is JSON with any of these keys; missing ones keep
their defaults::

    {
      "instance_types": {...},           # the data map of GET /instance-types
      "images": [...],                   # the data list of GET /images
      "architectures": {"gpu_1x_gh200": "arm64"},      # host architecture per type (else x86_64)
      "capacity": {"gpu_1x_a10": {"us-east-1": 3}},   # overrides; null: unlimited
      "ssh_keys": [{"name": "me", "public_key": "ssh-ed25519 AAAA..."}],
      "file_systems": [{"name": "models", "region": "us-east-1"}],
      "firewall_rulesets": [{"name": "web", "region": "us-east-1", "rules": [...]}],
      "firewall_rules": [{"protocol": "tcp", "port_range": [22, 22], ...}]   # the global rules
    }

Without ``firewall_rules`` the global rules let in SSH (22/tcp) from anywhere.
"""

from __future__ import annotations

import copy
import functools
import json
from importlib import resources
from pathlib import Path
from typing import Any

#: Every public region code of API v1.8.3 with its description.
REGIONS: dict[str, str] = {
    "us-east-1": "Virginia, USA",
    "us-east-2": "Washington DC, USA",
    "us-east-3": "Washington DC, USA",
    "us-west-1": "California, USA",
    "us-west-2": "Arizona, USA",
    "us-west-3": "Utah, USA",
    "us-south-1": "Texas, USA",
    "us-south-2": "North Texas, USA",
    "us-south-3": "Central Texas, USA",
    "us-midwest-1": "Illinois, USA",
    "us-midwest-2": "Ohio, USA",
    "europe-central-1": "Germany",
    "asia-south-1": "India",
    "asia-northeast-1": "Osaka, Japan",
    "asia-northeast-2": "Tokyo, Japan",
    "australia-east-1": "Sydney, Australia",
    "me-west-1": "Israel",
}


#: Host architecture of the sample's instance types that are not x86_64. Lambda's API does not
#: say (its InstanceType has no such field); a GH200 is a Grace Hopper superchip with an Arm
#: (Neoverse V2) host CPU, and Lambda's only arm64 images are in us-east-3 (images.json).
ARCHITECTURES: dict[str, str] = {"gpu_1x_gh200": "arm64"}


@functools.cache
def _bundled(name: str) -> Any:
    text = resources.files("soong.plugins.lambda_cloud.emulator").joinpath("data", name).read_text(encoding="utf-8")
    return json.loads(text)["data"]


def default_seed() -> dict[str, Any]:
    """The built-in seed: sample instance types and images, no keys, no file systems."""
    seed = {
        "instance_types": copy.deepcopy(_bundled("instance_types.json")),
        "images": copy.deepcopy(_bundled("images.json")),
        "architectures": dict(ARCHITECTURES),
        "capacity": {},
        "ssh_keys": [],
        "file_systems": [],
        "firewall_rulesets": [],
        "firewall_rules": None,
    }
    return seed


def load_seed(path: str | Path | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The default seed updated with a seed file's keys and then ``extra``'s."""
    seed = default_seed()
    for source in (json.loads(Path(path).read_text(encoding="utf-8")) if path else None, extra):
        if not source:
            continue
        if not isinstance(source, dict):
            raise ValueError("a seed must be a JSON object")
        unknown = set(source) - set(seed)
        if unknown:
            raise ValueError(f"unknown seed keys: {', '.join(sorted(unknown))}")
        for key, value in source.items():
            if key == "capacity":
                for type_name, regions in value.items():
                    seed["capacity"].setdefault(type_name, {}).update(regions)
            elif key == "architectures":
                seed["architectures"].update(value)
            else:
                seed[key] = copy.deepcopy(value)
    return seed


def region_json(name: str) -> dict[str, str]:
    """The API's Region object for ``name``."""
    return {"name": name, "description": REGIONS.get(name, name)}

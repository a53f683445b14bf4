"""A stand-in ``lambda`` provider whose live instance types come from Lambda's sample answer.

Tests use it in-process, and install it as a real plugin (an entry point in a
``*.dist-info`` folder on PYTHONPATH) for subprocess runs of ``soong``. It needs
the API key like the real provider, so the "no key" path is the real one.
"""

from __future__ import annotations

import json
import os
import re

from soong import hookimpl
from soong.core.interfaces import Provider
from soong.core.types import InstanceType, Region
from soong.plugins.lambda_cloud.parsing import compute_capability  # Lambda's GPU names, as the real provider reads them

_GB = re.compile(r"\((\d+(?:\.\d+)?)\s*GB")


def parse_instance_types(data: dict) -> list[InstanceType]:
    """InstanceTypes from a ``GET /instance-types`` answer."""
    out = []
    for entry in data["data"].values():
        raw = entry["instance_type"]
        match = _GB.search(raw["gpu_description"])
        out.append(InstanceType(
            name=raw["name"], description=raw["description"], gpu_description=raw["gpu_description"],
            gpu_count=raw["specs"]["gpus"], gpu_memory_gib=float(match.group(1)) if match else 0.0,
            price_cents_per_hour=raw["price_cents_per_hour"], vcpus=raw["specs"]["vcpus"],
            memory_gib=raw["specs"]["memory_gib"], storage_gib=raw["specs"]["storage_gib"],
            regions_with_capacity=tuple(Region(r["name"], r.get("description", ""))
                                        for r in entry["regions_with_capacity_available"]),
            compute_capability=compute_capability(raw["gpu_description"]),
        ))
    return out


def load_instance_types(path: str) -> list[InstanceType]:
    """InstanceTypes from a sample file."""
    with open(path, encoding="utf-8") as handle:
        return parse_instance_types(json.load(handle))


class SampleProvider(Provider):
    """Serves instance types from ``$SOONG_TEST_INSTANCE_TYPES``; launches nothing."""

    name = "lambda"

    def list_instance_types(self):
        self.context.secrets.require("lambda_api_key")
        return load_instance_types(os.environ["SOONG_TEST_INSTANCE_TYPES"])

    def _refuse(self, *args, **kwargs):
        raise NotImplementedError("the sample provider launches nothing")

    list_instances = get_instance = launch = terminate = list_ssh_keys = list_file_systems = _refuse


@hookimpl
def soong_register_providers(register):
    """Register the stand-in provider over any built-in ``lambda``."""
    register(SampleProvider, override=True)

"""Parsing: tolerant of extra fields, strict (with the field's path) about needed ones; GPU memory."""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from soong.plugins.lambda_cloud.parsing import (
    GPU_MEMORY_FALLBACK,
    ResponseShapeError,
    gpu_memory_gib,
    parse_file_system,
    parse_instance,
    parse_instance_types,
    parse_instances,
    parse_launch,
    parse_ssh_key,
)
from tests.lambda_cloud.conftest import api_dir


@pytest.fixture
def instance_raw():
    path = api_dir() / "instance_get.sample.json"
    if not path.exists():
        pytest.skip("samples not present")
    return json.loads(path.read_text())["data"]


def _emulator_instance():
    from soong.plugins.lambda_cloud.emulator.seed import default_seed, region_json

    itype = default_seed()["instance_types"]["gpu_1x_a10"]["instance_type"]
    return {"id": "abc", "status": "active", "ssh_key_names": ["me"], "file_system_names": [],
            "region": region_json("us-east-1"), "instance_type": itype, "actions": {}, "ip": "1.2.3.4", "name": "n",
            "tags": [{"key": "k", "value": "v"}]}


JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10))
EXTRA = st.dictionaries(st.text(min_size=1, max_size=10).filter(lambda k: k not in _emulator_instance()),
                        st.one_of(JSON_SCALARS, st.lists(JSON_SCALARS, max_size=3)), max_size=5)


@given(extra=EXTRA)
def test_unknown_fields_are_ignored(extra):
    raw = _emulator_instance()
    raw.update(extra)
    inst = parse_instance(raw)
    assert (inst.id, inst.status, inst.instance_type, inst.region) == ("abc", "active", "gpu_1x_a10", "us-east-1")
    assert inst.tags == (("k", "v"),)


@pytest.mark.parametrize("path", [("id",), ("status",), ("instance_type",), ("instance_type", "name"),
                                  ("region",), ("region", "name")])
def test_missing_needed_field_is_named(path):
    raw = {"data": [_emulator_instance(), _emulator_instance()]}
    target = raw["data"][1]
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    with pytest.raises(ResponseShapeError) as info:
        parse_instances(raw["data"])
    assert f"data[1].{'.'.join(path)}" in str(info.value)


@given(path=st.sampled_from(["id", "status", "instance_type", "region"]),
       value=st.one_of(st.integers(), st.lists(st.integers(), max_size=2), st.booleans()))
def test_wrong_types_are_named_never_a_key_or_type_error(path, value):
    raw = _emulator_instance()
    raw[path] = value
    with pytest.raises(ResponseShapeError) as info:
        parse_instance(raw)
    assert f"data.{path}" in str(info.value)


@given(junk=st.recursive(JSON_SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                               st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                         max_leaves=8))
def test_arbitrary_json_never_crashes_the_parsers(junk):
    for parser in (parse_instance, parse_instances, parse_instance_types, parse_launch, parse_ssh_key, parse_file_system):
        try:
            parser(junk)
        except ResponseShapeError:
            pass


def test_sample_instance_parses(instance_raw):
    inst = parse_instance(instance_raw)
    assert inst.instance_type == "gpu_8x_h100_sxm5gdr" and inst.hostname == "headnode1" and inst.is_billable
    damaged = copy.deepcopy(instance_raw)
    damaged["instance_type"] = "gpu_8x_h100"
    with pytest.raises(ResponseShapeError, match="'data.instance_type' should be Mapping"):
        parse_instance(damaged)


def test_sample_instance_types_parse_with_memory():
    path = api_dir() / "instance_types.sample.json"
    if not path.exists():
        pytest.skip("samples not present")
    types = {t.name: t for t in parse_instance_types(json.loads(path.read_text())["data"])}
    assert types["gpu_8x_h100_sxm5"].total_vram_gib == 640
    assert types["gpu_1x_gh200"].gpu_memory_gib == 96
    assert types["gpu_8x_v100"].gpu_memory_gib == 16 and types["gpu_8x_v100"].gpu_model == "Tesla V100"
    assert types["cpu_4x_general"].gpu_memory_gib == 0 and types["cpu_4x_general"].gpu_count == 0
    assert types["gpu_1x_a10"].has_capacity("us-east-1") and not types["gpu_1x_rtx6000"].has_capacity()
    prices = [t.price_cents_per_hour for t in parse_instance_types(json.loads(path.read_text())["data"])]
    assert prices == sorted(prices)


@pytest.mark.parametrize("description, type_name, expected", [
    ("H100 (80 GB SXM5)", "gpu_1x_h100_sxm5", 80),
    ("B200 (180 GB SXM6)", "", 180),
    ("A10 (24 GB PCIe)", "", 24),
    ("GH200 (96 GB)", "", 96),
    ("H200 (141GB)", "", 141),
    ("A100", "gpu_8x_a100_80gb_sxm4", 80),  # description silent: the type name says 80 GB
    ("A100 SXM4", "gpu_1x_a100_sxm4", 40),  # fallback table
    ("Tesla V100", "gpu_8x_v100", 16),
    ("RTX A6000", "", 48),
    ("Quadro RTX 6000", "", 24),
    ("GH200", "", 96),
    ("H100 NVL", "", 80),
    ("N/A", "cpu_4x_general", 0),
    ("Mystery X9", "", 0),
])
def test_gpu_memory(description, type_name, expected):
    assert gpu_memory_gib(description, type_name) == expected


@given(model=st.sampled_from(sorted(GPU_MEMORY_FALLBACK)), size=st.integers(1, 999))
def test_a_stated_size_always_wins_over_the_table(model, size):
    assert gpu_memory_gib(f"{model} ({size} GB)") == size
    assert gpu_memory_gib(model) == GPU_MEMORY_FALLBACK[model]

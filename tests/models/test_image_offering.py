"""Only instance types whose architecture the image family and the serving engine support are offered."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from soong.core.errors import ConfigError
from soong.core.images import (
    ImageChoiceError,
    ImageFamily,
    MachineImage,
    Platform,
    ServingRequirements,
    check_family,
    choose_image,
    collect_requirements,
)
from soong.core.recommend import STATIC_SETUPS, assess, recommend, smallest_setup
from soong.core.types import InstanceType, Region
from soong.plugins.lambda_cloud.images import FAMILIES
from soong.plugins.sglang import platform as sglang_platform

AMD64_ONLY = FAMILIES["gpu-base-24-04"]
BOTH = FAMILIES["lambda-stack-24-04"]
OLD_PYTHON = FAMILIES["lambda-stack-22-04"]
ARCHS = ("x86_64", "arm64")


@pytest.fixture(scope="module")
def requirements(host):
    """What the built-in SGLang plugin declares through soong_serving_requirements."""
    return collect_requirements(host)


def test_sglang_declares_its_pinned_wheels_through_soong_serving_requirements(requirements):
    reqs = requirements["sglang"]
    assert reqs.pythons == sglang_platform.WHEEL_PYTHONS and reqs.min_python == sglang_platform.MIN_PYTHON
    assert reqs.architectures == sglang_platform.ARCHITECTURES == ARCHS
    assert sglang_platform.SGLANG_VERSION in reqs.label


def test_static_table_knows_gh200_is_arm64():
    by_name = {t.name: t for t in STATIC_SETUPS}
    assert by_name["gpu_1x_gh200"].architecture == "arm64"
    assert {t.architecture for n, t in by_name.items() if n != "gpu_1x_gh200"} == {"x86_64"}


def test_22_04_family_is_refused_for_its_python(requirements):
    with pytest.raises(ConfigError, match=r"lambda-stack-22-04 has Python 3\.10.*SGLang .* 3\.11, 3\.12 or 3\.13"):
        check_family(Platform(OLD_PYTHON, requirements), "sglang")
    check_family(Platform(BOTH, requirements), "sglang")
    check_family(Platform(OLD_PYTHON, requirements), "an-engine-nobody-declares")


def test_gh200_is_offered_with_an_arm64_family_and_left_out_with_an_amd64_only_one(catalog, requirements):
    spec = catalog["qwen3-32b-fp8"]
    gh200 = next(t for t in STATIC_SETUPS if t.name == "gpu_1x_gh200")
    assert assess(spec, gh200, platform=Platform(BOTH, requirements)).fits
    amd64_only = Platform(AMD64_ONLY, requirements)
    fit = assess(spec, gh200, platform=amd64_only)
    assert not fit.fits and "arm64 host" in fit.problem and "gpu-base-24-04" in fit.problem
    assert smallest_setup(spec, platform=amd64_only).instance_type.architecture == "x86_64"
    assert assess(spec, gh200).fits  # no platform given: nothing is known about the image


def test_an_engine_without_an_arm64_build_rules_out_arm64_hosts(catalog):
    reqs = ServingRequirements("sglang", "SGLang x86 only", ((3, 12),), ("x86_64",))
    gh200 = next(t for t in STATIC_SETUPS if t.name == "gpu_1x_gh200")
    assert "has no arm64 build" in assess(catalog["qwen3-8b"], gh200, platform=Platform(BOTH, {"sglang": reqs})).problem


def _itype(index: int, arch: str, gib: int, count: int) -> InstanceType:
    return InstanceType(name=f"gpu_{count}x_t{index}", description="", gpu_description=f"H100 ({gib} GB)",
                        gpu_count=count, gpu_memory_gib=gib, price_cents_per_hour=100 + index,
                        regions_with_capacity=(Region("us-east-1"),), architecture=arch, compute_capability=9.0)


TYPES = st.lists(st.tuples(st.sampled_from(ARCHS), st.sampled_from([24, 48, 80, 96]), st.sampled_from([1, 2, 4, 8])),
                 min_size=1, max_size=12)


@given(types=TYPES, family_archs=st.sampled_from([("x86_64",), ("arm64",), ARCHS]),
       engine_archs=st.sampled_from([("x86_64",), ("arm64",), ARCHS]))
def test_recommend_never_pairs_a_type_with_an_image_or_engine_lacking_its_architecture(catalog, types, family_archs,
                                                                                        engine_archs):
    spec = catalog["qwen3-8b"]
    family = dataclasses.replace(BOTH, architectures=family_archs)
    reqs = ServingRequirements("sglang", "SGLang", ((3, 12),), engine_archs)
    itypes = [_itype(i, arch, gib, count) for i, (arch, gib, count) in enumerate(types)]
    ranked = recommend(spec, itypes, platform=Platform(family, {"sglang": reqs}))
    allowed = set(family_archs) & set(engine_archs)
    assert all(r.instance_type.architecture in allowed for r in ranked)
    # and nothing else was dropped for it: without the platform, the same types of allowed archs fit
    unscoped = {r.instance_type.name for r in recommend(spec, itypes) if r.instance_type.architecture in allowed}
    assert {r.instance_type.name for r in ranked} == unscoped


IMAGES = st.lists(st.builds(MachineImage, id=st.sampled_from(["a", "b", "c", "d"]),
                            family=st.sampled_from(["lambda-stack-24-04", "gpu-base-24-04"]),
                            architecture=st.sampled_from(ARCHS), region=st.sampled_from(["us-east-1", "us-east-3"]),
                            version=st.sampled_from(["24.4.2-1459", "24.4.2-1722", "", "x"])), max_size=10)


@given(images=IMAGES, arch=st.sampled_from(ARCHS), region=st.sampled_from(["us-east-1", "us-east-3"]))
def test_choose_image_returns_a_match_or_refuses_naming_what_exists(images, arch, region):
    family = "lambda-stack-24-04"
    matches = [i for i in images if (i.family, i.architecture, i.region) == (family, arch, region)]
    if matches:
        chosen = choose_image(images, family, arch, region)
        assert chosen in matches
    else:
        with pytest.raises(ImageChoiceError) as caught:
            choose_image(images, family, arch, region)
        message = str(caught.value)
        assert f"no {family} image for {arch} in {region}" in message and "nothing was launched" in message
        assert caught.value.exit_code == 8
        for other in {i.region for i in images if (i.family, i.architecture) == (family, arch)}:
            assert other in message


def test_family_describe_names_python_and_architectures():
    assert BOTH.describe() == "lambda-stack-24-04 (Lambda Stack, Ubuntu 24.04; Python 3.12; x86_64, arm64)"
    assert ImageFamily("f", (3, 11), ("x86_64",)).describe() == "f (Python 3.11; x86_64)"

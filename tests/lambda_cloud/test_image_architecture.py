"""Host architecture of Lambda's instance types, its image families, and the emulator's image checks over sockets."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from soong.core import errors as E
from soong.core.images import ImageChoiceError, choose_image
from soong.core.types import LaunchRequest
from soong.plugins.lambda_cloud.images import DEFAULT_FAMILY, FAMILIES, family_facts
from soong.plugins.lambda_cloud.parsing import host_architecture, parse_instance_types
from soong.plugins.lambda_cloud.provider import LambdaProvider
from tests.lambda_cloud.conftest import api_dir, make_context
from tests.lambda_cloud.test_conformance import assert_log_conforms, checker  # noqa: F401  (fixture)

X86_GPUS = ["A10", "A100", "H100", "H200", "B200", "A6000", "RTX 6000", "Tesla V100", "L40S", "N/A", ""]


def _sample(name: str) -> dict:
    return json.loads((api_dir() / name).read_text(encoding="utf-8"))


def test_lambdas_instance_types_carry_no_architecture_so_it_is_derived(spec):
    """The description's InstanceType has no architecture field: the plugin must derive it."""
    assert "architecture" not in spec["components"]["schemas"]["InstanceType"]["properties"]
    assert spec["components"]["schemas"]["ImageArchitecture"]["enum"] == ["x86_64", "arm64"]


def test_sample_types_gh200_is_arm64_and_the_rest_x86_64():
    types = {t.name: t for t in parse_instance_types(_sample("instance_types.sample.json")["data"])}
    assert types["gpu_1x_gh200"].architecture == "arm64"
    assert {t.architecture for name, t in types.items() if name != "gpu_1x_gh200"} == {"x86_64"}


@given(gpu=st.sampled_from(["GH200", "gh200", "GB200"]), memory=st.integers(1, 999),
       suffix=st.sampled_from(["", " SXM", " NVL"]), count=st.integers(1, 8))
def test_grace_superchips_are_arm64_whatever_the_description_says_around_them(gpu, memory, suffix, count):
    assert host_architecture(f"{gpu} ({memory} GB{suffix})", f"gpu_{count}x_{gpu.lower()}") == "arm64"
    assert host_architecture("", f"gpu_{count}x_{gpu.lower()}") == "arm64"


@given(gpu=st.sampled_from(X86_GPUS), memory=st.integers(1, 999), name=st.from_regex(r"gpu_[1-8]x_[a-z0-9]{1,8}", fullmatch=True))
def test_other_gpus_are_x86_64_unless_the_name_says_gh200(gpu, memory, name):
    expected = "arm64" if "gh200" in name.split("_") or "gb200" in name.split("_") else "x86_64"
    assert host_architecture(f"{gpu} ({memory} GB)", name) == expected


@given(reported=st.one_of(st.none(), st.text(max_size=8), st.sampled_from(["x86_64", "arm64"])))
def test_a_reported_architecture_is_used_only_when_it_is_a_known_name(reported):
    result = host_architecture("GH200 (96 GB)", "gpu_1x_gh200", reported)
    assert result == (reported if reported in ("x86_64", "arm64") else "arm64")


def test_families_match_lambdas_image_list():
    """Every family soong knows exists in the sample, for exactly the architectures the table says."""
    images = _sample("images.sample.json")["data"]
    for family in FAMILIES.values():
        seen = {i["architecture"] for i in images if i["family"] == family.name}
        assert seen == set(family.architectures), family.name
    assert {"x86_64", "arm64"} <= {i["architecture"] for i in images if i["family"] == DEFAULT_FAMILY}
    assert family_facts(DEFAULT_FAMILY).python == (3, 12)
    assert family_facts("lambda-stack-22-04").python == (3, 10)
    with pytest.raises(E.ConfigError, match="ubuntu-24-04"):
        family_facts("ubuntu-24-04")


# -- over sockets ----------------------------------------------------------------------------------


def test_provider_picks_the_image_per_architecture_and_region(emu):
    provider = LambdaProvider(make_context(emu))
    images = provider.machine_images()
    x86 = choose_image(images, DEFAULT_FAMILY, "x86_64", "us-east-1")
    arm = choose_image(images, DEFAULT_FAMILY, "arm64", "us-east-3")
    assert (x86.architecture, x86.region, x86.family) == ("x86_64", "us-east-1", DEFAULT_FAMILY)
    assert (arm.architecture, arm.region, arm.family) == ("arm64", "us-east-3", DEFAULT_FAMILY)
    assert x86.id != arm.id
    with pytest.raises(ImageChoiceError, match=r"no lambda-stack-24-04 image for arm64 in us-east-1.*us-east-3"):
        choose_image(images, DEFAULT_FAMILY, "arm64", "us-east-1")
    assert provider.image_family().name == DEFAULT_FAMILY


def test_emulator_launches_the_matching_image_and_refuses_unknown_or_mismatched(emu, checker):  # noqa: F811
    emu.add_ssh_key("me")
    emu.set_capacity("gpu_1x_gh200", "us-east-3", 2)
    emu.set_capacity("gpu_1x_gh200", "us-east-1", 2)
    provider = LambdaProvider(make_context(emu))
    images = provider.machine_images()
    arm = choose_image(images, DEFAULT_FAMILY, "arm64", "us-east-3")
    x86 = choose_image(images, DEFAULT_FAMILY, "x86_64", "us-east-1")

    inst = provider.launch(LaunchRequest("gpu_1x_gh200", "us-east-3", "me", "arm", image={"id": arm.id}))
    assert inst.instance_type == "gpu_1x_gh200"
    by_family = provider.launch(LaunchRequest("gpu_1x_a10", "us-east-1", "me", "fam", image={"family": DEFAULT_FAMILY}))
    assert by_family.region == "us-east-1"

    refusals = [
        (LaunchRequest("gpu_1x_gh200", "us-east-1", "me", "x", image={"id": x86.id}), E.InvalidRequestError,
         "global/invalid-parameters"),  # exists there, but for x86_64 only
        (LaunchRequest("gpu_1x_gh200", "us-east-1", "me", "x", image={"family": DEFAULT_FAMILY}), E.InvalidRequestError,
         "global/invalid-parameters"),
        (LaunchRequest("gpu_1x_a10", "us-east-1", "me", "x", image={"id": arm.id}), E.ApiNotFoundError,
         "global/object-does-not-exist"),  # the arm64 image lives in us-east-3 only
        (LaunchRequest("gpu_1x_a10", "us-east-1", "me", "x", image={"id": "no-such-image"}), E.ApiNotFoundError,
         "global/object-does-not-exist"),
        (LaunchRequest("gpu_1x_a10", "us-east-1", "me", "x", image={"family": "no-such-family"}), E.ApiNotFoundError,
         "global/object-does-not-exist"),
    ]
    for request, error, code in refusals:
        with pytest.raises(error) as caught:
            provider.launch(request)
        assert caught.value.code == code, request
    assert {i["image"]["id"] if "id" in i["image"] else i["image"]["family"] for i in emu.instances()} == {
        arm.id, DEFAULT_FAMILY}
    assert_log_conforms(emu, checker)

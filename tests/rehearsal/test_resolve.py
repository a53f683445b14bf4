"""SGLang's pins resolved for real for the image an instance boots (pip's resolver, dry run)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from soong.plugins.sglang.platform import MIN_GLIBC, PIP_PLATFORMS, SGLANG_PINS, TORCH_PIN
from soong.testing.rehearsal_resolve import (
    LAMBDA_STACK_22_04,
    LAMBDA_STACK_24_04,
    TargetImage,
    pip_platforms,
    resolve_pins,
    target_image,
)
from tests.rehearsal.conftest import CACHE


@given(st.integers(min_value=17, max_value=60), st.sampled_from(["x86_64", "arm64"]))
def test_platform_tags_cover_every_older_glibc(minor, architecture):
    tags = pip_platforms(architecture, (2, minor))
    machine = "x86_64" if architecture == "x86_64" else "aarch64"
    assert tags[0] == f"manylinux_2_{minor}_{machine}"
    assert f"manylinux_2_17_{machine}" in tags and f"manylinux2014_{machine}" in tags
    assert not [t for t in tags if not t.endswith(machine)]
    assert f"manylinux_2_{minor + 1}_{machine}" not in tags


def test_platform_tags_refuse_what_they_cannot_express():
    with pytest.raises(ValueError):
        pip_platforms("sparc", (2, 39))
    with pytest.raises(ValueError):
        pip_platforms("x86_64", (2, 12))


def test_sglang_wheel_platform_is_among_the_target_images_tags():
    for architecture, tag in PIP_PLATFORMS.items():
        assert tag in pip_platforms(architecture, LAMBDA_STACK_24_04.glibc)
        assert LAMBDA_STACK_24_04.glibc >= MIN_GLIBC


def test_target_image_follows_the_plans_image_family():
    class Plan:
        image_family = "lambda-stack-22-04"
        architecture = "arm64"

    assert target_image(Plan()).python == (3, 10) and target_image(Plan()).architecture == "arm64"
    assert target_image(object()) == LAMBDA_STACK_24_04


@pytest.mark.rehearsal
def test_sglang_pins_resolve_for_lambda_stack_24_04():
    result = resolve_pins(SGLANG_PINS, LAMBDA_STACK_24_04, cache_dir=CACHE)
    assert result.ok, result.summary()
    name, _, version = TORCH_PIN.partition("==")
    assert result.installs["torch"] == version
    assert result.installs["sglang"] == SGLANG_PINS[0].partition("==")[2]


@pytest.mark.rehearsal
def test_sglang_pins_cannot_install_on_python_3_10():
    result = resolve_pins(SGLANG_PINS, LAMBDA_STACK_22_04, cache_dir=CACHE)
    assert not result.ok
    assert "3.10" in result.summary() and "sglang" in result.error.lower(), result.summary()
    assert not result.cached


@pytest.mark.rehearsal
def test_a_pin_without_a_wheel_for_the_platform_fails():
    image = TargetImage("old-glibc", (3, 12), (2, 28))  # sglang's wheels need glibc 2.34
    result = resolve_pins(SGLANG_PINS, image)
    assert not result.ok, result.summary()

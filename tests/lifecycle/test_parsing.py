"""Property tests for what the lifecycle commands parse: extension hours, SSH public keys, the type cache."""

from __future__ import annotations

import argparse
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from soong.commands.extend import _hours
from soong.core.configure_steps import match_key, read_public_key
from soong.core.type_cache import read_cached, write_cached
from soong.core.types import InstanceType, Region, SshKey


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_extension_hours_accepts_exactly_more_than_zero_up_to_eight(value):
    text = repr(value)
    if math.isfinite(value) and 0 < value <= 8:
        assert _hours(text) == value
    else:
        with pytest.raises(argparse.ArgumentTypeError):
            _hours(text)


@given(st.text(max_size=12))
def test_extension_hours_refuses_text_that_is_not_a_number(text):
    try:
        number = float(text)
    except ValueError:
        with pytest.raises(argparse.ArgumentTypeError):
            _hours(text)
    else:
        if not (0 < number <= 8):
            with pytest.raises(argparse.ArgumentTypeError):
                _hours(text)


body = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", min_size=8, max_size=40)
comment = st.text(alphabet="abcdefghijklmnopqrstuvwxyz@.-", max_size=20)


@given(body, comment, comment)
def test_a_key_matches_the_account_key_with_the_same_body_whatever_its_comment(data, mine, theirs):
    account = [SshKey("1", "other", f"ssh-ed25519 X{data} {theirs}"), SshKey("2", "laptop", f"ssh-ed25519 {data} {theirs}")]
    assert match_key(f"ssh-ed25519 {data} {mine}", account).name == "laptop"
    assert match_key(f"ssh-rsa {data} {mine}", account) is None


def test_the_public_key_is_read_beside_the_private_key(tmp_path):
    (tmp_path / "id").write_text("PRIVATE")
    assert read_public_key(str(tmp_path / "id")) is None
    (tmp_path / "id.pub").write_text("ssh-ed25519 AAAAC3Nz me@host\n")
    assert read_public_key(str(tmp_path / "id"))[0] == "ssh-ed25519 AAAAC3Nz me@host"
    assert read_public_key(str(tmp_path / "id.pub"))[1] == tmp_path / "id.pub"


regions = st.lists(st.sampled_from(["us-east-1", "us-west-1", "europe-central-1"]), unique=True)


@given(st.lists(st.builds(InstanceType, name=st.text(min_size=1, max_size=10), description=st.text(max_size=10),
                          gpu_description=st.text(max_size=10), gpu_count=st.integers(0, 8),
                          gpu_memory_gib=st.floats(0, 200), price_cents_per_hour=st.integers(0, 10**5),
                          regions_with_capacity=regions.map(lambda rs: tuple(Region(r) for r in rs))),
                max_size=5),
       st.floats(0, 10**6))
def test_cached_types_read_back_equal_while_fresh_and_never_when_stale(tmp_path_factory, types, age):
    path = tmp_path_factory.mktemp("cache") / "types.json"
    write_cached(path, types, now=1000.0)
    assert read_cached(path, max_age=600, now=1000.0 + min(age, 600)) == types
    assert read_cached(path, max_age=600, now=1000.0 + 600.5 + age) is None
    assert read_cached(path, max_age=600, now=999.0) is None  # written in the future: not trusted

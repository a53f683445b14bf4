"""The duration parser: canonical forms round-trip, garbage is one readable UsageError."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from soong.core.durations import MAX_SECONDS, UNITS, format_duration, format_hours, parse_duration
from soong.core.errors import UsageError


@pytest.mark.parametrize("text, seconds", [
    ("30m", 1800), ("12h", 43200), ("7d", 604800), ("2w", 1209600), ("90s", 90), ("1h30m", 5400),
    ("1.5h", 5400), (" 7D ", 604800), ("1d2h3m4s", 93784),
])
def test_examples(text, seconds):
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "7", "d", "7x", "-1h", "1h1h", "30m1h", "1h 30m", "h1", "1e3s", "abc", "0m", "1.h"])
def test_rejects_with_one_line(text):
    with pytest.raises(UsageError) as info:
        parse_duration(text)
    assert "\n" not in str(info.value) and "duration" in str(info.value)


def test_zero_only_when_allowed():
    assert parse_duration("0s", allow_zero=True) == dt.timedelta(0)


def test_more_than_ten_years_is_refused():
    with pytest.raises(UsageError):
        parse_duration(f"{MAX_SECONDS // 86400 + 1}d")


@given(st.integers(min_value=1, max_value=MAX_SECONDS))
def test_format_then_parse_round_trips(seconds):
    text = format_duration(dt.timedelta(seconds=seconds))
    assert parse_duration(text) == dt.timedelta(seconds=seconds)


@given(st.dictionaries(st.sampled_from(list(UNITS)), st.integers(min_value=0, max_value=500), min_size=1))
def test_parts_add_up(parts):
    text = "".join(f"{parts[u]}{u}" for u in UNITS if u in parts)
    expected = sum(UNITS[u] * n for u, n in parts.items())
    if expected == 0 or expected > MAX_SECONDS:
        with pytest.raises(UsageError):
            parse_duration(text)
    else:
        assert parse_duration(text).total_seconds() == expected


@given(st.text(max_size=12))
def test_any_text_parses_or_raises_usage_error(text):
    try:
        value = parse_duration(text)
    except UsageError:
        return
    assert dt.timedelta(0) < value <= dt.timedelta(seconds=MAX_SECONDS)


@given(st.floats(min_value=1 / 60, max_value=10_000, allow_nan=False))
def test_format_hours_reads_back_close_to_the_value(hours):
    text = format_hours(hours)
    back = parse_duration(text, allow_zero=True).total_seconds() / 3600
    tolerance = 1 / 60 if hours < 24 else 1.0  # minutes below a day, hours above
    assert abs(back - hours) <= tolerance + 1e-9

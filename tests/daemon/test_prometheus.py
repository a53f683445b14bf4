"""The Prometheus text reader and writer."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from soong_daemon import prometheus

SGLANG_PAGE = """\
# HELP sglang:prompt_tokens_total Number of prefill tokens processed.
# TYPE sglang:prompt_tokens_total counter
sglang:prompt_tokens_total{model_name="meta-llama/Llama-3.1-8B-Instruct"} 8.128902e+06
# HELP sglang:num_running_reqs The number of running requests.
# TYPE sglang:num_running_reqs gauge
sglang:num_running_reqs{model_name="meta-llama/Llama-3.1-8B-Instruct",tp_rank="0"} 2.0
sglang:num_running_reqs{model_name="meta-llama/Llama-3.1-8B-Instruct",tp_rank="1"} 1.0
sglang:time_to_first_token_seconds_bucket{le="+Inf",model_name="m"} 7.0 1700000000000
"""


def test_parses_a_real_sglang_page():
    samples = prometheus.parse(SGLANG_PAGE)
    assert prometheus.total(samples, "sglang:num_running_reqs") == 3
    assert prometheus.total(samples, "sglang:prompt_tokens_total") == 8.128902e06
    assert prometheus.total(samples, "sglang:num_queue_reqs") is None
    bucket = [s for s in samples if s.name.endswith("_bucket")][0]
    assert bucket.labels == {"le": "+Inf", "model_name": "m"}


@pytest.mark.parametrize("line", ["9bad 1", "name{le=1} 2", 'name{le="x} 1', "name", "name 1 2 3", "name abc",
                                  'name{a="b" c="d"} 1', 'name{a="\\q"} 1'])
def test_bad_lines_raise(line):
    with pytest.raises(prometheus.ParseError):
        prometheus.parse(line)


names = st.from_regex(r"[a-zA-Z_:][a-zA-Z0-9_:]{0,20}", fullmatch=True)
label_names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,10}", fullmatch=True)
label_values = st.text(st.characters(blacklist_categories=("Cs",)), max_size=15)
numbers = st.floats(allow_nan=True, allow_infinity=True)


@given(st.lists(st.tuples(names, st.dictionaries(label_names, label_values, max_size=3), numbers), max_size=6))
def test_render_then_parse_gives_the_samples_back(items):
    text = prometheus.render([(name, "gauge", "help text", [(labels, value)]) for name, labels, value in items])
    parsed = prometheus.parse(text)
    assert len(parsed) == len(items)
    for sample, (name, labels, value) in zip(parsed, items, strict=True):
        assert sample.name == name and dict(sample.labels) == labels
        assert (math.isnan(sample.value) and math.isnan(value)) or sample.value == value

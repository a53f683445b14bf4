"""n8n's activity source, read from metrics pages shaped exactly as n8n 2.41.1 emits them.

The pages under data/n8n/ were written by data/n8n/make_pages.js with prom-client
15.1.3 (n8n 2.41.1's own dependency), registering each metric as n8n 2.41.1's code
does; see that script for the source files. They are served over a real socket.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from soong.plugins.sglang import scripts
from soong_daemon import prometheus
from soong_daemon.activity import ACTIVE, IDLE, UNKNOWN, N8nSource
from tests.daemon.test_activity import metrics_server  # noqa: F401 (fixture)

PAGES = Path(__file__).with_name("data") / "n8n"


def page(name: str) -> str:
    return (PAGES / name).read_text()


def test_the_pages_have_the_current_shapes():
    samples = prometheus.parse(page("one-run.prom"))
    [last] = [s for s in samples if s.name == "n8n_last_activity"]
    assert last.labels == {} and last.value > 1.7e9  # unlabelled, Unix seconds
    assert prometheus.total(samples, "n8n_workflow_started_total") == 1
    assert prometheus.total(samples, "n8n_workflow_execution_duration_seconds_count") == 1
    assert prometheus.total(prometheus.parse(page("defaults-only.prom")), "n8n_last_activity") is None


def test_a_fresh_n8n_is_idle_after_the_baseline(metrics_server):  # noqa: F811
    source = N8nSource(metrics_server.url)
    metrics_server.page = page("fresh.prom")
    assert source.poll().status == IDLE
    assert source.poll().status == IDLE


def test_a_workflow_run_counts_as_activity(metrics_server):  # noqa: F811
    source = N8nSource(metrics_server.url)
    metrics_server.page = page("fresh.prom")
    assert source.poll().status == IDLE
    metrics_server.page = page("running.prom")  # a webhook call, one run finished, a second one still running
    seen = source.poll()
    assert seen.status == ACTIVE and "1 workflow executions running" in seen.detail
    metrics_server.page = page("one-run.prom").replace("n8n_workflow_started_total 1", "n8n_workflow_started_total 2") \
        .replace("n8n_workflow_success_total 1", "n8n_workflow_success_total 2")
    assert source.poll().status == ACTIVE  # it finished since the last check
    assert source.poll().status == IDLE


def test_a_run_seen_only_finished_still_counts(metrics_server):  # noqa: F811
    source = N8nSource(metrics_server.url)
    metrics_server.page = page("fresh.prom")
    source.poll()
    metrics_server.page = page("failed-run.prom")
    seen = source.poll()
    assert seen.status == ACTIVE and "since the last check" in seen.detail


def test_a_request_moves_last_activity(metrics_server):  # noqa: F811
    source = N8nSource(metrics_server.url)
    metrics_server.page = page("fresh.prom")
    source.poll()
    metrics_server.page = page("fresh.prom").replace("n8n_last_activity 1764660000", "n8n_last_activity 1764660120")
    seen = source.poll()
    assert seen.status == ACTIVE and "requests" in seen.detail
    assert source.poll().status == IDLE


@pytest.mark.parametrize("name, hint", [
    ("defaults-only.prom", "N8N_METRICS_INCLUDE_API_ENDPOINTS"),
    ("defaults-only-after-run.prom", "N8N_METRICS_INCLUDE_API_ENDPOINTS"),
])
def test_a_page_without_the_expected_metrics_is_unknown_never_idle(metrics_server, name, hint):  # noqa: F811
    source = N8nSource(metrics_server.url)
    metrics_server.page = page(name)
    for _ in range(3):
        seen = source.poll()
        assert seen.status == UNKNOWN and hint in seen.detail


def test_finished_runs_without_the_event_bus_counters_are_unknown(metrics_server):  # noqa: F811
    source = N8nSource(metrics_server.url)
    text = page("one-run.prom")
    metrics_server.page = "\n".join(line for line in text.splitlines() if "n8n_workflow_s" not in line) + "\n"
    seen = source.poll()
    assert seen.status == UNKNOWN and "N8N_METRICS_INCLUDE_MESSAGE_EVENT_BUS_METRICS" in seen.detail


def test_metrics_switched_off_is_unknown(metrics_server):  # noqa: F811
    metrics_server.status = 404  # N8N_METRICS=false: n8n does not mount /metrics
    metrics_server.page = "Cannot GET /metrics"
    assert N8nSource(metrics_server.url).poll().status == UNKNOWN


def test_the_unit_turns_on_what_the_source_reads():
    unit = scripts.N8N_UNIT
    for setting in ("N8N_METRICS=true", "N8N_METRICS_INCLUDE_API_ENDPOINTS=true",
                    "N8N_METRICS_INCLUDE_MESSAGE_EVENT_BUS_METRICS=true",
                    "N8N_METRICS_INCLUDE_WORKFLOW_EXECUTION_DURATION=true"):
        assert f"Environment={setting}\n" in unit


@settings(max_examples=60)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5), st.integers(0, 3)), min_size=1, max_size=8))
def test_running_or_changed_is_active_else_idle(steps):
    """Pages with growing counters: active exactly when something runs or changed since the last page."""
    source = N8nSource("http://unused")
    started = finished = request = 0
    base = page("fresh.prom")
    previous = None
    for new_starts, new_finishes, new_requests in steps:
        started += new_starts
        finished = min(started, finished + new_finishes)
        request += new_requests
        text = base.replace("n8n_last_activity 1764660000", f"n8n_last_activity {1764660000 + request}")
        text += f"n8n_workflow_started_total {started}\nn8n_workflow_success_total {finished}\n"
        text += f"n8n_workflow_execution_duration_seconds_count{{status=\"success\",mode=\"webhook\"}} {finished}\n"
        status = source.interpret(prometheus.parse(text)).status
        state = (started, finished, request)
        if started > finished:
            assert status == ACTIVE
        elif previous is not None and state != previous:
            assert status == ACTIVE
        else:
            assert status == IDLE
        previous = state

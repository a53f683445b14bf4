"""Fixtures for the cost tests: a fake clock, a context with the built-in sinks, a ledger."""

from __future__ import annotations

import datetime as dt
import os

import pytest

from soong.core.context import Context
from soong.core.ledger import Ledger
from soong.core.plugins import PluginHost, PluginInfo

#: A fixed starting point for fake clocks (the middle of a month, so month maths has room).
T0 = dt.datetime(2024, 5, 15, 12, 0, tzinfo=dt.timezone.utc)


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, start: dt.datetime = T0) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta) -> dt.datetime:
        self.now += dt.timedelta(**delta)
        return self.now


def builtin_sink_host(*extra) -> PluginHost:
    """A plugin host with the ledger and jsonl sinks (and ``extra`` plugin objects)."""
    import soong.plugins.jsonl_sink
    import soong.plugins.ledger

    host = PluginHost(discover=False, env={})
    host.add_plugin(soong.plugins.ledger, PluginInfo("ledger", builtin=True))
    host.add_plugin(soong.plugins.jsonl_sink, PluginInfo("jsonl", builtin=True))
    for index, plugin in enumerate(extra):
        host.add_plugin(plugin, PluginInfo(f"extra{index}"))
    return host


@pytest.fixture(autouse=True)
def no_real_scheduler(tmp_path, monkeypatch):
    """No test here may read or change the real user's crontab or systemd (install tests set their own)."""
    monkeypatch.setenv("SOONG_WATCHDOG_CRONTAB", str(tmp_path / "no-crontab-here"))
    monkeypatch.setenv("SOONG_WATCHDOG_SYSTEMCTL", str(tmp_path / "no-systemctl-here"))


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def context(clock):
    """A context on the isolated profile with the built-in sinks and a fake clock."""
    return Context(env=dict(os.environ), clock=clock, plugin_host=builtin_sink_host())


@pytest.fixture
def ledger(context):
    led = Ledger.for_context(context)
    yield led
    led.close()


def launch(ledger: Ledger, name: str, at: dt.datetime, *, instance_id: str | None = None, price: int = 100,
           lease: float = 4.0, hard: float = 8.0, model: str = "llama-3.1-8b", itype: str = "gpu_1x_a10"):
    """Record an intent (and the launch if ``instance_id``) the way ``soong start`` does."""
    record = ledger.record_intent(name, instance_type=itype, region="us-east-1", price_cents_per_hour=price,
                                  lease_hours=lease, hard_limit_hours=hard, at=at, model=model, gpu="A10")
    if instance_id:
        record = ledger.record_launched(name, instance_id, at=at)
    return record

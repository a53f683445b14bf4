"""Building the daemon's parts from a configuration, with any of them replaceable.

Tests and the local sandbox hand in their own clock, store, terminator,
activity sources or notifier; everything else is built from the config.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Callable, Sequence

from soong_daemon.activity import ActivitySource, default_sources
from soong_daemon.api import LambdaApi
from soong_daemon.clock import Clock, clock_for
from soong_daemon.config import DaemonConfig
from soong_daemon.gpu import gpu_summary
from soong_daemon.notify import Notifier
from soong_daemon.secretfile import read_secret
from soong_daemon.state import StateStore, initial_state
from soong_daemon.terminator import PowerOff, Terminator

log = logging.getLogger("soong_daemon")


@dataclasses.dataclass
class Components:
    """Everything the web app and the enforcer work with."""

    config: DaemonConfig
    clock: Clock
    store: StateStore
    terminator: Terminator
    activity_sources: Sequence[ActivitySource]
    notifier: Notifier
    api: LambdaApi
    gpu_probe: Callable[[], list | None]
    stop: threading.Event


def make_api(config: DaemonConfig) -> LambdaApi:
    """The provider API client; the key is read from its file for every call."""
    return LambdaApi(config.provider_api_url, lambda: read_secret(config.api_key_file, "api_key_file"))


def make_terminator(config: DaemonConfig, api: LambdaApi, stop: threading.Event) -> Terminator:
    """The terminator; a sped-up clock (a sandbox) never powers the machine off."""
    power_off = PowerOff(config.poweroff_command) if config.time_scale == 1 else None
    return Terminator(api, power_off=power_off, poweroff_after=config.poweroff_after_minutes * 60, stop=stop)


def build_components(config: DaemonConfig, *, clock: Clock | None = None, store: StateStore | None = None,
                     terminator: Terminator | None = None, activity_sources: Sequence[ActivitySource] | None = None,
                     notifier: Notifier | None = None, api: LambdaApi | None = None,
                     gpu_probe: Callable[[], list | None] | None = None,
                     stop: threading.Event | None = None) -> Components:
    """The daemon's parts: the ones given, the rest built from ``config``."""
    clock = clock or clock_for(config.time_scale, config.launched_at_epoch)
    stop = stop or threading.Event()
    api = api or make_api(config)
    if store is None:
        store = StateStore(config.state_dir, lambda: initial_state(config, clock.now()))
    if terminator is None:
        terminator = make_terminator(config, api, stop)
    if activity_sources is None:
        activity_sources = default_sources(config.sglang_metrics_url, config.n8n_metrics_url, config.forwarded_ports)
    return Components(
        config=config, clock=clock, store=store, terminator=terminator, activity_sources=list(activity_sources),
        notifier=notifier or Notifier(config.webhook_url, wall=config.wall), api=api,
        gpu_probe=gpu_probe or gpu_summary, stop=stop)

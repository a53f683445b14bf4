"""Activity sources: is anyone using this instance right now?

Each source answers ``active``, ``idle`` or ``unknown``. A source that cannot be
read (SGLang still loading, n8n down, /proc unreadable) is ``unknown``: the idle
timer does not run while any source is unknown (the lease and the hard limit
still do). Explicit keep-alives arrive through ``POST /activity`` and are written
to the state by the web workers, not polled here.

* SGLang (``sglang_metrics_url``, SGLang's own ``/metrics`` on its serving port,
  exposed when it runs with ``--enable-metrics``): active while
  ``sglang:num_running_reqs`` or ``sglang:num_queue_reqs`` is above zero, or
  when ``sglang:prompt_tokens_total``, ``sglang:generation_tokens_total`` or
  ``sglang:num_requests_total`` rose since the previous reading.
* n8n (``n8n_metrics_url``, n8n's ``/metrics`` with ``N8N_METRICS=true``,
  ``N8N_METRICS_INCLUDE_API_ENDPOINTS=true`` and
  ``N8N_METRICS_INCLUDE_MESSAGE_EVENT_BUS_METRICS=true``, as soong's n8n unit
  sets them): active while a workflow runs (``n8n_workflow_started_total``
  above the finished ones), when an execution started or finished since the
  last check, or when ``n8n_last_activity`` (an unlabelled gauge: Unix seconds
  of the last API, editor or webhook request) moved. A page without
  ``n8n_last_activity`` is unknown (see :class:`N8nSource`).
* SSH: active while an SSH session runs a shell or command (an ``sshd: user@...``
  process with children; a bare ``ssh -N`` tunnel has none), or while a TCP
  connection to one of ``forwarded_ports`` is established (none by default).

Probes are not use. A connection to SGLang's or n8n's port says nothing about who
made it: the CLI's readiness and status checks of ``/health`` through the tunnel,
the bootstrap's ``wait-http``, this daemon's own ``/metrics`` reads and an idle
browser tab all hold one, so the daemon no longer counts them by default
(``forwarded_ports: []``) and takes the services' own counters instead, which leave
probes out. In SGLang 0.5.23 (sglang/srt/entrypoints/http_server.py,
``health_generate``) both ``/health`` and ``/health_generate`` send a one-token
request with ``log_metrics=False``, and ``TokenizerManager`` counts a finished
request into ``sglang:num_requests_total``, ``prompt_tokens_total`` and
``generation_tokens_total`` only when ``state.obj.log_metrics``
(sglang/srt/managers/tokenizer_manager.py, ``collect_metrics``); the scheduler skips
batches of health checks in its step counters (``_record_step_counters``,
sglang/srt/managers/scheduler.py); ``/metrics`` and ``/v1/models`` count nothing.
n8n 2.41.1 moves ``n8n_last_activity`` only for requests under ``/api/``, ``/rest/``,
``/webhook*/`` and ``/form*/`` (dist/metrics/prometheus/route-metrics.service.js), so
``/healthz`` and ``/metrics`` leave it alone.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Iterable, Mapping, Protocol, Sequence

import requests

from soong_daemon import prometheus

log = logging.getLogger("soong_daemon.activity")

ACTIVE = "active"
IDLE = "idle"
UNKNOWN = "unknown"

HTTP_TIMEOUT = 3.0
MAX_METRICS_BYTES = 8 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Observation:
    """One source's answer: its name, ``active``/``idle``/``unknown`` and a short human detail."""

    source: str
    status: str
    detail: str


class ActivitySource(Protocol):
    """Anything that can say whether the instance is in use."""

    name: str

    def poll(self) -> Observation:
        """Look once; never raise for an unreadable source (answer ``unknown``)."""


def poll_all(sources: Iterable[ActivitySource]) -> list[Observation]:
    """Poll every source; one that raises counts as unknown (and is logged)."""
    observations = []
    for source in sources:
        try:
            observations.append(source.poll())
        except Exception as exc:  # a broken source must never stop enforcement
            log.warning("activity source %s failed: %s", source.name, exc.__class__.__name__)
            observations.append(Observation(source.name, UNKNOWN, f"error: {exc.__class__.__name__}"))
    return observations


def fetch_metrics(url: str, timeout: float = HTTP_TIMEOUT) -> list[prometheus.Sample]:
    """GET a Prometheus endpoint and parse it; raise OSError/ValueError/requests errors on failure."""
    with requests.get(url, timeout=timeout, headers={"Connection": "close"}, stream=True) as response:
        if response.status_code != 200:
            raise ValueError(f"HTTP {response.status_code}")
        body = response.raw.read(MAX_METRICS_BYTES + 1, decode_content=True)
    if len(body) > MAX_METRICS_BYTES:
        raise ValueError("metrics page too large")
    return prometheus.parse(body.decode("utf-8", errors="replace"))


class _CounterWatch:
    """Remembers counter values between polls and says which rose.

    The first page read is only a baseline. After it, a counter that appears
    (counters are often created at their first event) or restarts from zero
    counts as risen if it is above zero.
    """

    def __init__(self) -> None:
        self._last: dict[str, float] = {}
        self._baseline_taken = False

    def risen(self, values: Mapping[str, float | None]) -> list[str]:
        risen = []
        for name, value in values.items():
            if value is None:
                continue
            previous = self._last.get(name)
            if previous is None:
                if self._baseline_taken and value > 0:
                    risen.append(name)
            elif value > previous or (value < previous and value > 0):
                risen.append(name)
            self._last[name] = value
        self._baseline_taken = True
        return risen


class MetricsPageSource:
    """A source that reads a Prometheus page and decides from it (subclasses define ``interpret``)."""

    name = "metrics"

    def __init__(self, url: str, timeout: float = HTTP_TIMEOUT) -> None:
        self.url = url
        self.timeout = timeout
        self._counters = _CounterWatch()

    def poll(self) -> Observation:
        """Read the page once; an unreachable or unparsable page is unknown."""
        try:
            samples = fetch_metrics(self.url, self.timeout)
        except (requests.RequestException, OSError, ValueError) as exc:
            return Observation(self.name, UNKNOWN, f"metrics not readable ({_short(exc)})")
        return self.interpret(samples)

    def interpret(self, samples: Sequence[prometheus.Sample]) -> Observation:
        """Decide from one parsed page."""
        raise NotImplementedError


class SglangSource(MetricsPageSource):
    """SGLang's Prometheus metrics: running/queued requests and rising token counters."""

    name = "sglang"
    RUNNING = "sglang:num_running_reqs"
    QUEUED = "sglang:num_queue_reqs"
    COUNTERS = ("sglang:prompt_tokens_total", "sglang:generation_tokens_total", "sglang:num_requests_total")

    def interpret(self, samples: Sequence[prometheus.Sample]) -> Observation:
        """Decide from one parsed metrics page."""
        running = prometheus.total(samples, self.RUNNING)
        queued = prometheus.total(samples, self.QUEUED)
        counters = {name: prometheus.total(samples, name) for name in self.COUNTERS}
        if running is None and queued is None and all(v is None for v in counters.values()):
            return Observation(self.name, UNKNOWN, "no sglang: metrics (is SGLang running with --enable-metrics?)")
        risen = self._counters.risen(counters)
        if (running or 0) > 0 or (queued or 0) > 0:
            return Observation(self.name, ACTIVE, f"{running or 0:g} running, {queued or 0:g} queued requests")
        if risen:
            return Observation(self.name, ACTIVE, "served requests since the last check")
        return Observation(self.name, IDLE, "no running or queued requests")


class N8nSource(MetricsPageSource):
    """n8n's Prometheus metrics: workflow executions (running and finished) and requests to its API, editor and webhooks.

    Metric names and shapes as n8n 2.41.1 registers them (npm ``n8n@2.41.1``,
    ``dist/metrics/prometheus/``), with the settings of soong's n8n unit (its
    ``@n8n/config`` environment variables, ``configs/endpoints.config.js``):

    * ``n8n_last_activity``: an unlabelled gauge, the Unix time in seconds of the
      last request to ``/rest/``, ``/api/``, ``/webhook*/`` or ``/form*/``
      (``route-metrics.service.js``; only with ``N8N_METRICS_INCLUDE_API_ENDPOINTS=true``).
      It is always on the page when that setting is on, so a page without it is
      not the page this source expects: UNKNOWN, never idle.
    * ``n8n_workflow_started_total``, ``n8n_workflow_success_total``,
      ``n8n_workflow_failed_total``: counters of the message-bus events
      ``n8n.workflow.started/success/failed`` (``event-bus-metrics.service.js``,
      names from ``log-streaming.event-relay.js``; only with
      ``N8N_METRICS_INCLUDE_MESSAGE_EVENT_BUS_METRICS=true``), each created at its
      first event, so absent until the first run.
    * ``n8n_workflow_execution_duration_seconds``: a histogram observed when an
      execution finishes (``workflow-execution-duration-metrics.service.js``; on by
      default); its ``_count`` counts finished executions.
    """

    name = "n8n"
    LAST_ACTIVITY = "n8n_last_activity"
    STARTED = "n8n_workflow_started_total"
    FINISHED = ("n8n_workflow_success_total", "n8n_workflow_failed_total")
    EXECUTIONS = "n8n_workflow_execution_duration_seconds_count"

    def __init__(self, url: str, timeout: float = HTTP_TIMEOUT) -> None:
        super().__init__(url, timeout)
        self._last_request: float | None = None

    def interpret(self, samples: Sequence[prometheus.Sample]) -> Observation:
        """Decide from one parsed metrics page."""
        last_request = prometheus.total(samples, self.LAST_ACTIVITY)
        if last_request is None:
            return Observation(self.name, UNKNOWN, "n8n's metrics page has no n8n_last_activity "
                                                   "(is N8N_METRICS_INCLUDE_API_ENDPOINTS=true?)")
        started = prometheus.total(samples, self.STARTED)
        executions = prometheus.total(samples, self.EXECUTIONS)
        if started is None and (executions or 0) > 0:
            return Observation(self.name, UNKNOWN, "executions finished but n8n_workflow_started_total is missing "
                                                   "(is N8N_METRICS_INCLUDE_MESSAGE_EVENT_BUS_METRICS=true?)")
        finished = sum(prometheus.total(samples, name) or 0.0 for name in self.FINISHED)
        risen = self._counters.risen({name: prometheus.total(samples, name)
                                      for name in (self.STARTED, *self.FINISHED, self.EXECUTIONS)})
        moved = self._last_request is not None and last_request > self._last_request
        self._last_request = max(last_request, self._last_request or last_request)
        running = max(0.0, (started or 0.0) - finished)
        if running > 0:
            return Observation(self.name, ACTIVE, f"{running:g} workflow executions running")
        if risen:
            return Observation(self.name, ACTIVE, "workflow executions since the last check")
        if moved:
            return Observation(self.name, ACTIVE, "API, editor or webhook requests since the last check")
        return Observation(self.name, IDLE, "no workflow executions or requests")


SSHD_TITLES = ("sshd: ", "sshd-session: ")


class SshSource:
    """Live SSH sessions (an sshd user process with children) and connections to forwarded ports."""

    name = "ssh"

    def __init__(self, forwarded_ports: Sequence[int], proc_root: Path = Path("/proc")) -> None:
        self.forwarded_ports = frozenset(forwarded_ports)
        self.proc_root = Path(proc_root)

    def poll(self) -> Observation:
        """Look at /proc once."""
        try:
            sessions = self.busy_sessions()
            connections = self.forwarded_connections()
        except OSError as exc:
            return Observation(self.name, UNKNOWN, f"/proc not readable ({_short(exc)})")
        if sessions or connections:
            return Observation(self.name, ACTIVE, f"{sessions} SSH sessions, {connections} forwarded connections")
        return Observation(self.name, IDLE, "no SSH sessions or forwarded connections")

    def busy_sessions(self) -> int:
        """How many SSH sessions run a shell or command (a bare port-forwarding tunnel does not count)."""
        parents: dict[int, int] = {}
        session_pids = set()
        for entry in os.scandir(self.proc_root):
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            try:
                stat = (self.proc_root / entry.name / "stat").read_bytes()
                cmdline = (self.proc_root / entry.name / "cmdline").read_bytes()
            except OSError:
                continue  # the process ended while we looked
            parents[pid] = int(stat[stat.rindex(b")") + 2:].split()[1])
            title = cmdline.split(b"\0", 1)[0].decode("utf-8", errors="replace").strip()
            if title.startswith(SSHD_TITLES) and "@" in title:
                session_pids.add(pid)
        return len({parent for parent in parents.values() if parent in session_pids})

    def forwarded_connections(self) -> int:
        """Established TCP connections whose local port is a forwarded one."""
        if not self.forwarded_ports:
            return 0
        count = 0
        readable = False
        for name in ("tcp", "tcp6"):
            try:
                text = (self.proc_root / "net" / name).read_text()
            except FileNotFoundError:
                continue
            readable = True
            for line in text.splitlines()[1:]:
                fields = line.split()
                if len(fields) < 4 or fields[3] != "01":  # 01 = ESTABLISHED
                    continue
                port = int(fields[1].rsplit(":", 1)[1], 16)
                if port in self.forwarded_ports:
                    count += 1
        if not readable:
            raise FileNotFoundError("no /proc/net/tcp")
        return count


def _short(exc: BaseException) -> str:
    if isinstance(exc, requests.ConnectionError):
        return "connection refused or unreachable"
    if isinstance(exc, requests.Timeout):
        return "timed out"
    text = str(exc) or exc.__class__.__name__
    return text[:120]


def default_sources(sglang_metrics_url: str, n8n_metrics_url: str, forwarded_ports: Sequence[int]) -> list[ActivitySource]:
    """The sources a configuration asks for (an empty URL leaves that source out)."""
    sources: list[ActivitySource] = [SshSource(forwarded_ports)]
    if sglang_metrics_url:
        sources.append(SglangSource(sglang_metrics_url))
    if n8n_metrics_url:
        sources.append(N8nSource(n8n_metrics_url))
    return sources

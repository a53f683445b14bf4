"""Scriptable fault injection: latency, errors, dropped connections, ambiguous launches.

A :class:`FaultRule` matches requests by method and path (a glob relative to
``/api/v1``) and fires with a probability, for a number of times, or along a
sequence. The first rule that fires decides what happens to a request. Rules are
plain JSON, so tests, the admin API and the command line all use the same form::

    {"path": "/instance-operations/launch", "action": "ambiguous", "then": "drop", "probability": 0.3}
    {"method": "GET", "path": "/instances", "sequence": [{"action": "error", "status": 500}, null]}

Actions:

``latency``
    wait ``delay`` seconds, then answer normally.
``error``
    answer ``status`` (default 503) without doing anything. ``code`` sets the
    Lambda error code (e.g. ``provider/internal-unavailable``); without one a 500
    is ``global/internal-error``, a 429 is the rate-limit answer with
    ``Retry-After`` (``retry_after``), and 502/503/504 are a gateway's HTML page.
``drop``
    close the connection without an answer, doing nothing.
``ambiguous``
    do the work (e.g. create the instance), then fail the answer: ``then`` is
    ``drop`` (default), ``error`` (answer ``status``, default 502) or ``timeout``
    (answer only after ``delay`` seconds, past the client's read timeout).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import itertools
import random
import threading
from typing import Any

ACTIONS = ("latency", "error", "drop", "ambiguous")
THEN = ("drop", "error", "timeout")


@dataclasses.dataclass
class FaultAction:
    """What to do to one request."""

    action: str
    status: int | None = None
    code: str | None = None
    message: str | None = None
    retry_after: float | None = None
    delay: float = 0.0
    then: str = "drop"
    body: str | None = None  # json | html | text; None: chosen from status/code

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "FaultAction":
        """Build from JSON; raise ValueError on bad values."""
        action = raw.get("action")
        if action not in ACTIONS:
            raise ValueError(f"fault action must be one of {', '.join(ACTIONS)}, not {action!r}")
        then = raw.get("then", "drop")
        if then not in THEN:
            raise ValueError(f"'then' must be one of {', '.join(THEN)}, not {then!r}")
        status = raw.get("status")
        if status is not None and not (isinstance(status, int) and 400 <= status <= 599):
            raise ValueError(f"fault status must be an HTTP error status, not {status!r}")
        delay = float(raw.get("delay", 0.0))
        if delay < 0:
            raise ValueError("fault delay must not be negative")
        body = raw.get("body")
        if body not in (None, "json", "html", "text"):
            raise ValueError("fault body must be json, html or text")
        retry_after = raw.get("retry_after")
        return cls(action=action, status=status, code=raw.get("code"), message=raw.get("message"),
                   retry_after=None if retry_after is None else float(retry_after), delay=delay, then=then, body=body)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


_ids = itertools.count(1)


@dataclasses.dataclass
class FaultRule:
    """When to apply a :class:`FaultAction` (or, with ``sequence``, which one)."""

    method: str = "*"
    path: str = "*"
    fault: FaultAction | None = None
    sequence: list[FaultAction | None] | None = None
    probability: float = 1.0
    times: int | None = None  # fire at most this many more times
    skip: int = 0  # let this many matching requests through first
    id: int = dataclasses.field(default_factory=lambda: next(_ids))
    fired: int = 0
    matched: int = 0

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "FaultRule":
        """Build a rule from JSON: the action's fields inline, or a ``sequence`` of them (null: pass)."""
        if not isinstance(raw, dict):
            raise ValueError("a fault rule must be a JSON object")
        method = str(raw.get("method", "*")).upper()
        path = str(raw.get("path", "*"))
        if path.startswith("/api/v1"):
            path = path[len("/api/v1"):] or "/"
        probability = float(raw.get("probability", 1.0))
        if not 0.0 <= probability <= 1.0:
            raise ValueError("probability must be between 0 and 1")
        times = raw.get("times")
        if times is not None and (not isinstance(times, int) or times < 0):
            raise ValueError("times must be a whole number >= 0")
        skip = int(raw.get("skip", 0))
        if "sequence" in raw:
            seq = raw["sequence"]
            if not isinstance(seq, list) or not seq:
                raise ValueError("sequence must be a non-empty list of fault actions or nulls")
            sequence = [None if item is None else FaultAction.from_dict(item) for item in seq]
            return cls(method=method, path=path, sequence=sequence, probability=probability, times=times, skip=skip)
        return cls(method=method, path=path, fault=FaultAction.from_dict(raw), probability=probability,
                   times=times, skip=skip)

    def to_dict(self) -> dict[str, Any]:
        """JSON form, with counters."""
        out: dict[str, Any] = {"id": self.id, "method": self.method, "path": self.path,
                               "probability": self.probability, "times": self.times, "skip": self.skip,
                               "fired": self.fired, "matched": self.matched}
        if self.sequence is not None:
            out["sequence"] = [None if a is None else a.to_dict() for a in self.sequence]
        elif self.fault is not None:
            out.update(self.fault.to_dict())
        return out

    def matches(self, method: str, path: str) -> bool:
        """Whether the rule applies to a request."""
        return (self.method in ("*", method)) and fnmatch.fnmatchcase(path, self.path)


class FaultPlan:
    """The active fault rules, consulted once per API request (thread-safe).

    :param seed: seed of the random generator behind probabilities (None: random).
    """

    def __init__(self, seed: int | None = None) -> None:
        self._rules: list[FaultRule] = []
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def add(self, raw: dict[str, Any] | FaultRule) -> FaultRule:
        """Add a rule (JSON or built); return it."""
        rule = raw if isinstance(raw, FaultRule) else FaultRule.from_dict(raw)
        with self._lock:
            self._rules.append(rule)
        return rule

    def remove(self, rule_id: int) -> bool:
        """Drop one rule; False if unknown."""
        with self._lock:
            before = len(self._rules)
            self._rules = [r for r in self._rules if r.id != rule_id]
            return len(self._rules) != before

    def clear(self) -> None:
        """Drop every rule."""
        with self._lock:
            self._rules.clear()

    def reseed(self, seed: int | None) -> None:
        """Reset the random generator."""
        with self._lock:
            self._random = random.Random(seed)

    def rules(self) -> list[dict[str, Any]]:
        """Every rule as JSON."""
        with self._lock:
            return [r.to_dict() for r in self._rules]

    def pick(self, method: str, path: str) -> FaultAction | None:
        """The fault to apply to this request, or None (counts the rule's use)."""
        with self._lock:
            for rule in self._rules:
                if not rule.matches(method, path):
                    continue
                if rule.times is not None and rule.times <= 0:
                    continue
                rule.matched += 1
                if rule.matched <= rule.skip:
                    continue
                if rule.sequence is not None:
                    index = rule.matched - rule.skip - 1
                    if index >= len(rule.sequence):
                        continue
                    action = rule.sequence[index]
                    if action is None:
                        return None
                elif self._random.random() < rule.probability:
                    action = rule.fault
                else:
                    continue
                rule.fired += 1
                if rule.times is not None:
                    rule.times -= 1
                return action
            return None

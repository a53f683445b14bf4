"""A stateful property test: extend, keep-alive, source changes, time passing and restarts.

The model predicts every answer and every decision. Invariants: never alive past
the hard limit, never stopped while within the lease and active, and the lease
only grows by exactly what was granted.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path

from falcon import testing
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from soong_daemon.activity import ACTIVE, IDLE, UNKNOWN
from soong_daemon.app import create_app
from soong_daemon.config import parse_config
from tests.daemon.conftest import LAUNCH, TOKEN, ManualClock, QuietNotifier, SettableSource, write_secret

AUTH = {"Authorization": f"Bearer {TOKEN}"}
HOUR = 3600.0


class SharedTerminator:
    """Records terminate calls across restarts."""

    def __init__(self, calls: list) -> None:
        self.calls = calls

    def terminate(self, resolve_id, progress):
        from soong_daemon.terminator import TerminationResult

        self.calls.append(resolve_id())
        result = TerminationResult("verified", 1, instance_status="terminating")
        progress(result)
        return result


class DaemonMachine(RuleBasedStateMachine):
    """The daemon (web app + enforcer on one state folder) against a model of its rules."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="soong-daemon-sm-"))
        write_secret(self.tmp / "token", TOKEN)
        write_secret(self.tmp / "key", "unused-key")
        self.config = parse_config({
            "instance_id": "inst-1", "launched_at": LAUNCH.isoformat(), "lease_hours": 2,
            "idle_timeout_minutes": 45, "hard_limit_hours": 4, "warn_minutes": 10,
            "state_dir": str(self.tmp / "state"), "token_file": str(self.tmp / "token"),
            "api_key_file": str(self.tmp / "key"), "boot_log": str(self.tmp / "boot.log"),
            "sglang_metrics_url": "", "n8n_metrics_url": "", "wall": False, "poweroff_command": []})
        self.clock = ManualClock(LAUNCH.timestamp() + 120)
        self.source = SettableSource()
        self.calls: list = []
        self.created_at = self.clock.now()
        self.launched = LAUNCH.timestamp()
        self.hard_limit_at = self.launched + 4 * HOUR
        self.initial_lease_end = self.launched + 2 * HOUR
        self.granted = 0.0
        self.last_activity = None
        self.last_unknown = None
        self.decided = None
        self.ticked_since_decision = False
        self._start()

    def _start(self) -> None:
        self.app = create_app(self.config, clock=self.clock, terminator=SharedTerminator(self.calls),
                              activity_sources=[self.source], notifier=QuietNotifier(), gpu_probe=lambda: None)
        self.client = testing.TestClient(self.app)

    def teardown(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ------------------------------------------------------------ model

    @property
    def lease_end(self) -> float:
        return self.initial_lease_end + self.granted * HOUR

    def idle_reference(self) -> float:
        return max(t for t in (self.created_at, self.last_activity, self.last_unknown) if t is not None)

    # ------------------------------------------------------------ rules

    @rule(hours=st.one_of(st.floats(min_value=0.01, max_value=3), st.sampled_from([0, -1, 1e9])))
    def extend(self, hours: float) -> None:
        result = self.client.simulate_post("/extend", headers=AUTH, json={"hours": hours})
        if hours <= 0:
            assert result.status_code == 400
        elif self.decided:
            assert result.status_code == 409 and result.json["error"]["code"] == "shutdown_underway"
        elif self.lease_end + hours * HOUR > self.hard_limit_at:
            assert result.status_code == 409 and result.json["error"]["code"] == "past_hard_limit"
        else:
            assert result.status_code == 200, result.text
            self.granted += hours

    @rule()
    def extend_to_the_hard_limit(self) -> None:
        hours = (self.hard_limit_at - self.lease_end) / HOUR
        if hours > 0:
            self.extend(hours)

    @rule()
    def keep_alive(self) -> None:
        result = self.client.simulate_post("/activity", headers=AUTH)
        if self.decided:
            assert result.status_code == 409
        else:
            assert result.status_code == 200
            self.last_activity = self.clock.now()

    @rule(status=st.sampled_from([ACTIVE, IDLE, UNKNOWN]))
    def set_source(self, status: str) -> None:
        self.source.status = status

    @rule(seconds=st.one_of(st.floats(min_value=1, max_value=40 * 60), st.floats(min_value=1, max_value=3 * HOUR)))
    def advance_and_check(self, seconds: float) -> None:
        self.clock.advance(seconds)
        now = self.clock.now()
        self.app.enforcer.tick()
        if self.decided:
            self.ticked_since_decision = True
            return
        if self.source.status == ACTIVE:
            self.last_activity = now
        elif self.source.status == UNKNOWN:
            self.last_unknown = now
        idle = now - self.idle_reference()
        expected = ("hard_limit" if now >= self.hard_limit_at else "lease_expired" if now >= self.lease_end
                    else "idle" if idle >= 45 * 60 else None)
        state = self.app.parts.store.read()
        actual = state["shutdown"] and state["shutdown"]["reason"]
        assert actual == expected, (actual, expected)
        if now >= self.hard_limit_at:
            assert actual, "alive past the hard limit"
        if now < self.lease_end and now < self.hard_limit_at and (self.source.status == ACTIVE or idle < 45 * 60):
            assert not actual, "stopped while within the lease and active"
        if actual:
            self.decided = actual
            self.ticked_since_decision = True

    @rule(offset=st.floats(min_value=-60, max_value=60))
    def advance_near_the_next_deadline(self, offset: float) -> None:
        deadline = min(self.hard_limit_at, self.lease_end, self.idle_reference() + 45 * 60)
        if deadline + offset > self.clock.now():
            self.advance_and_check(deadline + offset - self.clock.now())

    @rule(offset=st.floats(min_value=-60, max_value=300))
    def advance_near_the_hard_limit(self, offset: float) -> None:
        if self.hard_limit_at + offset > self.clock.now():
            self.advance_and_check(self.hard_limit_at + offset - self.clock.now())

    @precondition(lambda self: self.decided is None)
    @rule()
    def request_shutdown(self) -> None:
        result = self.client.simulate_post("/shutdown", headers=AUTH)
        assert result.status_code == 202
        self.decided = "requested"
        self.ticked_since_decision = False

    @rule()
    def restart(self) -> None:
        self._start()

    @rule(hours=st.floats(min_value=2, max_value=6))
    def restart_with_a_lower_hard_limit(self, hours: float) -> None:
        self.config = dataclasses.replace(self.config, hard_limit_hours=hours)
        self.hard_limit_at = min(self.hard_limit_at, self.launched + hours * HOUR)
        self._start()

    # ------------------------------------------------------------ invariants

    @invariant()
    def lease_grows_only_by_what_was_granted(self) -> None:
        state = self.app.parts.store.read()
        assert state["lease_end"] == self.initial_lease_end + self.granted * HOUR or \
            abs(state["lease_end"] - self.lease_end) < 1e-6
        assert state["lease_end"] <= self.launched + 4 * HOUR
        assert abs(state["granted_hours"] - self.granted) < 1e-9

    @invariant()
    def terminated_exactly_once_when_decided(self) -> None:
        expected = 1 if self.decided and self.ticked_since_decision else 0
        assert len(self.calls) == expected
        assert all(call == "inst-1" for call in self.calls)

    @invariant()
    def status_agrees_with_the_state(self) -> None:
        body = self.client.simulate_get("/status", headers=AUTH).json
        assert (body["shutdown"] or {}).get("reason") == self.decided
        assert body["lease"]["granted_hours"] == self.app.parts.store.read()["granted_hours"]


DaemonMachine.TestCase.settings = settings(max_examples=80, stateful_step_count=30, deadline=None)
TestDaemonMachine = DaemonMachine.TestCase

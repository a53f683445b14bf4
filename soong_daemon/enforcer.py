"""The one enforcement loop: poll activity, apply the rules, warn, and terminate.

Exactly one loop runs per state folder. On an instance it is its own systemd
unit (``soong-daemon --role enforcer``, see ``soong_daemon.cli``), started
before the web server and independent of it; where no systemd runs (the local
sandbox, tests) the gunicorn master starts this module as a child process
(``python -m soong_daemon.enforcer``) and restarts it if it dies. The loop holds
an exclusive lock on ``<state_dir>/enforcer.lock`` for as long as it runs, so a
second one (a stray process, a second daemon on the same folder) waits instead
of enforcing twice. Every decision is recorded in the shared state before it is
acted on, and acting on it again (after a crash or restart) is harmless: the
shutdown is decided once, the termination is resumed until the API confirms it.
A state that cannot be written (a full disk) never stops a decision: the
enforcer then works from memory (``soong_daemon.keeper``).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import logging
import os
import signal
import sys
import threading
import time
from typing import Iterator

from soong_daemon import operations, preflight, rules, sdnotify, skew
from soong_daemon.activity import UNKNOWN, poll_all
from soong_daemon.api import ApiError
from soong_daemon.bootlog import BootLog
from soong_daemon.clock import iso
from soong_daemon.components import Components, build_components
from soong_daemon.config import ConfigError, DaemonConfig, load_config
from soong_daemon.keeper import StateKeeper
from soong_daemon.secretfile import read_secret
from soong_daemon.terminator import TerminationResult

log = logging.getLogger("soong_daemon.enforcer")

ENFORCER_LOCK = "enforcer.lock"
MAX_WARNINGS_KEPT = 50
STATE_POLL_SECONDS = 1.0
CLOCK_CHECK_SECONDS = 60.0

_ADVICE = {
    rules.HARD_LIMIT: "the hard limit cannot be extended",
    rules.LEASE_EXPIRED: "extend the lease (soong extend) to keep it",
    rules.IDLE: "use it, or POST /activity, to keep it",
    rules.PREFLIGHT_FAILED: "it can serve nothing; log in to look (soong ssh), or end it now with soong stop",
}


class Enforcer:
    """Applies the lease, idle and hard-limit rules to the shared state, and acts on them."""

    def __init__(self, parts: Components, *, keeper: StateKeeper | None = None) -> None:
        self.parts = parts
        self.config = parts.config
        self.keeper = keeper or StateKeeper(parts.store)
        self.boot_log = BootLog(parts.config.boot_log)
        self._reported_unknown: set[str] = set()
        self._next_clock_check = 0.0
        self._skew_reported = False

    # ------------------------------------------------------------ one check

    def tick(self) -> rules.Verdict | None:
        """One pass: poll, record, decide, warn, and terminate if decided. Safe to repeat at any time.

        Returns the verdict, or None when a shutdown was already decided before this pass.
        """
        parts = self.parts
        self._resolve_quietly()
        self._settle_clock()
        state = self.keeper.read()
        decided_before = bool(state.get("shutdown"))
        observations = [] if decided_before else poll_all(parts.activity_sources)
        gpu = None if decided_before else parts.gpu_probe()
        boot_phases = [] if decided_before else self.boot_log.summary()["phases"]
        outcome = self.keeper.update(lambda state: self._decide(state, observations, gpu, boot_phases))
        if outcome["warning"] is not None:
            self._warn(outcome["warning"], outcome["now"], outcome["instance_id"])
        stuck = outcome["stuck"]
        for name in set(stuck) - self._reported_unknown:
            log.warning("activity source %s has been unreadable for longer than the idle timeout; until it can be "
                        "read the idle shutdown is held (the lease and the hard limit still apply)", name)
        self._reported_unknown = set(stuck)
        shutdown = outcome["shutdown"]
        if shutdown and (outcome["termination"] or {}).get("outcome") != "verified":
            self._carry_out(shutdown, outcome["instance_id"])
        return None if decided_before else outcome["verdict"]

    def _decide(self, state: dict, observations: list, gpu: list | None, boot_phases: list) -> dict:
        """Record this pass's observations in ``state`` and decide; what to do next, outside the state."""
        now = self.parts.clock.now()
        state["enforcer"] = {"pid": os.getpid(), "heartbeat": time.time()}
        warning = verdict = None
        stuck: list[str] = []
        if not state.get("shutdown"):
            operations.tighten_hard_limit(state, self.config)
            if preflight.record_from_boot(state, self.config, boot_phases, now):
                log.error("the bootstrap's preflight failed: %s; this instance will be terminated in %g min",
                          state["preflight"]["reason"], self.config.preflight_grace_minutes)
            operations.record_observations(state, now, observations)
            stuck = operations.long_unknown_sources(state, now, self.config.idle_timeout_minutes * 60)
            state["gpu"] = gpu
            verdict = rules.evaluate(now, operations.limits(state, self.config))
            if verdict.shutdown:
                operations.decide_shutdown(state, now, verdict.reason, self._describe(verdict, now, state))
            elif self._warning_due(state, now, verdict):
                warning = verdict
        return {"now": now, "verdict": verdict, "warning": warning, "stuck": stuck, "shutdown": state.get("shutdown"),
                "termination": state.get("termination"), "instance_id": state.get("instance_id")}

    def _warning_due(self, state: dict, now: float, verdict: rules.Verdict) -> bool:
        if not rules.warning_due(now, verdict, self.config.warn_minutes * 60):
            return False
        if verdict.next_reason == rules.IDLE and any(s.get("status") == UNKNOWN for s in state["sources"].values()):
            return False  # the idle timer is held; no point warning
        key = f"{verdict.next_reason}@{int(verdict.next_at // 60)}"
        sent = state.setdefault("warnings_sent", [])
        if key in sent:
            return False
        sent.append(key)
        del sent[:-MAX_WARNINGS_KEPT]
        return True

    def _describe(self, verdict: rules.Verdict, now: float, state: dict) -> str:
        if verdict.reason == rules.HARD_LIMIT:
            return f"hard limit of {self.config.hard_limit_hours:g} h from launch reached"
        if verdict.reason == rules.LEASE_EXPIRED:
            return f"lease ended at {iso(verdict.next_at)}"
        if verdict.reason == rules.PREFLIGHT_FAILED:
            reason = (state.get("preflight") or {}).get("reason", "")
            return (f"the preflight failed {self.config.preflight_grace_minutes:g} min ago and the instance can "
                    f"serve nothing: {reason}")
        return f"no activity for {verdict.idle_seconds / 60:.0f} min (idle timeout {self.config.idle_timeout_minutes:g} min)"

    def _warn(self, verdict: rules.Verdict, now: float, instance_id: str | None) -> None:
        minutes = max(0.0, (verdict.next_at - now) / 60)
        message = (f"instance {instance_id or self.config.instance_name} will be terminated in {minutes:.0f} min "
                   f"at {iso(verdict.next_at)} ({verdict.next_reason}); {_ADVICE[verdict.next_reason]}")
        self.parts.notifier.warn(message, {"event": "warning", "instance_id": instance_id,
                                           "reason": verdict.next_reason, "shutdown_at": iso(verdict.next_at)})

    # ------------------------------------------------------------ instance id

    def _resolve_instance_id(self) -> str | None:
        """This instance's id: from the state, or looked up once by launch name and then persisted."""
        current = self.keeper.read().get("instance_id")
        if current or not self.config.instance_name:
            return current
        found = self.parts.api.find_instance_id(self.config.instance_name)  # ApiError propagates to the caller
        if found:
            def keep(state: dict) -> str:
                state["instance_id"] = state.get("instance_id") or found
                return state["instance_id"]

            found = self.keeper.update(keep)
            log.info("this instance is %s (found by its launch name)", found)
        return found

    def _resolve_quietly(self) -> None:
        try:
            self._resolve_instance_id()
        except ApiError as exc:
            log.warning("cannot look up this instance's id yet: %s", exc)

    # ------------------------------------------------------------ clock skew

    def _settle_clock(self) -> None:
        """Settle a launch time clamped for clock skew with the provider's clock (see ``soong_daemon.skew``)."""
        clock = self.keeper.read().get("clock") or {}
        if clock.get("status") not in (skew.PENDING, skew.CLAMPED):
            return
        if not self._skew_reported and clock.get("skew_seconds", 0) > skew.SKEW_TOLERANCE_SECONDS:
            log.warning(skew.describe(clock))
            self._skew_reported = True
        if clock.get("status") != skew.PENDING or time.monotonic() < self._next_clock_check:
            return
        self._next_clock_check = time.monotonic() + CLOCK_CHECK_SECONDS
        offset = self.parts.api.clock_offset()
        if offset is None:
            log.warning("cannot read the provider's clock yet; the lease and the hard limit count from this "
                        "daemon's first start until it can be read")
            return
        shift = self.keeper.update(lambda state: skew.apply_provider_offset(state, offset, self.config.hard_limit_hours))
        if shift > 0:
            log.warning("this machine's clock is %.0f s behind the provider's; the launch time, lease and hard limit "
                        "were moved %.0f s earlier to match launched_at", offset, shift)
        else:
            log.info("this machine's clock agrees with the provider's (%+.0f s); launched_at was ahead, so the "
                     "lease and the hard limit count from this daemon's first start", offset)

    # ------------------------------------------------------------ shutdown

    def _carry_out(self, shutdown: dict, instance_id: str | None) -> None:
        def mark(state: dict) -> bool:
            announce = not state.get("final_notice_sent")
            state["final_notice_sent"] = True
            return announce

        announce = self.keeper.update(mark)
        if announce:
            self.parts.notifier.warn(
                f"instance {instance_id or self.config.instance_name} is being terminated now "
                f"({shutdown['reason']}: {shutdown.get('detail', '')})",
                {"event": "terminating", "instance_id": instance_id, "reason": shutdown["reason"]})
        self.parts.terminator.terminate(self._resolve_instance_id, self._record_progress)

    def _record_progress(self, result: TerminationResult) -> None:
        def record(state: dict) -> None:
            state["termination"] = {
                "outcome": result.outcome, "attempts": result.attempts, "last_error": result.last_error,
                "instance_status": result.instance_status, "powered_off": result.powered_off,
                "updated_at": self.parts.clock.now(),
            }
            state["enforcer"] = {"pid": os.getpid(), "heartbeat": time.time()}

        self.keeper.update(record)

    # ------------------------------------------------------------ the loop

    def run(self, stop: threading.Event) -> None:
        """Check every ``check_interval_seconds`` (sooner when a deadline is nearer) until ``stop`` is set."""
        log.info("enforcing: lease, idle timeout %g min, hard limit %g h", self.config.idle_timeout_minutes,
                 self.config.hard_limit_hours)
        while not stop.is_set():
            verdict = None
            try:
                verdict = self.tick()
            except Exception:
                log.exception("enforcement check failed; trying again")
            self._wait(stop, self._next_wait(verdict))

    def _next_wait(self, verdict: rules.Verdict | None) -> float:
        interval = self.config.check_interval_seconds
        if self.keeper.unsaved:  # try the file again soon
            interval = min(interval, self.keeper.retry_seconds)
        if verdict is None or verdict.shutdown:
            return interval
        until_next = self.parts.clock.real_seconds(max(0.0, verdict.next_at - self.parts.clock.now()))
        return max(0.05, min(interval, until_next + 0.05))

    def _wait(self, stop: threading.Event, seconds: float) -> None:
        """Sleep up to ``seconds``, waking early for a stop or a shutdown request written by a worker."""
        deadline = time.monotonic() + seconds
        while not stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            stop.wait(min(STATE_POLL_SECONDS, remaining))
            try:
                state = self.keeper.read()
            except Exception:
                continue
            if state.get("shutdown") and (state.get("termination") or {}).get("outcome") != "verified":
                return


@contextlib.contextmanager
def exclusive(state_dir: os.PathLike, stop: threading.Event) -> Iterator[bool]:
    """Hold ``<state_dir>/enforcer.lock``; wait while another enforcer holds it. Yields False if stopped first.

    A lock file that cannot be created (a full disk on the very first start) is
    logged and enforcement goes ahead without it: two enforcers at once are
    harmless (decisions are recorded once, a terminate is repeated), none is not.
    """
    try:
        fd = os.open(os.path.join(state_dir, ENFORCER_LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        log.error("cannot open %s (%s); enforcing without the lock that keeps a second enforcer waiting",
                  ENFORCER_LOCK, exc.strerror or exc)
        yield True
        return
    try:
        waited = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waited:
                    log.warning("another enforcer holds %s; waiting for it to stop", ENFORCER_LOCK)
                    waited = True
                if stop.wait(1.0):
                    yield False
                    return
        with contextlib.suppress(OSError):  # the pid is for people; a full disk must not stop the enforcer
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        yield True
    finally:
        os.close(fd)


def _die_with_parent(parent_pid: int, stop: threading.Event) -> None:
    """Stop when the gunicorn master goes away (PR_SET_PDEATHSIG plus a ppid watch)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:
        stop.set()
        return

    def watch() -> None:
        while not stop.wait(1.0):
            if os.getppid() != parent_pid:
                log.warning("the daemon's master process is gone; stopping this enforcer")
                stop.set()

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def enforce(config: DaemonConfig, *, parent_pid: int | None = None) -> int:
    """Run the enforcement loop in this process until SIGTERM or SIGINT (or, with ``parent_pid``, that parent's end).

    Tells systemd it is ready (``sdnotify``) once it holds the enforcer lock,
    before its first check, which may block for as long as a termination takes.
    """
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    if parent_pid is not None:
        _die_with_parent(parent_pid, stop)
    try:
        read_secret(config.api_key_file, "api_key_file")
    except ConfigError as exc:  # enforce anyway: the key is read again for every call, and may come later
        log.error("%s; enforcing anyway, but terminating through the API fails until the key is readable", exc)
    parts = build_components(config, stop=stop)
    with exclusive(config.state_dir, stop) as acquired:
        if acquired:
            sdnotify.notify("READY=1\nSTATUS=enforcing the lease, idle timeout and hard limit")
            Enforcer(parts).run(stop)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the enforcer child the gunicorn master starts in the embedded mode (not run by hand)."""
    parser = argparse.ArgumentParser(prog="soong-daemon-enforcer")
    parser.add_argument("--config", required=True)
    parser.add_argument("--parent-pid", type=int, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s")
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"soong-daemon enforcer: {exc}", file=sys.stderr)
        return 2
    return enforce(config, parent_pid=args.parent_pid)


if __name__ == "__main__":
    sys.exit(main())

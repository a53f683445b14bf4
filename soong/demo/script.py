"""The steps of ``soong demo``: each a real soong command run as a subprocess.

The tour is the one a newcomer would type: bring the sandbox up, start a model,
look at the status, send a chat request through the tunnel, extend the lease, leave
the instance idle until its own daemon terminates it, read the history, and take the
sandbox down. Every command and its real output is printed; a failing step ends the
tour with a non-zero exit code, and the sandbox always goes down at the end.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import IO, Callable

from soong.core.errors import SoongError

SANDBOX = ("--profile", "sandbox")


class DemoStepFailed(SoongError):
    """A step of the demo did not do what it should."""


@dataclass
class StepResult:
    """What one command printed and returned."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str


def soong_argv() -> list[str]:
    """How to run this very soong: the interpreter running now, with ``-m soong``."""
    return [sys.executable, "-m", "soong"]


def _minutes(value: object) -> object:
    """Idle seconds from ``status -f json`` as whole minutes (other values as they are)."""
    if isinstance(value, (int, float)):
        return int(value // 60)
    return value


class DemoRun:
    """One run of the tour.

    :param out: where commands and their output are printed.
    :param runner: runs an argv and returns a StepResult (tests may pass their own).
    """

    def __init__(self, *, out: IO[str], err: IO[str], model: str, time_scale: float, timeout: float, keep: bool,
                 runner: Callable[[list[str], float], StepResult] | None = None,
                 sleep: Callable[[float], None] = time.sleep, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.out = out
        self.err = err
        self.model = model
        self.time_scale = time_scale
        self.timeout = timeout
        self.keep = keep
        self.runner = runner or self._run_subprocess
        self.sleep = sleep
        self.monotonic = monotonic

    # -- plumbing ---------------------------------------------------------------------------------
    @staticmethod
    def _run_subprocess(argv: list[str], timeout: float) -> StepResult:
        env = dict(os.environ, COLUMNS=os.environ.get("COLUMNS", "120"))
        proc = subprocess.run(soong_argv() + argv, capture_output=True, text=True, timeout=timeout, env=env)
        return StepResult(argv, proc.returncode, proc.stdout, proc.stderr)

    def say(self, text: str) -> None:
        """A line of narration."""
        self.out.write(f"\n# {text}\n")
        self.out.flush()

    def soong(self, *args: str, timeout: float | None = None, check: bool = True, show: bool = True) -> StepResult:
        """Run ``soong ARGS``, print it as typed and its output; raise on failure when ``check``."""
        argv = list(args)
        if show:
            self.out.write(f"$ soong {shlex.join(argv)}\n")
            self.out.flush()
        result = self.runner(argv, timeout or self.timeout)
        if show:
            self.out.write(result.stdout)
            if result.stderr.strip():
                self.out.write(result.stderr)
            self.out.flush()
        if check and result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["(no message)"])[-1]
            raise DemoStepFailed(f"'soong {shlex.join(argv)}' exited with {result.returncode}: {last}")
        return result

    def _json(self, *args: str) -> object:
        result = self.soong(*args, "-f", "json", show=False)
        try:
            return json.loads(result.stdout)
        except ValueError:
            raise DemoStepFailed(f"'soong {' '.join(args)} -f json' did not print JSON") from None

    # -- the tour -----------------------------------------------------------------------------------
    def run(self) -> int:
        """Run every step; return 0, or raise DemoStepFailed naming the step that failed."""
        started = self.monotonic()
        self.say(f"soong demo: the whole lifecycle in a local sandbox (time runs {self.time_scale:g}x faster there)")
        self.soong("sandbox", "up", "--time-scale", f"{self.time_scale:g}", "--boot-delay", "1")
        try:
            self._tour()
        finally:
            if not self.keep:
                self.say("Take the sandbox down: every instance terminated, every process stopped.")
                self.soong("sandbox", "down", check=False)
        self.say(f"Demo finished in {self.monotonic() - started:.0f} s. Try it yourself: soong sandbox up, then "
                 "soong --profile sandbox start --model llama-3.1-8b -y")
        return 0

    def _tour(self) -> None:
        self.say(f"Start {self.model}: soong picks a GPU that fits, shows the cost, launches, waits until the model answers.")
        started = self.soong(*SANDBOX, "start", "--model", self.model, "-y")
        api = self._api_url(started.stdout)

        self.say("Every instance with its cost so far, lease left and idle time:")
        self.soong(*SANDBOX, "status")

        self.say("Chat with the model through the tunnel (the sandbox serves an echo stand-in, not a real model). "
                 "Every request needs the instance's own API key, which 'soong tunnel api-key' prints:")
        key = self.soong(*SANDBOX, "tunnel", "api-key", show=False).stdout.strip()
        self.out.write(f"$ export OPENAI_API_KEY=$(soong {' '.join(SANDBOX)} tunnel api-key)\n")
        self.chat(api, "Hello from the soong demo!", key)

        self.say("Extend the lease by one hour (the daemon on the instance decides; the hard limit still holds):")
        self.soong(*SANDBOX, "extend", "1", "-y")
        self.soong(*SANDBOX, "tunnel", "status")

        self.say("Now leave it alone. Its own daemon ends it when the idle timeout passes (30 min, time-scaled):")
        instance_id = self._only_instance_id()
        self.wait_until_gone(instance_id)

        self.say("The history says how it ended, and what it cost:")
        self.soong(*SANDBOX, "history")
        self.soong(*SANDBOX, "cost")
        history = self._json(*SANDBOX, "history")
        row = next((r for r in history if r.get("Instance ID") == instance_id), None) if isinstance(history, list) else None
        if row is None or row.get("Ended by") != "idle":
            raise DemoStepFailed(f"expected instance {instance_id} to have ended by 'idle', history says {row!r}")

    def _api_url(self, start_output: str) -> str:
        for line in start_output.splitlines():
            if "OpenAI-compatible API" in line:
                return line.split()[-1].rstrip("/")
        raise DemoStepFailed("'soong start' did not print the OpenAI-compatible API address")

    def _only_instance_id(self) -> str:
        rows = self._json(*SANDBOX, "status")
        if not isinstance(rows, list) or len(rows) != 1:
            raise DemoStepFailed(f"expected one running sandbox instance, status shows {rows!r}")
        return rows[0]["Instance ID"]

    def chat(self, api: str, message: str, api_key: str) -> None:
        """POST a chat completion with ``api_key``, printed as the equivalent curl command (key not shown), and show the reply."""
        import requests

        body = {"model": "default", "messages": [{"role": "user", "content": message}]}
        self.out.write(f"$ curl -s {api}/chat/completions -H \"Authorization: Bearer $OPENAI_API_KEY\" "
                       f"-H 'Content-Type: application/json' -d '{json.dumps(body)}'\n")
        try:
            resp = requests.post(f"{api}/chat/completions", json=body, timeout=10,
                                 headers={"Authorization": f"Bearer {api_key}"})
            resp.raise_for_status()
            reply = resp.json()["choices"][0]["message"]["content"]
        except (requests.RequestException, ValueError, KeyError, IndexError) as exc:
            raise DemoStepFailed(f"the chat request to {api} failed: {exc}") from None
        self.out.write(json.dumps({"reply": reply, "usage": resp.json().get("usage")}, indent=2) + "\n")

    def wait_until_gone(self, instance_id: str) -> None:
        """Poll ``status`` until the instance is no longer running, printing progress."""
        deadline = self.monotonic() + self.timeout
        shown = -1
        while self.monotonic() < deadline:
            rows = self._json(*SANDBOX, "status")
            row = next((r for r in rows if r.get("Instance ID") == instance_id), None) if isinstance(rows, list) else None
            if row is None:
                self.out.write(f"  instance {instance_id} was terminated by its own daemon and is gone\n")
                return
            idle = _minutes(row.get("Idle"))
            if idle != shown:
                self.out.write(f"  waiting... status {row.get('Status')}, idle {idle} min (sandbox time)\n")
                self.out.flush()
                shown = idle
            self.sleep(1.0)
        raise DemoStepFailed(f"instance {instance_id} was still running after {self.timeout:g} s")

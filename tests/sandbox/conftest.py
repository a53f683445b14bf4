"""Sandbox tests start real processes; every test must leave none behind."""

from __future__ import annotations

import pytest

from soong.testing.sandbox import kill_sandbox_processes


@pytest.fixture(autouse=True)
def no_sandbox_process_left(isolated_env):
    """After each test: no process of the test's sandbox runs (any found are killed, and the test fails)."""
    yield
    leftovers = kill_sandbox_processes()
    assert not leftovers, f"sandbox processes were left running (now killed): {leftovers}"


@pytest.fixture
def sandbox_factory():
    """``start(time_scale=..., boot_delay=...)`` -> a running sandbox handle, brought down after the test."""
    import contextlib

    from soong.testing.sandbox import running_sandbox

    with contextlib.ExitStack() as stack:
        def start(**options):
            options.setdefault("boot_delay", 0.0)
            return stack.enter_context(running_sandbox(**options))

        yield start

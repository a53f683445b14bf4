"""Which instance a command acts on: explicit id, the only running one, ask on a terminal, else refuse."""

from __future__ import annotations

import io
import os
import pty
import subprocess

import pytest

from soong.core.errors import AbortedError, NotFoundError
from soong.core.selection import choose_instance
from tests.conftest import VENV_BIN
from tests.ssh.conftest import instance
from tests.ssh.test_ssh_cli import _read_until


@pytest.fixture
def three(lab):
    lab.set_instances(instance("inst-b", "beta"), instance("inst-a", "alpha"),
                      instance("inst-gone", "gone", status="terminated"))
    return lab


@pytest.fixture
def terminal():
    """A real pseudo-terminal: (file to read answers from, fd to type into)."""
    master, slave = pty.openpty()
    reader = os.fdopen(slave, "r")
    yield reader, master
    reader.close()
    os.close(master)


def test_an_explicit_id_wins(three):
    assert choose_instance(three.context(), "inst-b", stdin=io.StringIO()).id == "inst-b"


def test_an_unknown_or_ended_explicit_id_is_refused(three):
    with pytest.raises(NotFoundError, match="no instance with id 'nope'"):
        choose_instance(three.context(), "nope")
    with pytest.raises(NotFoundError, match="inst-gone is terminated"):
        choose_instance(three.context(), "inst-gone")


def test_the_only_running_instance_is_chosen(lab):
    lab.set_instances(instance("inst-gone", "gone", status="terminated"), instance("inst-one", "box-one"))
    assert choose_instance(lab.context(), stdin=io.StringIO()).id == "inst-one"


def test_nothing_running(lab):
    lab.set_instances(instance("inst-gone", "gone", status="terminated"))
    with pytest.raises(NotFoundError, match="no running instances"):
        choose_instance(lab.context())


def test_several_without_a_terminal_are_refused_and_listed(three):
    asked = io.StringIO()
    with pytest.raises(AbortedError) as caught:
        choose_instance(three.context(), stdin=io.StringIO("1\n"), stderr=asked)
    message = str(caught.value)
    assert "2 running instances: choose one with --instance-id" in message
    assert "inst-a (alpha" in message and "inst-b (beta" in message and "inst-gone" not in message
    assert asked.getvalue() == ""


@pytest.mark.parametrize("answer, chosen", [("2", "inst-b"), ("1", "inst-a"), ("inst-b", "inst-b")])
def test_several_on_a_terminal_ask(three, terminal, answer, chosen):
    reader, typing = terminal
    os.write(typing, f"{answer}\n".encode())
    asked = io.StringIO()
    assert choose_instance(three.context(), stdin=reader, stderr=asked).id == chosen
    assert "1) inst-a (alpha" in asked.getvalue() and "2) inst-b (beta" in asked.getvalue()
    assert "Which one? [1-2]" in asked.getvalue()


def test_a_wrong_answer_chooses_nothing(three, terminal):
    reader, typing = terminal
    os.write(typing, b"3\n")
    with pytest.raises(AbortedError, match="no choice made"):
        choose_instance(three.context(), stdin=reader, stderr=io.StringIO())


def test_commands_refuse_to_guess_without_a_terminal(three, run_soong):
    for argv in (["ssh", "--", "echo", "ran"], ["tunnel", "start"]):
        result = run_soong(*argv)
        assert result.returncode == 9, result.stderr
        assert "inst-a" in result.stderr and "inst-b" in result.stderr and "ran" not in result.stdout
    assert not (three.tunnels_dir / "inst-a.json").exists()
    explicit = run_soong("ssh", "--instance-id", "inst-b", "--", "echo", "ran")
    assert explicit.returncode == 0 and explicit.stdout == "ran\n"


def test_a_command_asks_on_a_terminal(three):
    master, slave = pty.openpty()
    proc = subprocess.Popen([str(VENV_BIN / "soong"), "ssh", "--", "echo", "ran-on-$((40+2))"], stdin=slave,
                            stdout=slave, stderr=slave, start_new_session=True, env=dict(os.environ))
    os.close(slave)
    try:
        _read_until(master, b"Which one? [1-2]")
        os.write(master, b"2\n")
        _read_until(master, b"ran-on-42")
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)

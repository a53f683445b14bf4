"""A third-party ``soong.cli`` entry point never silently replaces a built-in command.

Real dist-info folders on PYTHONPATH and the real ``soong`` executable: ``importlib.metadata``
finds the packages exactly as it finds installed ones.
"""

from __future__ import annotations

import json
import textwrap

import pytest

from soong.core.command_loader import SoongCommandManager
from tests.plugin_site import add_distribution

FAKE_STOP = textwrap.dedent('''
    from soong.core.command import Command


    class Stop(Command):
        """Pretend to stop (a package that shadows the built-in)."""

        def get_parser(self, prog_name):
            parser = super().get_parser(prog_name)
            parser.add_argument("rest", nargs="*")
            return parser

        def take_action(self, parsed_args):
            self.app.stdout.write("acme stop ran\\n")
            return 0


    class Hello(Command):
        """Say hello (a package's own command)."""

        def take_action(self, parsed_args):
            self.app.stdout.write("hello from acme\\n")
            return 0
''')


def _dist(site, dist_name, version, module, source, commands):
    add_distribution(site, dist_name, version, {"soong.cli": [f"{name} = {target}" for name, target in commands]},
                     {module: source})


@pytest.fixture
def site(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    _dist(site, "soong-acme", "2.0", "acme_commands", FAKE_STOP,
          [("stop", "acme_commands:Stop"), ("hello", "acme_commands:Hello")])
    _dist(site, "soong-broken-cmd", "0.1", "broken_commands", "import not_a_real_module  # noqa\n",
          [("frobnicate", "broken_commands:Frob")])
    return {"PYTHONPATH": str(site)}


def test_clashing_stop_leaves_the_builtin_with_a_warning(run_soong, site):
    result = run_soong("stop", "--help", env=site)
    assert result.returncode == 0, result.stderr
    assert "acme stop ran" not in result.stdout
    assert "--all" in result.stdout  # the built-in's parser
    warnings = [line for line in result.stderr.splitlines() if "soong-acme" in line]
    assert len(warnings) == 1 and "built-in one runs" in warnings[0] and "soong-acme:stop" in warnings[0]


def test_a_partial_name_is_protected_too(run_soong, site):
    result = run_soong("sto", "--help", env=site)
    assert "acme stop ran" not in result.stdout and "soong-acme" in result.stderr


def test_the_user_can_allow_exactly_that_package(run_soong, site):
    allowed = run_soong("config", "set", "plugins.allowed_command_overrides", "soong-acme:stop", env=site)
    assert allowed.returncode == 0, allowed.stderr
    result = run_soong("stop", env=site)
    assert result.returncode == 0 and "acme stop ran" in result.stdout
    assert "in place of the built-in" in result.stderr


def test_allowing_another_package_does_not_allow_this_one(run_soong, site):
    run_soong("config", "set", "plugins.allowed_command_overrides", "soong-other:stop", env=site)
    result = run_soong("stop", "--help", env=site)
    assert "acme stop ran" not in result.stdout and "built-in one runs" in result.stderr


def test_a_malformed_allow_entry_is_refused(run_soong, site):
    result = run_soong("config", "set", "plugins.allowed_command_overrides", "stop", env=site)
    assert result.returncode != 0 and "PACKAGE:COMMAND" in result.stderr


def test_plugins_lists_command_plugins_refusals_and_broken_ones(run_soong, site):
    result = run_soong("plugins", "-f", "json", env=site)
    assert result.returncode == 0, result.stderr
    rows = {row["Name"]: row for row in json.loads(result.stdout)}
    assert rows["command:hello"]["Status"] == "loaded" and rows["command:hello"]["Distribution"] == "soong-acme"
    assert rows["command:stop"]["Status"] == "refused" and "soong-acme:stop" in rows["command:stop"]["Detail"]
    assert rows["command:frobnicate"]["Status"] == "failed"
    assert "not_a_real_module" in rows["command:frobnicate"]["Detail"]


def test_a_package_command_runs_and_a_broken_one_fails_in_one_line(run_soong, site):
    hello = run_soong("hello", env=site)
    assert hello.returncode == 0 and "hello from acme" in hello.stdout
    broken = run_soong("frobnicate", env=site)
    assert broken.returncode != 0 and "Traceback" not in broken.stderr
    assert "soong-broken-cmd" in broken.stderr and len(broken.stderr.strip().splitlines()) == 1


class _EP:
    """An entry point as importlib.metadata describes one (name, value, dist), for the manager alone."""

    class _Dist:
        def __init__(self, name):
            self.name, self.version = name, "1"

    def __init__(self, name, dist, target):
        self.name, self.value, self.dist, self._target = name, f"{dist}:{name}", self._Dist(dist), target

    def load(self):
        return self._target


def test_builtins_win_whatever_order_the_distributions_come_in():
    builtin, third = object(), object()
    for order in ([_EP("stop", "aaa", third), _EP("stop", "soong", builtin)],
                  [_EP("stop", "soong", builtin), _EP("stop", "aaa", third)]):
        manager = SoongCommandManager("soong.cli", entry_points=order)
        assert manager.find_command(["stop"])[0] is builtin
        assert [c.distribution for c in manager.clashes["stop"]] == ["aaa"]


def test_two_third_party_packages_resolve_by_package_name():
    first, second = object(), object()
    manager = SoongCommandManager("soong.cli", entry_points=[_EP("hi", "zzz", second), _EP("hi", "aaa", first)])
    assert manager.find_command(["hi"])[0] is first

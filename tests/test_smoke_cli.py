"""The CLI starts, lists its commands and serves the catalog as a subprocess."""


def test_help_lists_commands(run_soong):
    result = run_soong("--help")
    assert result.returncode == 0
    assert "plugins" in result.stdout and "models list" in result.stdout


def test_unknown_command_is_one_line_usage_error(run_soong):
    result = run_soong("no-such-command")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr

"""Entry-point discovery end to end: real dist-info on sys.path, the real ``soong`` executable."""

from __future__ import annotations

import json
import textwrap

import pytest

GOOD = '''
from soong import hookimpl
from soong.core.types import ModelSpec


@hookimpl
def soong_register_models(register):
    register(ModelSpec(id="tiny-1b", hf_path="acme/tiny-1b", params_billion=1.1, precision="bf16", layers=16,
                       attention_heads=16, kv_heads=4, head_dim=64, max_context=4096, default_context=4096))
    register(ModelSpec(id="llama-3.1-8b", hf_path="acme/llama-3.1-8b-tuned", params_billion=8.03, precision="bf16",
                       layers=32, attention_heads=32, kv_heads=8, head_dim=128, max_context=8192,
                       default_context=8192), override=True)
'''

BROKEN = "import a_module_that_does_not_exist  # noqa\n"


def _dist(site, dist_name, version, entry_name, module, source):
    (site / f"{module}.py").write_text(source)
    info = site / f"{dist_name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[soong]\n{entry_name} = {module}\n")


@pytest.fixture
def site(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    _dist(site, "soong-acme", "1.2.3", "acme", "acme_plugin", textwrap.dedent(GOOD))
    _dist(site, "soong-broken", "0.1", "broken", "broken_plugin", BROKEN)
    return {"PYTHONPATH": str(site)}


def _by_name(stdout):
    return {row["Name"]: row for row in json.loads(stdout)}


def test_installed_plugin_is_discovered_and_overrides_on_purpose(run_soong, site):
    result = run_soong("plugins", "-f", "json", env=site)
    assert result.returncode == 0, result.stderr
    rows = _by_name(result.stdout)
    assert rows["acme"]["Version"] == "1.2.3" and rows["acme"]["Distribution"] == "soong-acme"
    assert rows["acme"]["Status"] == "overriding" and "llama-3.1-8b" in rows["acme"]["Detail"]
    assert rows["acme"]["Hooks"] == "soong_register_models"
    assert rows["sglang"]["Status"] == "loaded" and rows["sglang"]["Distribution"] == "soong"


def test_broken_plugin_is_listed_as_failed_and_others_work(run_soong, site):
    result = run_soong("plugins", "-f", "json", env=site)
    rows = _by_name(result.stdout)
    assert rows["broken"]["Status"] == "failed"
    assert "a_module_that_does_not_exist" in rows["broken"]["Detail"]
    warning_lines = [line for line in result.stderr.splitlines() if "broken" in line]
    assert len(warning_lines) == 1 and "Traceback" not in result.stderr

    models = run_soong("models", "list", "-f", "json", env=site)
    assert models.returncode == 0
    ids = {row["ID"] for row in json.loads(models.stdout)}
    assert {"tiny-1b", "llama-3.1-8b", "mistral-7b"} <= ids


def test_disable_and_load_only(run_soong, site):
    disabled = _by_name(run_soong("plugins", "-f", "json", env={**site, "SOONG_DISABLE_PLUGINS": "acme"}).stdout)
    assert disabled["acme"]["Status"] == "disabled"
    only = _by_name(run_soong("plugins", "-f", "json", env={**site, "SOONG_LOAD_PLUGINS": "acme"}).stdout)
    assert only["acme"]["Status"] in ("loaded", "overriding")
    assert only["sglang"]["Status"] == "disabled" and only["broken"]["Status"] == "disabled"

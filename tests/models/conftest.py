"""Fixtures for the model catalog, recommendation and bootstrap tests."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

import soong.plugins.sglang as sglang_plugin
from soong.core.bootstrap import LaunchPlan, LaunchSecrets
from soong.core.plugins import PluginHost, PluginInfo
from tests.conftest import SHARED, TEST_SECRETS
from tests.models.sample_provider_plugin import load_instance_types

SAMPLE_TYPES = SHARED / "lambda-cloud-api" / "instance_types.sample.json"
HF_TOKEN = "hf_test-token-5d2c77a1"


@pytest.fixture(scope="session")
def sample_types():
    """Lambda's sample instance types as InstanceType objects."""
    return load_instance_types(str(SAMPLE_TYPES))


@pytest.fixture(scope="session")
def host():
    """A plugin host with only the built-in SGLang plugin."""
    plugin_host = PluginHost(discover=False, env={})
    plugin_host.add_plugin(sglang_plugin, PluginInfo("sglang", builtin=True))
    return plugin_host


@pytest.fixture(scope="session")
def catalog(host):
    """The built-in catalog by id."""
    return dict(host.models())


@pytest.fixture
def make_plan(catalog):
    """Build a LaunchPlan for a catalog model with the test secrets."""

    def make(model_id="llama-3.1-8b", gpu_count=1, **overrides):
        values = dict(
            model=catalog[model_id], instance_name=f"soong-{model_id}-t1", gpu_count=gpu_count,
            secrets=LaunchSecrets(TEST_SECRETS["lambda_api_key"], TEST_SECRETS["daemon_token"], HF_TOKEN),
            launched_at=dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.timezone.utc), filesystem_name="team-fs",
            instance_type=f"gpu_{gpu_count}x_h100_sxm5", provider_api_url="https://cloud.lambda.ai/api/v1",
        )
        values.update(overrides)
        return LaunchPlan(**values)

    return make


@pytest.fixture
def plugin_site(tmp_path):
    """A folder for PYTHONPATH holding the sample provider as an installed plugin."""
    site = tmp_path / "site"
    dist = site / "soong_sample_provider-1.0.dist-info"
    dist.mkdir(parents=True)
    shutil.copy(Path(__file__).with_name("sample_provider_plugin.py"), site / "soong_sample_provider.py")
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: soong-sample-provider\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[soong]\nsample-lambda = soong_sample_provider\n")
    return {"PYTHONPATH": str(site), "SOONG_TEST_INSTANCE_TYPES": str(SAMPLE_TYPES)}

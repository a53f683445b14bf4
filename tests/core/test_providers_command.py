"""``soong providers``: every registered provider, its package, and whether it is configured."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.core import acme_provider
from tests.plugin_site import add_distribution

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def acme_site(tmp_path):
    site = add_distribution(tmp_path / "site", "soong-acme", "1.0.0", {"soong": [f"acme = {acme_provider.__name__}"]})
    return {"PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}


def _rows(result):
    assert result.returncode == 0, result.stderr
    return {row["Name"]: row for row in json.loads(result.stdout)}


def test_each_provider_is_listed_with_its_package_and_readiness(run_soong, acme_site):
    rows = _rows(run_soong("providers", "-f", "json", env={**acme_site, "LAMBDA_API_KEY": "", "ACME_API_KEY": ""}))
    assert rows["lambda"]["Package"].startswith("soong ") and rows["lambda"]["Plugin"] == "lambda"
    assert rows["acme"]["Package"] == "soong-acme 1.0.0" and rows["acme"]["Plugin"] == "acme"
    assert rows["acme"]["Configured"] == "no" and "soong secrets set acme_api_key" in rows["acme"]["Detail"]
    assert rows["lambda"]["Configured"] == "no" and "lambda_api_key" in rows["lambda"]["Detail"]


def test_a_provider_with_its_key_set_is_configured_and_the_others_are_not(run_soong, acme_site):
    rows = _rows(run_soong("providers", "-f", "json", env={**acme_site, "ACME_API_KEY": "acme-secret-0000",
                                                              "LAMBDA_API_KEY": ""}))
    assert rows["acme"]["Configured"] == "yes" and rows["lambda"]["Configured"] == "no"
    assert "acme-secret-0000" not in json.dumps(rows)

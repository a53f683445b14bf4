"""Give each test a private HOME and XDG folders when run on its own (soong's own suite does the same)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _private_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var, sub in (("XDG_CONFIG_HOME", ".config"), ("XDG_STATE_HOME", ".local/state"), ("XDG_DATA_HOME", ".local/share"),
                     ("XDG_CACHE_HOME", ".cache")):
        monkeypatch.setenv(var, str(home / sub))
    for var in ("SOONG_PROFILE", "SOONG_CONFIG_DIR", "SOONG_WEBHOOK_FORMAT", "SOONG_WEBHOOK_KINDS"):
        monkeypatch.delenv(var, raising=False)

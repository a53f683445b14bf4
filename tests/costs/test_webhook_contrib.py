"""Run the contrib webhook sink's tests (contract included) as part of soong's own suite."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_PATH = Path(__file__).resolve().parents[2] / "contrib" / "soong-webhook-sink" / "tests" / "test_webhook_sink.py"
_spec = importlib.util.spec_from_file_location("soong_webhook_sink_tests", _PATH)
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)

globals().update({name: value for name, value in vars(_module).items()
                  if name.startswith(("test_", "Test")) or name in ("receiver",)})

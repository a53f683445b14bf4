"""docs/models.md's fit tables are generated from the code and current."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def generate():
    spec = importlib.util.spec_from_file_location("docs_generate", ROOT / "docs" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_fit_tables_in_models_md_are_the_generated_ones(generate):
    page = (ROOT / "docs" / "models.md").read_text()
    assert generate.fill_part(page, "fit tables", generate.models_fit_tables()) == page


def test_the_tables_state_the_facts(generate):
    text = generate.models_fit_tables()
    rows = {line.split(" | ")[0].strip("| "): line for line in text.splitlines() if line.startswith("| ")}
    assert "23028 MiB" in rows["A10"] and "22.49" in rows["A10"]
    assert "gpu_1x_a10 " not in rows["qwen3-8b"] and "gpu_1x_a100_sxm4" in rows["qwen3-8b"]
    assert "gpu_1x_a10 " in rows["mistral-7b"]
    assert "gpu_1x_a6000" in rows["qwen3-32b-fp8"]  # FP8 on Ampere


def test_a_page_without_the_markers_is_an_error(generate):
    with pytest.raises(ValueError):
        generate.fill_part("# no markers\n", "fit tables", "x")

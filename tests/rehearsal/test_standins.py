"""The rehearsal's stand-ins and helpers that need no machine: nvidia-smi's answers, the image key."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from soong.testing.rehearsal_image import PACKAGES, cache_root, image_key
from soong.testing.rehearsal_standins import A10, Gpu, nvidia_smi_script

pytestmark = pytest.mark.rehearsal

#: The preflight's query (contracts: exactly this command line).
PREFLIGHT_QUERY = ["--query-gpu=name,memory.total,driver_version", "--format=csv,noheader,nounits"]


def _smi(tmp_path, gpus, driver, *args):
    script = tmp_path / "nvidia-smi"
    script.write_text(nvidia_smi_script(gpus, driver))
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, check=False)


def test_answers_the_preflight_query_one_line_per_gpu(tmp_path):
    done = _smi(tmp_path, (A10, A10), "535.129.03", *PREFLIGHT_QUERY)
    assert done.returncode == 0
    assert done.stdout.splitlines() == ["NVIDIA A10, 23028, 535.129.03"] * 2


def test_answers_the_daemons_query_with_units_and_header(tmp_path):
    done = _smi(tmp_path, (A10,), "580.95.05", "--query-gpu=name,utilization.gpu,memory.used,memory.total",
                "--format=csv")
    assert done.stdout.splitlines() == ["name, utilization.gpu, memory.used, memory.total",
                                        "NVIDIA A10, 0 %, 0 MiB, 23028 MiB"]


def test_an_unknown_field_fails_like_nvidia_smi(tmp_path):
    done = _smi(tmp_path, (A10,), "580.95.05", "--query-gpu=name,bogus", "--format=csv")
    assert done.returncode == 2 and 'Field "bogus" is not a valid field to query.' in done.stderr


@settings(deadline=None, max_examples=25)
@given(st.lists(st.tuples(st.text("ABCDEFGH0123456789 ", min_size=1, max_size=20).map(str.strip).filter(bool),
                          st.integers(1, 200_000)), min_size=1, max_size=8),
       st.from_regex(r"\A[0-9]{3}\.[0-9]{2,3}(\.[0-9]{2})?\Z"))
def test_reports_whatever_gpus_and_driver_it_is_given(tmp_path_factory, gpus, driver):
    done = _smi(tmp_path_factory.mktemp("smi"), [Gpu(n, m) for n, m in gpus], driver, *PREFLIGHT_QUERY)
    rows = [line.split(", ") for line in done.stdout.splitlines()]
    assert rows == [[n, str(m), driver] for n, m in gpus]


def test_image_key_follows_the_package_list(monkeypatch):
    key = image_key()
    assert key == image_key()
    monkeypatch.setattr("soong.testing.rehearsal_image.PACKAGES", PACKAGES + ("vim",))
    assert image_key() != key


def test_cache_root_honours_the_environment(tmp_path):
    assert cache_root({"SOONG_REHEARSAL_CACHE": str(tmp_path)}) == tmp_path
    assert cache_root({}).parts[-3:] == (".cache", "soong", "rehearsal")

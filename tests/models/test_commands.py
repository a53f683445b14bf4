"""``soong models ...`` and ``soong user-data`` run as subprocesses."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import yaml

from soong.core.bootstrap import extract_daemon_bundle, split_user_data
from tests.conftest import TEST_SECRETS

KEY = {"LAMBDA_API_KEY": TEST_SECRETS["lambda_api_key"]}
NO_LAMBDA = {"SOONG_DISABLE_PLUGINS": "lambda"}


def ok_json(result):
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def one_line_error(result, code, *fragments):
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr
    for secret in TEST_SECRETS.values():
        assert secret not in result.stderr + result.stdout


def config_file() -> Path:
    return Path(os.environ["XDG_CONFIG_HOME"]) / "soong" / "config.yaml"


def test_list_offline_json(run_soong):
    rows = ok_json(run_soong("models", "list", "-f", "json", env=NO_LAMBDA))
    by_id = {row["ID"]: row for row in rows}
    assert 10 <= len(rows) <= 15
    assert by_id["mistral-7b"]["Smallest GPU setup"].endswith("(gpu_1x_a10)")
    assert by_id["llama-3.1-70b-awq"]["Quantization"] == "awq"
    assert by_id["llama-3.1-70b"]["Est. VRAM (GiB)"] > by_id["llama-3.1-70b-awq"]["Est. VRAM (GiB)"]
    capped = {row["ID"]: row for row in ok_json(run_soong("models", "list", "--context", "131072", "-f", "json"))}
    assert capped["mistral-7b"]["Context"] == 32768 and capped["llama-3.1-8b"]["Context"] == 131072


def test_info_offline(run_soong):
    info = ok_json(run_soong("models", "info", "llama-3.1-8b", "--offline", "--context", "8192", "-f", "json"))
    assert info["context"] == 8192 and info["recommended"] == "gpu_1x_a10"
    assert info["total_gib"] == pytest.approx(info["weights_gib"] + info["kv_cache_gib"] + info["runtime_gib"], abs=0.2)
    assert "price_per_hour" not in info


def test_info_and_recommend_need_a_provider(run_soong):
    one_line_error(run_soong("models", "info", "llama-3.1-8b", env=NO_LAMBDA), 8, "live prices need a provider")
    one_line_error(run_soong("models", "recommend", "llama-3.1-8b", env=NO_LAMBDA), 8, "live prices need a provider")


def test_info_and_recommend_need_the_api_key(run_soong, plugin_site):
    one_line_error(run_soong("models", "recommend", "llama-3.1-8b", env=plugin_site), 4, "lambda_api_key")


def test_info_with_live_prices(run_soong, plugin_site):
    info = ok_json(run_soong("models", "info", "qwen3-32b-fp8", "-f", "json", env={**plugin_site, **KEY}))
    assert info["recommended"] == "gpu_1x_h100_pcie" and info["price_per_hour"] == 2.49
    assert info["regions_with_capacity"] == "us-west-3"


def test_recommend_ranks_by_price(run_soong, plugin_site):
    env = {**plugin_site, **KEY}
    rows = ok_json(run_soong("models", "recommend", "llama-3.1-70b", "-f", "json", env=env))
    prices = [row["$/h"] for row in rows]
    assert prices == sorted(prices) and rows[0]["Rank"] == 1
    assert all(row["VRAM (GiB)"] >= row["Needed (GiB)"] for row in rows)
    cheap = ok_json(run_soong("models", "recommend", "llama-3.1-70b-awq", "--max-price", "2", "-f", "json", env=env))
    assert cheap and all(row["$/h"] <= 2 for row in cheap)
    available = ok_json(run_soong("models", "recommend", "mistral-7b", "--available", "-f", "json", env=env))
    assert available and all(row["Available"] for row in available)
    one_line_error(run_soong("models", "recommend", "llama-3.1-70b", "--max-price", "1", env=env), 8, "no instance type fits")


def test_bad_input(run_soong):
    one_line_error(run_soong("models", "info", "lama-3.1-8b", "--offline"), 8, "did you mean llama-3.1-8b")
    one_line_error(run_soong("models", "info", "mistral-7b", "--offline", "--context", "65536"), 2, "exceeds")
    result = run_soong("models", "recommend", "mistral-7b", "--context", "-5")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    result = run_soong("models", "recommend", "mistral-7b", "--max-price", "nan")
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_add_list_remove(run_soong, tmp_path):
    hf_config = tmp_path / "config.json"
    hf_config.write_text(json.dumps({"num_hidden_layers": 24, "num_attention_heads": 16, "num_key_value_heads": 4,
                                     "hidden_size": 2048, "max_position_embeddings": 65536, "torch_dtype": "bfloat16"}))
    added = ok_json(run_soong("models", "add", "--id", "my-3b", "--hf-path", "me/My-3B", "--params", "3.1",
                              "--hf-config", str(hf_config), "--good-for", "tests", "-f", "json"))
    assert added["head_dim"] == 128 and added["precision"] == "bf16" and added["default_context"] == 32768
    saved = yaml.safe_load(config_file().read_text())
    assert [m["id"] for m in saved["custom_models"]] == ["my-3b"]
    assert stat.S_IMODE(config_file().stat().st_mode) == 0o600
    rows = {row["ID"]: row for row in ok_json(run_soong("models", "list", "-f", "json"))}
    assert rows["my-3b"]["Source"] == "custom"
    one_line_error(run_soong("models", "add", "--id", "my-3b", "--hf-path", "me/My-3B", "--params", "3.1",
                             "--hf-config", str(hf_config)), 2, "already exists")
    one_line_error(run_soong("models", "remove", "mistral-7b"), 2, "built-in")
    one_line_error(run_soong("models", "remove", "nobody"), 8, "no custom model")
    assert ok_json(run_soong("models", "remove", "my-3b", "-f", "json"))["removed"] == "my-3b"
    assert "my-3b" not in {row["ID"] for row in ok_json(run_soong("models", "list", "-f", "json"))}


def test_add_refuses_bad_entries_and_writes_nothing(run_soong):
    one_line_error(run_soong("models", "add", "--id", "x-7b", "--hf-path", "me/x"), 2, "missing", "--params")
    one_line_error(run_soong("models", "add", "--id", "x-7b", "--hf-path", "me/x", "--params", "7", "--precision", "int4",
                             "--layers", "32", "--heads", "32", "--kv-heads", "8", "--head-dim", "128",
                             "--max-context", "8192"), 3, "quantization")
    one_line_error(run_soong("models", "add", "--id", "mistral-7b", "--hf-path", "me/x", "--params", "7", "--precision",
                             "bf16", "--layers", "32", "--heads", "32", "--kv-heads", "8", "--head-dim", "128",
                             "--max-context", "8192"), 2, "built-in")
    result = run_soong("models", "add", "--id", "x-7b", "--params", "seven")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert not config_file().exists()


def test_user_data_masks_secrets(run_soong):
    env = {**KEY, "SOONG_DAEMON_TOKEN": TEST_SECRETS["daemon_token"]}
    result = run_soong("user-data", "--model", "llama-3.1-70b-awq", "--gpu", "gpu_1x_h100_pcie", env=env)
    assert result.returncode == 0, result.stderr
    for secret in TEST_SECRETS.values():
        assert secret not in result.stdout + result.stderr
    parts = split_user_data(result.stdout)
    assert parts[0].content_type == "text/cloud-config"
    bundle = extract_daemon_bundle(result.stdout)
    assert "********" in bundle.token and bundle.config["model"] == "llama-3.1-70b-awq"


def test_user_data_reveal_and_output_file(run_soong, tmp_path):
    env = {**KEY, "SOONG_DAEMON_TOKEN": TEST_SECRETS["daemon_token"]}
    out = tmp_path / "user-data.txt"
    result = run_soong("user-data", "--model", "mistral-7b", "--reveal", "--output", str(out), "--name", "soong-x1", env=env)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    bundle = extract_daemon_bundle(out.read_text())
    assert bundle.api_key == TEST_SECRETS["lambda_api_key"] and bundle.token == TEST_SECRETS["daemon_token"]
    assert bundle.config["instance_name"] == "soong-x1"
    one_line_error(run_soong("user-data", "--model", "mistral-7b", "--reveal"), 4, "lambda_api_key")


def test_user_data_bad_input(run_soong):
    one_line_error(run_soong("user-data", "--model", "qwen2.5-7b", "--gpu", "gpu_8x_h100_sxm5"), 2, "28 attention heads")
    one_line_error(run_soong("user-data", "--model", "nope"), 8, "unknown model")
    one_line_error(run_soong("user-data", "--model", "mistral-7b", "--gpu", "big-box"), 2, "how many GPUs")


def test_add_asks_on_a_terminal(tmp_path):
    import pty
    import subprocess

    from tests.conftest import VENV_BIN

    master, slave = pty.openpty()
    answers = "bf16\n\n32\n32\n8\n128\n8192\n4096\nchat\n\n\n"
    try:
        os.write(master, answers.encode())
        result = subprocess.run([str(VENV_BIN / "soong"), "models", "add", "--id", "asked-7b", "--hf-path", "me/asked",
                                 "--params", "7", "-f", "json"], stdin=slave, capture_output=True, text=True, timeout=60)
    finally:
        os.close(slave)
        os.close(master)
    assert result.returncode == 0, result.stderr
    added = json.loads(result.stdout)
    assert (added["layers"], added["kv_heads"], added["default_context"], added["good_for"]) == (32, 8, 4096, "chat")
    assert "num_hidden_layers" in result.stderr  # the questions went to the terminal user

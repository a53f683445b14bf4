"""Secrets the user data does not carry reach a sandbox instance through soong's own commands.

The sandbox has no SSH: the ``direct`` backend runs the instance's own receiver through
``tunnel.direct_exec`` (soong.sandbox.instance_exec). What is proven is soong's side:
the daemon says what is missing, ``status`` and ``extend`` deliver it, the model server
waits for the Hugging Face token and then requires its API key, as SGLang does.
"""

from __future__ import annotations

import re
import stat

import requests

from soong.testing.polling import wait_until

TOKEN = "hf_canary-sandbox-58c2e1"


def _secrets(sb, instance_id: str) -> dict:
    return sb.daemon_status(instance_id)["secrets"]


def _store_token(run_soong) -> None:
    """The sandbox profile reads no secret from the environment: store the token in its own secrets."""
    stored = run_soong("--profile", "sandbox", "secrets", "set", "hf_token", "--stdin", input=TOKEN + "\n")
    assert stored.returncode == 0, stored.stderr


def test_status_delivers_the_token_and_the_key_and_the_model_then_starts(sandbox_factory, run_soong):
    sb = sandbox_factory()
    inst = sb.launch(hf_token=TOKEN, api_key_delivery="ssh")
    sb.wait_running(inst.id, standin=False, identified=False)
    files = sb.sandbox.layout.instance(inst.id)
    wait_until(lambda: "sglang-waiting-token" in sb.machine_record(inst.id).get("phases", []),
               what="the model stand-in waiting for the token")
    assert sb.process(inst.id, "standin") is None and not files.api_key.exists()
    assert _secrets(sb, inst.id) == {"lambda_api_key": {"delivery": "ssh", "present": False},
                                     "hf_token": {"expected": True, "delivered": False}, "can_self_terminate": False}

    without = run_soong("--profile", "sandbox", "status")  # no hf_token here yet: nothing to deliver it with
    assert without.returncode == 0, without.stderr
    assert f"instance {inst.id} waits for the Hugging Face token, and none is set here" in without.stderr
    assert f"delivered the Lambda API key to instance {inst.id}" in without.stderr
    assert _secrets(sb, inst.id)["can_self_terminate"] is True

    _store_token(run_soong)
    done = run_soong("--profile", "sandbox", "status")
    assert done.returncode == 0, done.stderr
    assert f"delivered the Hugging Face token to instance {inst.id} over SSH" in done.stderr
    assert "cannot end itself" not in done.stderr
    assert TOKEN not in done.stdout + done.stderr + without.stdout + without.stderr
    for path in (files.hf_token, files.api_key):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert files.hf_token.read_text().strip() == TOKEN
    assert _secrets(sb, inst.id)["hf_token"] == {"expected": True, "delivered": True}

    sb.wait_running(inst.id, identified=False)  # the stand-in starts once the token is there
    url = sb.standin_url(inst.id) + "/v1/chat/completions"
    body = {"model": "any", "messages": [{"role": "user", "content": "hi"}]}
    refused = requests.post(url, json=body, timeout=10)
    assert refused.status_code == 401 and refused.json() == {"error": "Unauthorized"}
    wrong = requests.post(url, json=body, timeout=10, headers={"Authorization": "Bearer not-the-key"})
    assert wrong.status_code == 401
    assert requests.get(sb.standin_url(inst.id) + "/metrics", timeout=10).status_code == 200  # as SGLang: open
    assert "hi" in sb.chat(inst.id, "hi")["choices"][0]["message"]["content"]
    key = run_soong("--profile", "sandbox", "tunnel", "api-key", "--instance-id", inst.id)
    assert key.returncode == 0 and key.stdout.strip() == sb.sglang_api_key(inst.id)
    again = run_soong("--profile", "sandbox", "status")
    assert "delivered" not in again.stderr  # nothing is missing any more


def test_extend_delivers_a_missing_token(sandbox_factory, run_soong):
    sb = sandbox_factory()
    inst = sb.launch(hf_token=TOKEN)
    sb.wait_running(inst.id, standin=False)
    assert _secrets(sb, inst.id)["hf_token"]["delivered"] is False
    _store_token(run_soong)
    result = run_soong("--profile", "sandbox", "extend", "1", "-y", "--instance-id", inst.id)
    assert result.returncode == 0, result.stderr
    assert f"delivered the Hugging Face token to instance {inst.id}" in result.stderr
    assert TOKEN not in result.stdout + result.stderr
    sb.wait_running(inst.id)
    assert _secrets(sb, inst.id)["hf_token"]["delivered"] is True


def test_adopt_delivers_a_missing_token(sandbox_factory, run_soong):
    sb = sandbox_factory()
    inst = sb.launch(hf_token=TOKEN, record_in_ledger=False)  # launched "elsewhere" with this profile's token
    sb.wait_running(inst.id, standin=False)
    _store_token(run_soong)
    result = run_soong("--profile", "sandbox", "adopt", inst.id, "-y")
    assert result.returncode == 0, result.stderr
    assert f"delivered the Hugging Face token to instance {inst.id}" in result.stderr
    assert TOKEN not in result.stdout + result.stderr
    sb.wait_running(inst.id)


def test_start_delivers_both_as_soon_as_the_daemon_answers(sandbox_factory, run_soong):
    sb = sandbox_factory()
    _store_token(run_soong)
    started = run_soong("--profile", "sandbox", "start", "--model", "llama-3.1-8b", "-y", "--no-tunnel",
                        env={"SOONG_SECRETS_API_KEY_DELIVERY": "ssh"}, timeout=180)
    assert started.returncode == 0, started.stderr
    assert "warning: secrets.api_key_delivery is ssh" in started.stderr and "watchdog" in started.stderr
    [instance_id] = re.findall(r"delivered the Lambda API key to instance (\S+) over SSH", started.stderr)
    assert f"delivered the Hugging Face token to instance {instance_id} over SSH" in started.stderr
    assert started.stdout.startswith("ready:"), started.stdout
    assert TOKEN not in started.stdout + started.stderr
    secrets = _secrets(sb, instance_id)
    assert secrets["can_self_terminate"] is True and secrets["hf_token"] == {"expected": True, "delivered": True}

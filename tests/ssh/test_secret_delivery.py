"""Secrets delivered through a real sshd by the plumbum-ssh backend's ``run``: on stdin only, 0600 for their owner."""

from __future__ import annotations

import json
import os
import pwd
import stat
import sys
from pathlib import Path

from soong.core.secret_delivery import SecretCourier
from soong.core.types import Instance, TunnelTarget
from soong.plugins.sglang import receive_secret

TOKEN = "hf_canary-delivered-6e0b2d"
API_KEY = "secret_canary-lambda-0a9d41"
#: The owners the receiver gives the files to (the instance's service users); root can give files away.
OWNER = "nobody" if os.geteuid() == 0 else None


def _receiver(tmp_path: Path) -> tuple[list[str], Path]:
    """The real receiver program with a config whose targets are under ``tmp_path`` (the instance's /etc)."""
    root = tmp_path / "instance"
    config = tmp_path / "secrets.json"
    config.write_text(json.dumps({"boot_log": str(root / "boot.log"), "secrets": {
        "hf-token": {"path": str(root / "soong-sglang" / "hf-token"), "owner": OWNER, "phase": "hf-token-delivered"},
        "lambda-api-key": {"path": str(root / "soong-daemon" / "lambda-api-key"), "owner": OWNER,
                           "phase": "api-key-delivered"}}}))
    return [sys.executable, str(Path(receive_secret.__file__)), "--config", str(config)], root


def _instance(lab) -> Instance:
    return lab.context().provider().get_instance("inst-one")


def test_courier_delivers_what_the_daemon_lacks_through_sshd(lab, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("LAMBDA_API_KEY", API_KEY)
    receiver, root = _receiver(tmp_path)
    said = []
    courier = SecretCourier(lab.context(), receiver=receiver, report=said.append)
    status = {"secrets": {"hf_token": {"expected": True, "delivered": False},
                          "lambda_api_key": {"delivery": "ssh", "present": False}, "can_self_terminate": False}}
    deliveries = courier.deliver(_instance(lab), status)
    assert [(d.name, d.outcome) for d in deliveries] == [("hf-token", "delivered"), ("lambda-api-key", "delivered")], \
        [d.line() for d in deliveries]
    for path, value in ((root / "soong-sglang" / "hf-token", TOKEN), (root / "soong-daemon" / "lambda-api-key", API_KEY)):
        info = path.stat()
        assert path.read_text() == value + "\n" and stat.S_IMODE(info.st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        if OWNER:
            assert info.st_uid == pwd.getpwnam(OWNER).pw_uid
    phases = [line.split()[1] for line in (root / "boot.log").read_text().splitlines()]
    assert phases == ["phase=hf-token-delivered", "phase=api-key-delivered"]
    text = " ".join(d.line() for d in said) + lab.sshd.log.read_text(errors="replace")
    assert TOKEN not in text and API_KEY not in text  # not in soong's lines, not in sshd's (verbose) log
    # delivered once: the same courier does not send it again, and a daemon that has it asks for nothing
    assert courier.deliver(_instance(lab), status) == []
    done = {"secrets": {"hf_token": {"expected": True, "delivered": True},
                        "lambda_api_key": {"delivery": "ssh", "present": True}}}
    assert SecretCourier(lab.context(), receiver=receiver).deliver(_instance(lab), done) == []


def test_a_refusing_receiver_is_a_failed_delivery_with_its_reason(lab, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    receiver, root = _receiver(tmp_path)
    config = Path(receiver[-1])
    config.write_text(json.dumps({"boot_log": str(root / "boot.log"), "secrets": {}}))
    status = {"secrets": {"hf_token": {"expected": True, "delivered": False}}}
    [delivery] = SecretCourier(lab.context(), receiver=receiver).deliver(_instance(lab), status)
    assert delivery.outcome == "failed"
    assert "exited with status 2" in delivery.line() and "takes no secret named 'hf-token'" in delivery.line()
    assert TOKEN not in delivery.line()


def test_nothing_to_deliver_without_a_local_value(lab, tmp_path):
    receiver, root = _receiver(tmp_path)
    status = {"secrets": {"hf_token": {"expected": True, "delivered": False}}}
    [delivery] = SecretCourier(lab.context(), receiver=receiver).deliver(_instance(lab), status)
    assert delivery.outcome == "not_set" and "soong secrets set hf_token" in delivery.line()
    assert not (root / "soong-sglang").exists()


def test_run_passes_stdin_and_exit_status_and_quotes_arguments(lab):
    backend = lab.context().tunnel_backend("plumbum-ssh")
    target = TunnelTarget(instance_id="inst-one", host="127.0.0.1", name="box-one")
    result = backend.run(target, [sys.executable, "-c", "import sys; data = sys.stdin.read(); "
                                  "print(len(data), sys.argv[1]); sys.exit(4)", "two words; $(true)"],
                         stdin=b"abc\n")
    assert result.returncode == 4 and result.stdout.split() == ["4", "two", "words;", "$(true)"]

"""The rendered user data: valid cloud-config, sound shell, under 1 MB, secrets only in 0600 files."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess

import pytest

from soong import hookimpl
from soong.core.bootstrap import (
    BOOT_PHASES,
    DAEMON_API_KEY_PATH,
    DAEMON_CONFIG_PATH,
    SECRET_RECEIVER_CONFIG,
    SECRET_RECEIVER_PATH,
    SGLANG_API_KEY_PATH,
    USER_DATA_LIMIT,
    LaunchSecrets,
    UserDataError,
    UserDataPart,
    build_user_data,
    cloud_config_of,
    collect_parts,
    dump_cloud_config,
    extract_daemon_bundle,
    redact_user_data,
    render_user_data,
    split_user_data,
)
from soong.core.plugins import PluginHost, PluginInfo
from soong.core.redact import MASK
from soong.plugins.sglang import userdata
from soong.plugins.sglang.catalog import BUILTIN_MODELS
from tests.models.helpers import cloud_init_schema, shell_texts, write_files

#: Keys the status daemon reads from its config file.
DAEMON_KEYS = {"instance_id", "instance_name", "model", "provider_api_url", "launched_at", "lease_hours",
               "idle_timeout_minutes", "hard_limit_hours", "warn_minutes", "check_interval_seconds", "bind", "workers",
               "state_dir", "token_file", "api_key_file", "sglang_metrics_url", "n8n_metrics_url", "webhook_url",
               "boot_log", "time_scale", "preflight_grace_minutes", "api_key_delivery", "hf_token_expected"}

SCHEMA_CASES = [
    ("mistral-7b", 1, {}),
    ("qwen2.5-coder-32b-awq", 1, {"filesystem_name": None}),
    ("qwen3-32b-fp8", 2, {"services": {"sglang": True, "n8n": False}}),
    ("deepseek-r1-distill-llama-70b", 4, {}),
    ("qwen2.5-72b-gptq", 1, {"services": {"sglang": False, "n8n": True}}),
]


@pytest.mark.parametrize("model_id,gpus,overrides", SCHEMA_CASES, ids=[c[0] for c in SCHEMA_CASES])
def test_cloud_config_passes_cloud_init_schema(host, make_plan, tmp_path, model_id, gpus, overrides):
    document = build_user_data(host, make_plan(model_id, gpus, **overrides))
    configs = [p for p in split_user_data(document) if p.content_type == "text/cloud-config"]
    assert len(configs) == 1 and configs[0].text.startswith("#cloud-config\n")
    path = tmp_path / "user-data.yaml"
    path.write_text(configs[0].text)
    result = cloud_init_schema(path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Valid cloud-config" in result.stdout


def test_every_plugin_contribution_is_valid_on_its_own(host, make_plan, tmp_path):
    for part in collect_parts(host, make_plan("llama-3.1-70b-awq")):
        if part.kind != "cloud-config":
            continue
        path = tmp_path / f"{part.name}.yaml"
        path.write_text(dump_cloud_config(part.content))
        result = cloud_init_schema(path)
        assert result.returncode == 0, (part.name, result.stdout + result.stderr)


def test_schema_check_catches_a_broken_part(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(dump_cloud_config({"write_files": [{"path": "/x", "content": "y", "permissions": 600}]}))
    assert cloud_init_schema(path).returncode != 0


@pytest.mark.parametrize("with_fs", [True, False])
def test_shell_scripts_pass_bash_n_and_shellcheck(host, make_plan, tmp_path, with_fs):
    document = build_user_data(host, make_plan("llama-3.1-8b", filesystem_name="team-fs" if with_fs else None))
    scripts = shell_texts(document)
    expected = {"bootlog", "make-venv", "wait-http", "with-user-env", "fs-setup", "install-sglang", "install-n8n"}
    assert expected <= {name.rsplit("/", 1)[-1] for name in scripts}
    assert sum(1 for name in scripts if name.endswith(".sh")) == 5  # daemon, preflight, fs, SGLang, n8n
    files = []
    for index, (name, text) in enumerate(sorted(scripts.items())):
        path = tmp_path / f"{index:02d}-{name.rsplit('/', 1)[-1]}"
        path.write_text(text)
        result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
        assert result.returncode == 0, (name, result.stderr)
        files.append(str(path))
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed")
    result = subprocess.run([shellcheck, "--severity=style", *files], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_largest_catalog_entry_stays_under_the_limit(host, make_plan):
    sizes = {}
    for spec in BUILTIN_MODELS:
        gpus = 8 if spec.attention_heads % 8 == 0 else 4
        sizes[spec.id] = len(build_user_data(host, make_plan(spec.id, gpus)).encode())
    largest = max(sizes, key=sizes.get)
    assert sizes[largest] < USER_DATA_LIMIT
    # The same document with a part that pushes it past the limit is refused, not truncated.
    spec = next(s for s in BUILTIN_MODELS if s.id == largest)
    parts = collect_parts(host, make_plan(largest, 8 if spec.attention_heads % 8 == 0 else 4))
    filler = UserDataPart("filler", "cloud-config", {"write_files": [{"path": "/tmp/filler", "content": "x" * USER_DATA_LIMIT}]})
    with pytest.raises(UserDataError, match="over the provider's limit"):
        render_user_data(parts + [filler])


def test_secrets_appear_only_in_0600_files(host, make_plan):
    plan = make_plan("llama-3.1-70b", 4)
    document = build_user_data(host, plan)
    files = write_files(document)
    assert plan.secrets.hf_token and plan.hf_token_expected
    assert plan.secrets.hf_token not in document  # delivered over SSH after boot, never in the user data
    written = [v for v in plan.secret_values() if v != plan.secrets.hf_token]
    assert plan.sglang_api_key in written and len(written) == 3
    for secret in written:
        holders = [path for path, entry in files.items() if secret in (entry.get("content") or "")]
        assert holders, "every secret is written somewhere"
        for path in holders:
            assert files[path]["permissions"] == "0600", path
            assert not path.startswith("/lambda/nfs"), path
            assert not path.endswith((".service", ".sh")), path
        assert document.count(secret) == len(holders)
        for part in split_user_data(document):
            if part.content_type == "text/x-shellscript":
                assert secret not in part.text
    daemon_secret_files = [p for p, e in files.items() if e["permissions"] == "0600" and p.startswith("/etc/soong-daemon/")]
    assert all(files[p]["owner"] == "soong-daemon:soong-daemon" for p in daemon_secret_files)
    assert len(daemon_secret_files) == 3  # config, token, API key
    sglang_key = files[SGLANG_API_KEY_PATH]
    assert sglang_key["owner"] == "soong-sglang:soong-sglang" and sglang_key["permissions"] == "0600"
    assert sglang_key["content"].strip() == plan.sglang_api_key


def test_ssh_delivery_keeps_the_api_key_out_of_the_user_data(host, make_plan):
    plan = make_plan("llama-3.1-8b", api_key_delivery="ssh")
    document = build_user_data(host, plan)
    assert plan.secrets.lambda_api_key not in document and plan.secrets.hf_token not in document
    files = write_files(document)
    assert DAEMON_API_KEY_PATH not in files
    bundle = extract_daemon_bundle(document)
    assert bundle.api_key is None and bundle.token == plan.secrets.daemon_token
    assert bundle.config["api_key_delivery"] == "ssh" and bundle.config["hf_token_expected"] is True
    receiver = json.loads(files[SECRET_RECEIVER_CONFIG]["content"])
    assert receiver["secrets"]["lambda-api-key"] == {
        "path": DAEMON_API_KEY_PATH, "owner": "soong-daemon", "phase": "api-key-delivered", "what": "the Lambda API key"}
    assert receiver["secrets"]["hf-token"]["owner"] == "soong-sglang"
    assert files[SECRET_RECEIVER_PATH]["permissions"] == "0755" and files[SECRET_RECEIVER_PATH]["owner"] == "root:root"
    # the default keeps the key in the user data (the instance can end itself from its first second)
    default = write_files(build_user_data(host, make_plan("llama-3.1-8b")))
    assert DAEMON_API_KEY_PATH in default
    assert "lambda-api-key" not in json.loads(default[SECRET_RECEIVER_CONFIG]["content"])["secrets"]
    with pytest.raises(UserDataError, match="api_key_delivery"):
        make_plan(api_key_delivery="email")


def test_daemon_config_round_trips(host, make_plan):
    plan = make_plan("qwen2.5-coder-32b", 2, webhook_url="https://hooks.example.test/x", lease_hours=2.5)
    bundle = extract_daemon_bundle(build_user_data(host, plan))
    assert set(bundle.config) == DAEMON_KEYS
    assert bundle.config == userdata.daemon_config(plan)
    assert bundle.token == plan.secrets.daemon_token
    assert bundle.api_key == plan.secrets.lambda_api_key
    assert bundle.config["instance_name"] == plan.instance_name and bundle.config["instance_id"] == ""
    assert bundle.config["lease_hours"] == 2.5 and bundle.config["bind"] == "127.0.0.1:8080"
    assert bundle.config["sglang_metrics_url"] == "http://127.0.0.1:8000/metrics"
    assert plan.secrets.daemon_token not in repr(bundle)


def test_extract_refuses_a_document_without_daemon(host, make_plan):
    parts = [p for p in collect_parts(host, make_plan()) if not p.name.startswith("soong-daemon")]
    with pytest.raises(UserDataError, match="no daemon config"):
        extract_daemon_bundle(render_user_data(parts))
    with pytest.raises(UserDataError):
        extract_daemon_bundle("#cloud-config\n{}\n")


def test_daemon_comes_first_and_stands_alone(host, make_plan):
    document = build_user_data(host, make_plan())
    parts = split_user_data(document)
    assert [p.filename for p in parts] == ["soong-cloud-config.yaml", "01-soong-daemon.sh", "02-soong-preflight.sh",
                                           "03-soong-fs.sh", "04-soong-sglang.sh", "05-soong-n8n.sh"]
    unit = write_files(document)["/etc/systemd/system/soong-daemon.service"]["content"]
    assert "Restart=always" in unit and "StartLimitIntervalSec=0" in unit
    assert "sglang" not in unit.lower() and "n8n" not in unit.lower() and "nfs" not in unit.lower()
    assert "--config /etc/soong-daemon/daemon.yaml" in unit
    for later in parts[3:]:
        assert "--no-block" in later.text  # services start without holding up the boot


def test_sglang_unit_matches_the_entry(host, make_plan, catalog):
    awq = write_files(build_user_data(host, make_plan("llama-3.1-70b-awq", 2, context_length=16384)))
    unit = awq["/etc/systemd/system/soong-sglang.service"]["content"]
    command = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    launcher = ("/opt/soong/sglang/venv/bin/python /usr/local/lib/soong/sglang-launch --api-key-file "
                "/etc/soong-sglang/api-key --hf-token-file /etc/soong-sglang/hf-token -- --model-path ")
    assert launcher in command
    for piece in ("--model-path hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4",
                  "--tp 2", "--context-length 16384", "--host 127.0.0.1", "--port 8000",
                  "--enable-metrics"):
        assert piece in command
    assert "--api-key " not in unit and "EnvironmentFile" not in unit and "HF_TOKEN" not in unit
    wait = [line for line in unit.splitlines() if "--await-token" in line]
    assert wait == ["ExecStartPre=+/usr/bin/python3 /usr/local/lib/soong/sglang-launch --await-token "
                    "--hf-token-file /etc/soong-sglang/hf-token --boot-log /var/log/soong-boot.log"]
    assert unit.index("--await-token") < unit.index("sglang-loading")  # waiting comes before loading
    assert "User=soong-sglang" in unit and "TimeoutStartSec=" in unit
    plain = write_files(build_user_data(host, make_plan("mistral-7b", 1, secrets=LaunchSecrets("k" * 12, "t" * 12))))
    unit = plain["/etc/systemd/system/soong-sglang.service"]["content"]
    assert "--quantization" not in unit and "--await-token" not in unit and "--hf-token-file" not in unit
    assert plain["/usr/local/lib/soong/sglang-launch"]["content"].startswith("#!/usr/bin/env python3")
    install = plain["/usr/local/lib/soong/install-sglang"]["content"]
    assert f"sglang=={userdata.SGLANG_VERSION}" in install


def test_services_toggle(host, make_plan):
    document = build_user_data(host, make_plan(services={"sglang": False, "n8n": False}))
    files = write_files(document)
    assert not any("sglang" in path or "n8n" in path for path in files)
    bundle = extract_daemon_bundle(document)
    assert bundle.config["sglang_metrics_url"] == "" and bundle.config["n8n_metrics_url"] == ""


def test_unsafe_extra_argument_is_refused(host, make_plan, catalog):
    spec = dataclasses.replace(catalog["mistral-7b"], extra_args=("--chat-template", "$(reboot)"))
    with pytest.raises(UserDataError, match="will not put in a unit file"):
        build_user_data(host, make_plan(model=spec))


def test_redaction_masks_every_secret(host, make_plan):
    plan = make_plan()
    document = build_user_data(host, plan)
    redacted = redact_user_data(document, plan)
    assert plan.sglang_api_key in document and plan.sglang_api_key in plan.secret_values()
    assert all(secret not in redacted for secret in plan.secret_values())
    assert MASK in redacted
    assert "lambda_api_key" not in repr(plan) and plan.secrets.lambda_api_key not in repr(plan)


def test_plugins_can_add_parts_and_clashes_are_errors(make_plan):
    class Extra:
        @hookimpl
        def soong_user_data_parts(self, launch):
            return [UserDataPart("extra", "cloud-config", {"write_files": [{"path": "/etc/extra", "content": launch.model.id}]}, 60),
                    UserDataPart("extra.sh", "shellscript", "#!/bin/bash\necho extra\n", 60)]

    class Clash:
        @hookimpl
        def soong_user_data_parts(self, launch):
            return [UserDataPart("clash", "cloud-config", {"write_files": [{"path": DAEMON_CONFIG_PATH, "content": "x"}]})]

    import soong.plugins.sglang as sglang_plugin

    plugin_host = PluginHost(discover=False, env={})
    plugin_host.add_plugin(sglang_plugin, PluginInfo("sglang", builtin=True))
    plugin_host.add_plugin(Extra(), PluginInfo("extra"))
    document = build_user_data(plugin_host, make_plan())
    assert [p.filename for p in split_user_data(document)][-1] == "06-extra.sh"
    assert write_files(document)["/etc/extra"]["content"] == "llama-3.1-8b"
    plugin_host.add_plugin(Clash(), PluginInfo("clash"))
    with pytest.raises(UserDataError, match="both write"):
        build_user_data(plugin_host, make_plan())


def test_part_validation():
    with pytest.raises(UserDataError):
        UserDataPart("x", "shellscript", "echo no shebang")
    with pytest.raises(UserDataError):
        UserDataPart("x", "cloud-config", "not a mapping")
    with pytest.raises(UserDataError):
        UserDataPart("x", "html", {})


def test_daemon_source_is_embedded_and_reproducible(host, make_plan):
    import io
    import tarfile

    userdata.daemon_source_archive.cache_clear()
    first = userdata.daemon_source_archive()
    userdata.daemon_source_archive.cache_clear()
    assert userdata.daemon_source_archive() == first
    with tarfile.open(fileobj=io.BytesIO(__import__("gzip").decompress(first))) as tar:
        assert "soong_daemon/__init__.py" in tar.getnames()
    launcher = write_files(build_user_data(host, make_plan()))["/opt/soong/daemon/bin/soong-daemon"]["content"]
    compile(launcher, "soong-daemon", "exec")
    assert launcher.startswith("#!/opt/soong/daemon/venv/bin/python\n")


def test_daemon_pins_cover_the_daemon_extra():
    from importlib.metadata import requires

    wanted = {r.split(";")[0].split("<")[0].split(">")[0].split("=")[0].strip().lower()
              for r in requires("soong") or [] if "extra == \"daemon\"" in r or "extra == 'daemon'" in r}
    pinned = {p.split("==")[0].lower() for p in userdata.DAEMON_PINS}
    assert wanted and wanted <= pinned
    assert all("==" in p for p in userdata.DAEMON_PINS)


def test_phase_names_are_the_documented_ones(host, make_plan):
    document = build_user_data(host, make_plan())
    bootcmd = [" ".join(entry) for entry in cloud_config_of(document)["bootcmd"]]
    scripts = "\n".join([*shell_texts(document).values(), *bootcmd])
    units = "\n".join(e["content"] for p, e in write_files(document).items()
                      if p.endswith((".service", "sglang-launch")))
    for phase in BOOT_PHASES:
        assert phase in scripts + units, phase


def _verify_units(directory):
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze is not installed")
    units = sorted(str(p) for p in directory.glob("*.service"))
    result = subprocess.run([exe, "verify", "--man=no", *units], capture_output=True, text=True, timeout=120)
    # The scripts the units run are installed by the boot itself, so they do not exist here.
    return [line for line in (result.stdout + result.stderr).splitlines()
            if line.strip() and "is not executable" not in line and "Failed to read $container" not in line]


def test_unit_files_pass_systemd_analyze(host, make_plan, tmp_path):
    for path, entry in write_files(build_user_data(host, make_plan("llama-3.1-70b-awq"))).items():
        if path.startswith("/etc/systemd/system/"):
            (tmp_path / path.rsplit("/", 1)[-1]).write_text(entry["content"])
    assert len(list(tmp_path.glob("*.service"))) == 7
    assert _verify_units(tmp_path) == []
    unit = tmp_path / "soong-daemon.service"
    unit.write_text(unit.read_text().replace("Restart=always", "Restrat=always"))
    assert any("Restrat" in line for line in _verify_units(tmp_path))  # the check does catch mistakes

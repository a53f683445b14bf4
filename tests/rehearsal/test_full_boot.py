"""The full rehearsal boot: what a real instance shows once soong's user data has run.

One machine (the module-scoped ``full_boot``) serves every test here; the tests that
change it (a workflow run, n8n's metrics switched off) run last, in file order.
"""

from __future__ import annotations

import hashlib
import json
import time

import pytest

from soong.core.bootstrap import cloud_config_of, split_user_data

pytestmark = pytest.mark.rehearsal

SOONG_UNITS = ("soong-enforcer", "soong-daemon", "soong-fs", "soong-sglang-install", "soong-sglang",
               "soong-n8n-install", "soong-n8n")
RUNNING = ("soong-enforcer", "soong-daemon", "soong-sglang", "soong-n8n")


def _wait_activity(rh, name: str, before: int, timeout: float = 90.0) -> dict:
    """Poll the daemon until it has counted activity from source ``name`` more than ``before`` times.

    (A source reads ``active`` for one check only, so its counter is what a test can wait for.)
    """
    deadline = time.monotonic() + timeout
    while True:
        status = rh.daemon_status()
        if status["activity_counts"].get(name, 0) > before:
            return status
        if time.monotonic() > deadline:
            pytest.fail(f"the daemon counted no {name} activity in {timeout:g}s: {status['sources'].get(name)}")
        time.sleep(1)


def _wait_source(rh, name: str, status: str, timeout: float = 90.0) -> dict:
    """Poll the daemon (through the tunnel) until its ``name`` activity source reads ``status``."""
    deadline = time.monotonic() + timeout
    while True:
        sources = rh.daemon_status()["sources"]
        if sources.get(name, {}).get("status") == status:
            return sources
        if time.monotonic() > deadline:
            pytest.fail(f"the daemon's {name} source is {sources.get(name)}, not {status}, after {timeout:g}s")
        time.sleep(2)


def test_cloud_init_processed_every_part(full_boot):
    rh = full_boot
    status = rh.machine.run(["cloud-init", "status", "--long"], timeout=60)
    assert status.returncode == 0 and "status: done" in status.stdout, status.stdout + status.stderr
    assert "DataSourceNoCloud" in status.stdout
    scripts = {p.filename for p in split_user_data(rh.user_data) if p.content_type == "text/x-shellscript"}
    assert scripts and scripts <= set(p.name for p in rh.machine.path("/var/lib/cloud/instance/scripts").iterdir())
    assert rh.machine.read("/var/lib/cloud/instance/user-data.txt") == rh.user_data
    for entry in cloud_config_of(rh.user_data)["write_files"]:
        assert rh.machine.path(entry["path"]).exists(), f"cloud-init did not write {entry['path']}"
    output = rh.machine.read("/var/log/cloud-init-output.log")
    assert "Failed to run module scripts-user" not in output, output[-3000:]


def test_every_soong_unit_is_up(full_boot):
    rh = full_boot
    for unit in SOONG_UNITS:
        state = rh.machine.run(["systemctl", "is-active", f"{unit}.service"], timeout=30).stdout.strip()
        assert state == "active", f"{unit} is {state}\n{rh.diagnostics()}"
    for unit in RUNNING:
        sub = rh.machine.run(["systemctl", "show", "-p", "SubState", "--value", f"{unit}.service"], timeout=30)
        assert sub.stdout.strip() == "running", unit
    failed = rh.machine.run(["systemctl", "--failed", "--no-legend", "--plain"], timeout=30).stdout
    assert "soong-" not in failed, failed


def _processes(rh) -> list[tuple[int, int, str, str]]:
    """(pid, parent pid, user, command line) of every process in the machine."""
    out = []
    for line in rh.machine.run(["ps", "-eo", "pid=,ppid=,user:32=,args="], timeout=30).stdout.splitlines():
        pid, ppid, user, args = (line.split(None, 3) + [""])[:4]
        out.append((int(pid), int(ppid), user, args))
    return out


def _main_pid(rh, unit: str) -> int:
    return int(rh.machine.run(["systemctl", "show", "-p", "MainPID", "--value", f"{unit}.service"],
                              timeout=30).stdout.strip())


def test_the_enforcer_is_its_own_unit_and_the_web_server_starts_none(full_boot):
    rh = full_boot
    processes = _processes(rh)
    enforcer_pid, web_pid = _main_pid(rh, "soong-enforcer"), _main_pid(rh, "soong-daemon")
    by_pid = {pid: (ppid, user, args) for pid, ppid, user, args in processes}
    assert by_pid[enforcer_pid][2].endswith("--role enforcer") and by_pid[enforcer_pid][1] == "soong-daemon"
    assert by_pid[web_pid][2].endswith("--role web") and by_pid[web_pid][1] == "soong-daemon"
    enforcers = [p for p in processes if "--role enforcer" in p[3] or "soong_daemon.enforcer" in p[3]]
    assert [p[0] for p in enforcers] == [enforcer_pid], enforcers  # the web server started no enforcer child
    assert [p for p in processes if p[1] == web_pid], "the web server has no workers"
    status = rh.daemon_status()["enforcer"]
    assert status["running"] and status["pid"] == enforcer_pid, status


def test_daemon_venv_holds_its_pinned_requirements(full_boot):
    from soong.plugins.sglang.userdata import DAEMON_PINS

    frozen = full_boot.machine.run(["/opt/soong/daemon/venv/bin/python", "-m", "pip", "freeze"], timeout=60).stdout
    installed = {line.split("==")[0].lower(): line for line in frozen.splitlines() if "==" in line}
    for pin in DAEMON_PINS:
        assert installed.get(pin.split("==")[0].lower()) == pin, f"{pin} not installed as pinned: {frozen}"


def test_boot_log_phases_in_order(full_boot):
    rh = full_boot
    names = [phase for _, phase, _ in rh.boot_log()]
    assert not [n for n in names if n.endswith("-failed") or n == "fs-missing"], rh.diagnostics()
    for phase in ("enforcer-up", "daemon-up", "preflight-ok", "fs-mounted", "sglang-loading", "sglang-ready",
                  "n8n-ready"):
        assert phase in names, f"no {phase} in the boot log: {names}"
    assert names.index("enforcer-up") < names.index("daemon-up") < names.index("preflight-ok") < names.index("fs-mounted")
    assert names.index("preflight-ok") < names.index("sglang-loading") < names.index("sglang-ready")
    assert rh.phases["fs-mounted"].message == f"/lambda/nfs/{rh.options.filesystem_name}"


def test_persistent_file_system_is_used(full_boot):
    rh = full_boot
    for folder in ("soong/hf-cache", "soong/n8n", "data", "projects"):
        assert (rh.fs_dir / folder).is_dir(), f"{folder} was not made on the file system"
    assert any((rh.fs_dir / "soong/n8n").rglob("database.sqlite")), "n8n keeps its data off the file system"
    link = rh.machine.path("/home/ubuntu") / "data"
    assert link.is_symlink() and str(link.readlink()) == f"/lambda/nfs/{rh.options.filesystem_name}/data"
    paths = rh.machine.read("/run/soong/paths.env", live=True)
    assert "SOONG_FS_MOUNTED=1" in paths, paths


def test_status_daemon_answers_through_soongs_tunnel(full_boot):
    rh = full_boot
    status = rh.daemon_status()
    assert status["instance_id"] == rh.instance.id, "the daemon did not find its own instance through the API"
    assert status["instance_name"] == rh.plan.instance_name
    assert status["model"] == rh.plan.model.id
    assert [p["phase"] for p in status["boot"]["phases"]] == [p for _, p, _ in rh.boot_log()]
    assert status["gpu"] and status["gpu"][0]["name"] == "NVIDIA A10"
    assert status["gpu"][0]["memory_total_mib"] == 23028
    assert set(status["sources"]) >= {"ssh", "sglang", "n8n"}
    assert status["enforcer"]["running"] is True
    assert status["shutdown"] is None


def test_login_user_has_passwordless_sudo(full_boot):
    done = full_boot.ssh("id -un && sudo -n true && echo sudo-ok")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["ubuntu", "sudo-ok"]


def test_readiness_sees_the_instance_ready(full_boot):
    from soong.core.readiness import TunnelProbe, wait_until_ready

    rh = full_boot
    seen = []
    probe = TunnelProbe(rh.context)
    try:
        progress = wait_until_ready(rh.context.provider("lambda"), rh.instance.id, probe, timeout=120, poll=2,
                                    on_progress=seen.append)
    finally:
        probe.close()
    assert progress.phase == "ready", seen


def test_model_standin_serves_through_the_tunnel(full_boot):
    import requests

    from soong.core.instance_keys import sglang_api_key_for

    key = sglang_api_key_for(full_boot.context, full_boot.context.provider("lambda").get_instance(full_boot.instance.id))
    assert key == full_boot.plan.sglang_api_key  # what soong computes is what the user data gave SGLang
    auth = {"Authorization": f"Bearer {key}"}
    body = {"model": "any", "messages": [{"role": "user", "content": "hello"}]}
    with full_boot.tunnel(8000) as (url,):
        refused = requests.post(url + "/v1/chat/completions", timeout=10, json=body)
        answer = requests.post(url + "/v1/chat/completions", timeout=10, json=body, headers=auth).json()
        models = requests.get(url + "/v1/models", timeout=10, headers=auth).json()
        assert requests.get(url + "/metrics", timeout=10).status_code == 200  # open, as in SGLang
    assert refused.status_code == 401, "SGLang served a request without its API key"
    assert "you said: hello" in answer["choices"][0]["message"]["content"]
    assert models["data"][0]["id"] == full_boot.plan.model.hf_path


def test_services_run_as_their_own_users_in_a_sandbox(full_boot):
    from soong.core.bootstrap import N8N_USER, SGLANG_USER
    from soong.testing.rehearsal_security import unit_process

    rh = full_boot
    for unit, user in (("soong-sglang", SGLANG_USER), ("soong-n8n", N8N_USER)):
        seen = unit_process(rh, unit)
        assert seen["User"] == user and seen["process_user"] == user, seen
        # NoNewPrivileges=yes, ProtectSystem=strict (/ read-only), ProtectHome=yes (/home empty)
        assert seen["NoNewPrivs"] == "1" and seen["root_read_only"] and seen["home_entries"] == [], seen
        assert rh.machine.run(["runuser", "-u", user, "--", "sudo", "-n", "true"], timeout=30).returncode != 0


def test_key_files_and_cloud_init_copies_are_unreadable_to_the_services(full_boot):
    from soong.core.bootstrap import DAEMON_API_KEY_PATH, DAEMON_CONFIG_PATH, DAEMON_TOKEN_PATH, N8N_USER, SGLANG_USER
    from soong.testing.rehearsal_security import readable_by, stat_of

    rh = full_boot
    assert stat_of(rh, "/etc/soong-daemon") == ("soong-daemon", "700")
    keys = (DAEMON_API_KEY_PATH, DAEMON_TOKEN_PATH, DAEMON_CONFIG_PATH)
    for path in keys:
        assert stat_of(rh, path) == ("soong-daemon", "600"), path
    assert readable_by(rh, "soong-daemon", DAEMON_API_KEY_PATH)  # the check can fail
    instance = "/var/lib/cloud/instance"
    copies = {f"{instance}/user-data.txt": "600", f"{instance}/user-data.txt.i": "600",
              f"{instance}/cloud-config.txt": "600", f"{instance}/obj.pkl": "400",
              f"{instance}/scripts/01-soong-daemon.sh": "700", "/var/lib/cloud/seed/nocloud/user-data": "600"}
    for path, mode in copies.items():
        assert stat_of(rh, path) == ("root", mode), path
    for folder in ("/var/lib/cloud/instances", "/var/lib/cloud/seed"):
        assert stat_of(rh, folder) == ("root", "700"), folder
    assert stat_of(rh, "/var/log/cloud-init-output.log")[1].endswith("0")
    for user in (SGLANG_USER, N8N_USER, "ubuntu"):  # ubuntu only through sudo
        for path in (*keys, *copies, "/var/log/cloud-init-output.log"):
            assert not readable_by(rh, user, path), f"{user} can read {path}"
    assert "userdata-private" in [p for _, p, _ in rh.boot_log()]


def test_metadata_endpoint_is_closed_to_all_but_root_and_the_daemon(full_boot):
    from soong.core.bootstrap import cloud_config_of
    from soong.plugins.sglang.hardening import metadata_firewall_script
    from soong.testing.rehearsal_security import metadata_trial

    rh = full_boot
    # At boot: the machine shares the host's network without CAP_NET_ADMIN, so the rule cannot go in;
    # the boot says so loudly and goes on (on an instance it logs metadata-closed).
    logged = {p: m for _, p, m in rh.boot_log() if p.startswith("metadata-")}
    assert "metadata-open" in logged and "nft could not install the rule" in logged["metadata-open"], logged
    # The same bootcmd script from the user data, in the machine, in a network namespace of its own.
    script = next(e[2] for e in cloud_config_of(rh.user_data)["bootcmd"] if e[2] == metadata_firewall_script())
    reached, log = metadata_trial(rh, script)
    assert reached == {"root": ("reached", "reached"), "soong-daemon": ("reached", "reached"),
                       "soong-sglang": ("refused", "refused"), "soong-n8n": ("refused", "refused"),
                       "ubuntu": ("refused", "refused")}, reached
    assert "169.254.169.254 and fd00:ec2::254 fe80::a9fe:a9fe closed to every user but root and soong-daemon (nft" in log[-1]


def test_service_folders_belong_to_their_users(full_boot):
    from soong.testing.rehearsal_security import stat_of

    rh = full_boot
    fs = f"/lambda/nfs/{rh.options.filesystem_name}"
    assert stat_of(rh, f"{fs}/soong") == ("root", "755")
    assert stat_of(rh, f"{fs}/soong/hf-cache") == ("soong-sglang", "750")
    assert stat_of(rh, f"{fs}/soong/n8n") == ("soong-n8n", "700")
    for name in ("data", "projects"):
        assert stat_of(rh, f"{fs}/{name}") == ("ubuntu", "755")
    done = rh.ssh("echo hello > ~/data/hello.txt && cat ~/data/hello.txt && stat -c %U ~/data/hello.txt")
    assert done.returncode == 0 and done.stdout.split() == ["hello", "ubuntu"], done.stderr
    assert (rh.fs_dir / "data" / "hello.txt").read_text() == "hello\n"


def test_n8n_has_an_owner_whose_password_only_its_user_and_root_read(full_boot):
    import requests

    from soong.plugins.sglang.n8n_owner import OWNER_EMAIL, PASSWORD_PATH
    from soong.testing.rehearsal_security import readable_by, stat_of

    rh = full_boot
    assert stat_of(rh, "/etc/soong-n8n") == ("soong-n8n", "700")
    assert stat_of(rh, PASSWORD_PATH) == ("soong-n8n", "600")
    assert not readable_by(rh, "soong-sglang", PASSWORD_PATH) and not readable_by(rh, "ubuntu", PASSWORD_PATH)
    fetched = rh.ssh(f"sudo cat {PASSWORD_PATH}")  # what docs/security.md tells the user to run
    assert fetched.returncode == 0, fetched.stderr
    password = fetched.stdout.strip()
    assert len(password) == 24
    # n8n 2.41.1's AuthController: POST /rest/login (skipAuth), GET /rest/login the logged-in user (auth required).
    # The session cookie is issued Secure (n8n's default; browsers send it to http://localhost) and bound to
    # the browser-id header of the login (AuthService.validateBrowserId), so the test sends both itself.
    browser = {"browser-id": "soong-rehearsal"}
    with rh.tunnel(5678) as (url,):
        deadline = time.monotonic() + 120
        while True:  # n8n answers /healthz a while before its REST routes are mounted (404 until then)
            anonymous = requests.get(url + "/rest/login", timeout=10, headers=browser)
            if anonymous.status_code != 404 or time.monotonic() > deadline:
                break
            time.sleep(1)
        wrong = requests.post(url + "/rest/login", timeout=30, headers=browser,
                              json={"emailOrLdapLoginId": OWNER_EMAIL, "password": "x" * 24})
        right = requests.post(url + "/rest/login", timeout=30, headers=browser,
                              json={"emailOrLdapLoginId": OWNER_EMAIL, "password": password})
        cookie = right.cookies.get("n8n-auth", "")
        me = requests.get(url + "/rest/login", timeout=10, headers={**browser, "Cookie": f"n8n-auth={cookie}"})
    assert anonymous.status_code == 401 and wrong.status_code == 401, (anonymous.text[:200], wrong.text[:200])
    assert right.status_code == 200 and cookie and right.json()["data"]["email"] == OWNER_EMAIL, right.text[:300]
    assert me.status_code == 200 and me.json()["data"]["email"] == OWNER_EMAIL, me.text[:300]


def test_rendered_user_data_holds_no_hf_token(full_boot):
    rh = full_boot
    assert rh.plan.hf_token_expected and rh.hf_token not in rh.user_data
    assert rh.hf_token not in rh.machine.read("/var/lib/cloud/instance/user-data.txt")
    assert rh.plan.sglang_api_key in rh.user_data  # SGLang's own key is: 0600 for its user
    for path in ("/etc/soong-sglang/api-key", "/etc/soong-sglang/hf-token"):
        mode = rh.machine.run(["stat", "-c", "%a %U", path], timeout=30)
        assert mode.stdout.split() == ["600", "soong-sglang"], (path, mode.stdout + mode.stderr)
    assert rh.machine.run(["cat", "/etc/soong-sglang/hf-token"], timeout=30).stdout.strip() == rh.hf_token
    names = [phase for _, phase, _ in rh.boot_log()]
    assert names.index("hf-token-delivered") < names.index("sglang-ready")
    assert rh.daemon_status()["secrets"]["hf_token"] == {"expected": True, "delivered": True}


def test_sglang_launcher_command_line_and_journal_hold_no_secret(full_boot):
    rh = full_boot
    secrets = (rh.plan.sglang_api_key, rh.hf_token)
    every = rh.machine.run(["ps", "-e", "-ww", "-o", "user:32=,args="], timeout=30).stdout
    launchers = [line for line in every.splitlines() if "/usr/local/lib/soong/sglang-launch" in line]
    assert launchers and all(line.split()[0] == "soong-sglang" for line in launchers), every
    assert not [s for s in secrets if s in every], "a secret is on a command line (/proc/*/cmdline)"
    unit = rh.machine.read("/etc/systemd/system/soong-sglang.service")
    assert not [s for s in secrets if s in unit]
    journal = rh.machine.run(["journalctl", "-u", "soong-sglang", "--no-pager", "-o", "cat"], timeout=60).stdout
    # the stand-in logs a hash of the HF_TOKEN it finds in os.environ, where huggingface_hub looks
    assert f"HF_TOKEN sha256={hashlib.sha256(rh.hf_token.encode()).hexdigest()}" in journal, journal[-2000:]
    assert "server_args=" in journal and "'api_key': '<redacted>'" in journal, journal[-2000:]
    assert not [s for s in secrets if s in journal], "a secret is in SGLang's journal"


def test_n8n_workflow_run_counts_as_activity(full_boot):
    from soong.testing import rehearsal_n8n

    rh = full_boot
    # The daemon must have read n8n's page once (n8n answers /metrics with 404 for a few seconds after
    # /healthz): counters it first sees already raised cannot be told apart from ones raised before.
    _wait_source(rh, "n8n", "idle")
    before = rh.daemon_status()["activity_counts"].get("n8n", 0)
    answer = rehearsal_n8n.run_workflow(rh)
    assert "Workflow was started" in answer, answer
    metrics = rehearsal_n8n.metrics_text(rh)
    assert "n8n_workflow_started_total" in metrics, "n8n's /metrics does not count workflow executions"
    status = _wait_activity(rh, "n8n", before)
    assert status["last_activity"]["source"] in ("n8n", "ssh")


def test_n8n_metrics_off_reads_unknown(full_boot):
    from soong.testing import rehearsal_n8n

    rh = full_boot
    rehearsal_n8n.switch_metrics_off(rh)
    assert "n8n_version_info" not in rehearsal_n8n.metrics_text(rh), "the drop-in did not switch the metrics off"
    sources = _wait_source(rh, "n8n", "unknown")
    print(json.dumps(sources["n8n"]))

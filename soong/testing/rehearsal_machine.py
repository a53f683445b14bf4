"""One rehearsal machine: a copy of the image booted with ``systemd-nspawn -b``, and its cleanup.

The container shares the host's network (so the package registries and the host's
Lambda emulator on loopback are reachable), runs systemd as PID 1 and is never
registered with machined (``--register=no --keep-unit``): it is stopped by
signalling the nspawn process (SIGTERM asks its init for an orderly poweroff,
SIGKILL ends what is left), and commands run inside it through ``nsenter``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Sequence

from soong.testing.rehearsal_image import copy_root

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def nspawn_unavailable() -> str | None:
    """Why a rehearsal machine cannot boot here (None when it can)."""
    if os.geteuid() != 0:
        return "the boot rehearsal needs root (systemd-nspawn and debootstrap); CI runs as root"
    for tool in ("systemd-nspawn", "debootstrap", "nsenter"):
        if shutil.which(tool) is None:
            package = {"systemd-nspawn": "systemd-container", "nsenter": "util-linux"}.get(tool, tool)
            return f"'{tool}' is not installed; install the Debian package {package} (.ci/run does)"
    if not Path("/proc/self/ns/pid").exists():
        return "the boot rehearsal needs Linux namespaces (/proc/self/ns)"
    return None


class Machine:
    """A booted copy of the image in ``workdir`` (``root/`` is its file system, ``console.log`` its console).

    :param binds: ``(host path, path in the machine)`` pairs bind-mounted read-write.
    """

    def __init__(self, image: Path, workdir: Path, name: str, binds: Sequence[tuple[Path, str]] = ()) -> None:
        self.image = Path(image)
        self.workdir = Path(workdir)
        self.name = name
        self.binds = list(binds)
        self.root = self.workdir / "root"
        self.console = self.workdir / "console.log"
        self.process: subprocess.Popen | None = None
        self.started_at: float | None = None

    def prepare(self) -> Path:
        """Copy the image into ``root/`` (fresh) and return it."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.root.exists():
            shutil.rmtree(self.root)
        return copy_root(self.image, self.root)

    def boot(self) -> None:
        """Start ``systemd-nspawn -b`` on the copy; returns at once."""
        # The machine shares the host's network: without CAP_NET_ADMIN (nspawn keeps it only with
        # --private-network; dropped here all the same) nothing in it can change the host's firewall.
        command = ["systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "--boot", "-D", str(self.root),
                   f"--machine={self.name}", "--console=passive", "--resolv-conf=copy-host", "--timezone=off",
                   "--drop-capability=CAP_NET_ADMIN"]
        for host, guest in self.binds:
            command.append(f"--bind={host}:{guest}")
        with open(self.console, "ab") as console:
            self.started_at = time.time()
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def running(self) -> bool:
        """Whether the nspawn process is still there."""
        return self.process is not None and self.process.poll() is None

    def leader(self, timeout: float = 30.0) -> int:
        """The host pid of the machine's PID 1 (systemd)."""
        if self.process is None:
            raise RuntimeError("the machine was not booted")
        deadline = time.monotonic() + timeout
        while True:
            for pid in _descendants(self.process.pid):
                if _ns_pid(pid) == 1:
                    return pid
            if not self.running():
                raise RuntimeError(f"systemd-nspawn exited with {self.process.returncode}: {self.console_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no init process in the machine after {timeout:g}s")
            time.sleep(0.1)

    def run(self, command: Sequence[str], *, timeout: float = 60.0, check: bool = False,
            input: str | None = None) -> subprocess.CompletedProcess:
        """Run ``command`` inside the machine as root (its mount, pid, uts and ipc namespaces and root)."""
        enter = ["nsenter", f"--target={self.leader()}", "--mount", "--uts", "--ipc", "--pid", "--root", "--wd",
                 "--", "/usr/bin/env", "-i", f"PATH={PATH}", "HOME=/root", "LANG=C.UTF-8", *command]
        return subprocess.run(enter, capture_output=True, text=True, timeout=timeout, check=check, input=input)

    def path(self, inside: str) -> Path:
        """Where a file of the machine is on the host, through the copy.

        Symbolic links are followed inside the machine's root (cloud-init's
        ``/var/lib/cloud/instance`` is an absolute link). Bind mounts and the
        machine's tmpfs (``/run``) are not seen: :meth:`read` those with ``live=True``.
        """
        current = self.root
        parts = [p for p in inside.split("/") if p not in ("", ".")]
        hops = 0
        while parts:
            part = parts.pop(0)
            if part == "..":
                current = current.parent if current != self.root else current
                continue
            candidate = current / part
            if candidate.is_symlink() and hops < 40:
                hops += 1
                target = os.readlink(candidate)
                parts = [p for p in target.split("/") if p not in ("", ".")] + parts
                current = self.root if target.startswith("/") else current
                continue
            current = candidate
        return current

    def read(self, inside: str, *, live: bool = False) -> str:
        """The text of a file in the machine ('' when missing); ``live`` reads it from inside the running machine."""
        if live:
            done = self.run(["cat", inside], timeout=30)
            return done.stdout if done.returncode == 0 else ""
        try:
            return self.path(inside).read_text(errors="replace")
        except OSError:
            return ""

    def console_tail(self, limit: int = 3000) -> str:
        """The end of the console log."""
        try:
            return self.console.read_text(errors="replace")[-limit:]
        except OSError:
            return ""

    def stop(self, timeout: float = 30.0) -> None:
        """Power the machine off (SIGTERM to nspawn), SIGKILL after ``timeout``; idempotent."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        try:
            os.kill(process.pid, signal.SIGTERM)
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            for pid in reversed(_descendants(process.pid)):
                _kill(pid)
            _kill(process.pid)
            process.wait(timeout=10)
        except ProcessLookupError:
            pass

    def leftovers(self) -> list[int]:
        """Pids of processes still running inside the copy (their root is in it)."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    root = os.readlink(entry / "root")
                except OSError:
                    continue
                if root == str(self.root) or root.startswith(str(self.root) + "/"):
                    found.append(int(entry.name))
        return found

    def remove(self) -> None:
        """Stop the machine and delete its copy (bind-mounted host folders are left alone).

        Raises RuntimeError (after killing them) when processes of the machine outlived its poweroff.
        """
        self.stop()
        survivors = self.leftovers()
        for pid in survivors:
            _kill(pid)
        for _host, guest in self.binds:  # never delete through a bind mount that is still there
            target = self.path(guest)
            if os.path.ismount(target):
                subprocess.run(["umount", "-l", str(target)], check=False, capture_output=True)
            if os.path.ismount(target):
                raise RuntimeError(f"{target} is still mounted; not removing {self.workdir}")
        shutil.rmtree(self.workdir, ignore_errors=True)
        if survivors:
            raise RuntimeError(f"processes of the machine outlived its poweroff and were killed: {survivors}")


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _descendants(pid: int) -> list[int]:
    out: list[int] = []
    todo = [pid]
    while todo:
        kids = _children(todo.pop(0))
        out += kids
        todo += kids
    return out


def _ns_pid(pid: int) -> int | None:
    """The pid of ``pid`` in its innermost pid namespace."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("NSpid:"):
                values = line.split()[1:]
                return int(values[-1]) if len(values) > 1 else None
    except OSError:
        return None
    return None

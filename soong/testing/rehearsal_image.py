"""The boot rehearsal's machine image: a Debian root file system made with debootstrap, cached.

The image stands in for Lambda's: a ``ubuntu`` login user with passwordless sudo,
cloud-init reading a NoCloud seed, OpenSSH, Python with venv, curl and systemd as
PID 1. It is built once per package list (about a minute) into
``${SOONG_REHEARSAL_CACHE:-~/.cache/soong/rehearsal}/image-<key>/root`` and copied
fresh for every boot (:func:`copy_root`). What is the same on every boot and stands
in for the GPU world is baked in here too: a venv at the path SGLang's install uses,
holding only the model stand-in's dependencies (see :mod:`soong.testing.rehearsal_standins`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
#: Debian packages on top of ``--variant=minbase``. python3-cffi-backend: cloud-init's
#: dependencies do not configure without it in a minbase root. g++ and make: Lambda Stack
#: images carry a compiler, and npm packages fall back to building from source with it. nftables and
#: iptables: the metadata firewall (soong.plugins.sglang.hardening) uses nft where the image has it and
#: iptables otherwise; Debian's nftables is Priority: important, so a full Debian install has it, but
#: --variant=minbase installs only Priority: required (debootstrap(8)).
PACKAGES = ("systemd", "systemd-sysv", "dbus", "cloud-init", "python3", "python3-venv", "python3-cffi-backend",
            "openssh-server", "curl", "sudo", "ca-certificates", "iproute2", "procps", "g++", "make",
            "nftables", "iptables")
#: The model stand-in's dependencies (the daemon's pins of the same packages).
STANDIN_PINS = ("falcon==4.4.0", "gunicorn==27.0.1")
LOGIN_USER = "ubuntu"
#: Where SGLang's install puts its venv (soong.plugins.sglang.scripts.INSTALL_SGLANG_SH).
SGLANG_ROOT = "/opt/soong/sglang"

#: cloud-init settings of the stand-in image: NoCloud then nothing, no network config
#: (the container shares the host's network), no locale generation (minbase has no
#: locales), and ``ubuntu`` as the default user that gets the meta-data's SSH keys.
CLOUD_CFG = """\
datasource_list: [NoCloud, None]
network: {config: disabled}
locale: false
system_info:
  default_user:
    name: ubuntu
    lock_passwd: true
    shell: /bin/bash
    groups: [sudo]
    sudo: ["ALL=(ALL) NOPASSWD:ALL"]
"""


class ImageError(RuntimeError):
    """The image could not be built."""


def cache_root(env: dict[str, str] | None = None) -> Path:
    """``$SOONG_REHEARSAL_CACHE`` or ``~/.cache/soong/rehearsal``."""
    env = os.environ if env is None else env
    configured = env.get("SOONG_REHEARSAL_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "soong" / "rehearsal"


def image_key() -> str:
    """What the cached image depends on, hashed."""
    text = json.dumps([SUITE, MIRROR, sorted(PACKAGES), STANDIN_PINS, CLOUD_CFG, LOGIN_USER, SGLANG_ROOT, 2])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(command: list[str], log: Path, timeout: float) -> None:
    with open(log, "ab") as out:
        out.write(("\n$ " + " ".join(command) + "\n").encode())
        out.flush()
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              timeout=timeout, check=False)
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-1500:]
        raise ImageError(f"{command[0]} exited with {done.returncode} while building the rehearsal image:\n{tail}")


def _in_root(root: Path, *command: str) -> list[str]:
    """Run ``command`` inside ``root`` (not booted) with systemd-nspawn."""
    return ["systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "--pipe", "-D", str(root),
            "--setenv=PIP_DISABLE_PIP_VERSION_CHECK=1", *command]


#: The host's CA bundle (Debian's path). Copied into the machine so that it trusts what the host trusts
#: (a network that reaches the registries through a TLS-inspecting proxy); pip and npm are pointed at it
#: because neither reads the system store by default (pip uses certifi, Node.js its own list).
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


#: npm settings of the machine's root user. The rehearsal's network reaches the npm registry but not
#: GitHub, where native modules' install scripts download prebuilt binaries (n8n's sqlite3 and
#: @confluentinc/kafka-javascript among them), so npm skips install scripts and the rehearsal
#: builds the one n8n needs to start (sqlite3) from its bundled source afterwards
#: (soong.testing.rehearsal_n8n). prefer-offline: reuse the bound npm cache without revalidating.
NPMRC_EXTRA = "ignore-scripts=true\nprefer-offline=true\n"


def trust_host_certificates(root: Path) -> None:
    """Give the machine at ``root`` the host's CA bundle, and point pip and npm at it."""
    bundle = "/etc/ssl/certs/ca-certificates.crt"
    if HOST_CA_BUNDLE.is_file():
        target = root / bundle.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(HOST_CA_BUNDLE, target)
    (root / "etc/pip.conf").write_text(f"[global]\ncert = {bundle}\n")
    (root / "root").mkdir(exist_ok=True)
    (root / "root/.npmrc").write_text(f"cafile={bundle}\n" + NPMRC_EXTRA)


def build_root(root: Path, log: Path) -> None:
    """debootstrap ``root`` and add the stand-in image's user, cloud-init settings and stand-in venv."""
    _run(["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(root), MIRROR], log, 1200)
    _run(_in_root(root, "useradd", "--create-home", "--shell", "/bin/bash", "--groups", "sudo", LOGIN_USER), log, 120)
    sudoers = root / "etc/sudoers.d/90-ubuntu"
    sudoers.write_text(f"{LOGIN_USER} ALL=(ALL) NOPASSWD:ALL\n")
    sudoers.chmod(0o440)
    (root / "etc/cloud/cloud.cfg.d/90-soong-rehearsal.cfg").write_text(CLOUD_CFG)
    venv = f"{SGLANG_ROOT}/venv"
    trust_host_certificates(root)
    _run(_in_root(root, "python3", "-m", "venv", venv), log, 300)
    _run(_in_root(root, f"{venv}/bin/pip", "install", "--quiet", "--no-cache-dir", *STANDIN_PINS), log, 600)
    _run(_in_root(root, "apt-get", "clean"), log, 120)
    for machine_id in (root / "etc/machine-id", root / "var/lib/dbus/machine-id"):
        if machine_id.exists() and not machine_id.is_symlink():
            machine_id.write_text("")  # a fresh id on each boot, like a new instance


def ensure_image(cache: Path | None = None, *, log: Path | None = None) -> Path:
    """The cached image's root folder, built first when missing (another process building it is waited for)."""
    cache = cache or cache_root()
    key = image_key()
    final = cache / f"image-{key}"
    if (final / "complete").is_file():
        return final / "root"
    with _locked(cache / f"image-{key}.lock"):
        if (final / "complete").is_file():
            return final / "root"
        building = Path(tempfile.mkdtemp(prefix=f"image-{key}.", suffix=".building", dir=cache))
        log = log or building / "build.log"
        started = time.monotonic()
        try:
            build_root(building / "root", log)
            (building / "complete").write_text(json.dumps({"key": key, "seconds": round(time.monotonic() - started, 1),
                                                           "packages": PACKAGES}))
            if final.exists():
                shutil.rmtree(final)
            building.rename(final)
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
    return final / "root"


def image_build_seconds(cache: Path | None = None) -> float | None:
    """How long the cached image took to build (None when it is not built)."""
    marker = (cache or cache_root()) / f"image-{image_key()}" / "complete"
    try:
        return float(json.loads(marker.read_text())["seconds"])
    except (OSError, ValueError, KeyError):
        return None


def copy_root(image: Path, target: Path) -> Path:
    """A fresh copy of the image at ``target`` (hard to share: each boot writes to its own)."""
    subprocess.run(["cp", "-a", "--reflink=auto", str(image), str(target)], check=True)
    return target

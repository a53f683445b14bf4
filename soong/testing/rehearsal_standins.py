"""What stands in for the GPU world on a rehearsal boot: ``nvidia-smi`` and SGLang's server.

Only what needs a GPU stands in:

* :func:`nvidia_smi_script`: an ``nvidia-smi`` that answers ``--query-gpu=<fields>
  --format=csv[,noheader][,nounits]`` for the planned GPUs and a chosen driver
  version (the preflight's query is ``name,memory.total,driver_version``, the
  daemon's ``name,utilization.gpu,memory.used,memory.total``);
* :func:`install_sglang_standin`: SGLang made to look installed in
  ``/opt/soong/sglang`` (the image's venv holds the stand-in's dependencies; this
  adds the ``.installed-<version>`` marker the install script checks and a
  ``sglang.launch_server`` module that takes SGLang's command-line arguments and
  serves the sandbox's model stand-in, :mod:`soong.sandbox.model_standin`). Like
  SGLang 0.5.23 it requires ``--api-key`` of every request but health and metrics,
  and it logs its whole configuration, key included, as SGLang does
  (``server_args=...``), so the rehearsal can show that soong's launcher keeps the
  key out of the journal.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Sequence

from soong.testing.rehearsal_image import SGLANG_ROOT


@dataclasses.dataclass(frozen=True)
class Gpu:
    """One stand-in GPU: its name and total memory as nvidia-smi reports them."""

    name: str
    memory_mib: int


#: An A10 as nvidia-smi shows it on Lambda (23028 MiB; soong issue 12's measurement).
A10 = Gpu("NVIDIA A10", 23028)

_NVIDIA_SMI = r'''#!/usr/bin/python3
"""nvidia-smi stand-in of the soong boot rehearsal: the planned GPUs, no real driver."""
import sys

GPUS = @GPUS@
DRIVER = @DRIVER@


def field(index, gpu, name, units):
    mib = "" if not units else " MiB"
    values = {
        "name": gpu["name"], "gpu_name": gpu["name"], "index": str(index), "count": str(len(GPUS)),
        "memory.total": f"{gpu['memory_mib']}{mib}", "memory.used": f"0{mib}",
        "memory.free": f"{gpu['memory_mib']}{mib}", "driver_version": DRIVER,
        "utilization.gpu": "0" + ("" if not units else " %"), "uuid": f"GPU-rehearsal-{index:04d}",
        "pci.bus_id": f"00000000:{index + 1:02X}:00.0",
    }
    if name not in values:
        print(f'Field "{name}" is not a valid field to query.', file=sys.stderr)
        sys.exit(2)
    return values[name]


def main(args):
    query = next((a.split("=", 1)[1] for a in args if a.startswith("--query-gpu=")), None)
    formats = next((a.split("=", 1)[1] for a in args if a.startswith("--format=")), "csv")
    if query is None:
        print(f"NVIDIA-SMI (soong rehearsal stand-in)   Driver Version: {DRIVER}")
        for index, gpu in enumerate(GPUS):
            print(f"GPU {index}: {gpu['name']} {gpu['memory_mib']}MiB")
        return 0
    options = formats.split(",")
    names = [n.strip() for n in query.split(",") if n.strip()]
    units = "nounits" not in options
    if "noheader" not in options:
        print(", ".join(names))
    for index, gpu in enumerate(GPUS):
        print(", ".join(field(index, gpu, name, units) for name in names))
    return 0


sys.exit(main(sys.argv[1:]))
'''

_LAUNCH_SERVER = '''"""sglang.launch_server stand-in of the soong boot rehearsal: SGLang's arguments, the sandbox's model stand-in."""
import argparse
import hashlib
import os
import sys

from soong.sandbox.standin_server import serve

parser = argparse.ArgumentParser(prog="sglang.launch_server")
parser.add_argument("--model-path", required=True)
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, default=30000)
parser.add_argument("--served-model-name")
parser.add_argument("--api-key")
args, ignored = parser.parse_known_args()
# SGLang 0.5.23 logs its configuration with the key (engine.py: logger.info(f"server_args=...")); so does this
print(f"sglang stand-in: server_args={vars(args)!r} (ignored: {' '.join(ignored)})", file=sys.stderr, flush=True)
# what huggingface_hub would read (HF_TOKEN in os.environ), as a hash: the rehearsal compares it with its canary
token = os.environ.get("HF_TOKEN", "")
print(f"sglang stand-in: HF_TOKEN sha256={hashlib.sha256(token.encode()).hexdigest()}", file=sys.stderr, flush=True)
serve(f"{args.host}:{args.port}", args.served_model_name or args.model_path, args.api_key)
'''


def nvidia_smi_script(gpus: Sequence[Gpu], driver_version: str) -> str:
    """The stand-in ``nvidia-smi`` (a Python script for the image's /usr/bin/python3)."""
    table = json.dumps([dataclasses.asdict(g) for g in gpus])
    return _NVIDIA_SMI.replace("@GPUS@", table).replace("@DRIVER@", json.dumps(driver_version))


def install_nvidia_smi(root: Path, gpus: Sequence[Gpu], driver_version: str | None) -> None:
    """Put the stand-in at /usr/bin/nvidia-smi (``driver_version`` None: no nvidia-smi at all)."""
    path = root / "usr/bin/nvidia-smi"
    if driver_version is None:
        path.unlink(missing_ok=True)
        return
    path.write_text(nvidia_smi_script(gpus, driver_version))
    path.chmod(0o755)


def _site_packages(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python3*/site-packages"))
    if not found:
        raise FileNotFoundError(f"no site-packages under {venv}")
    return found[-1]


def install_sglang_standin(root: Path, version: str) -> None:
    """Make SGLang ``version`` look installed in the image copy at ``root``."""
    import soong.sandbox.model_standin as model_standin
    import soong.sandbox.standin_server as standin_server

    sglang_root = root / SGLANG_ROOT.lstrip("/")
    site = _site_packages(sglang_root / "venv")
    package = site / "soong" / "sandbox"
    package.mkdir(parents=True, exist_ok=True)
    (site / "soong" / "__init__.py").write_text('"""The parts of soong the SGLang stand-in runs."""\n')
    (package / "__init__.py").write_text("")
    for module in (model_standin, standin_server):
        shutil.copyfile(module.__file__, package / Path(module.__file__).name)
    sglang = site / "sglang"
    sglang.mkdir(exist_ok=True)
    (sglang / "__init__.py").write_text(f'"""SGLang stand-in (soong boot rehearsal)."""\n__version__ = "{version}"\n')
    (sglang / "launch_server.py").write_text(_LAUNCH_SERVER)
    (sglang_root / f".installed-{version}").write_text("")
    # The service runs as its own user: whatever this process's umask, the stand-in must be
    # readable to it, as pip leaves an installed package (0755 folders, 0644 files).
    for top in (site / "soong", sglang, sglang_root / f".installed-{version}"):
        for path in (top, *top.rglob("*")) if top.is_dir() else (top,):
            path.chmod(0o755 if path.is_dir() else 0o644)

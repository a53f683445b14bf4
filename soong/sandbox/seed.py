"""What the sandbox's emulated Lambda account holds: types, prices, regions, capacity, a key, a file system.

Instance types, prices and regions are Lambda's own sample data (bundled with the
emulator). Capacity is kept small and uneven, as on the real cloud: a few
single-GPU machines in the sandbox region, the big ones scarce. The account has
one SSH key (generated for the sandbox) and one file system in the sandbox region.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

#: The region the sandbox profile launches in (it holds the file system).
SANDBOX_REGION = "us-east-1"
#: The seeded SSH key's name in the emulated account.
SSH_KEY_NAME = "soong-sandbox"
#: The seeded persistent file system.
FILESYSTEM_NAME = "soong-sandbox-models"
#: Launchable instances per type and region that the sample data lists as available (unless set below).
DEFAULT_CAPACITY = 2
#: Capacity overrides: {type: {region: count}} (a type missing from a region has none there).
CAPACITY: dict[str, dict[str, int]] = {
    "gpu_1x_a10": {"us-east-1": 4, "us-west-1": 2},
    "gpu_1x_a100_sxm4": {"us-east-1": 3},
    "gpu_1x_h100_sxm5": {"us-east-1": 2, "us-south-2": 2},
    "gpu_2x_h100_sxm5": {"us-east-1": 1},
    "gpu_8x_a100": {"us-east-1": 1},
    "gpu_8x_h100_sxm5": {"us-west-3": 1},
}
#: Used when ssh-keygen is missing: a syntactically valid public key with no private half anywhere.
FALLBACK_PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAevKqoYBiBOEkDs2cdUiPh6rUCAO/21+d5FYO503jfF soong-sandbox"


def ensure_ssh_key(private_key: Path) -> str:
    """The public half of the sandbox's SSH key, generating the pair (ed25519, no passphrase) if missing."""
    public = private_key.with_name(private_key.name + ".pub")
    if private_key.exists() and public.exists():
        return public.read_text(encoding="ascii").strip()
    keygen = shutil.which("ssh-keygen")
    if keygen is None:
        return FALLBACK_PUBLIC_KEY
    from soong.core.paths import private_dir

    private_dir(private_key.parent)
    for path in (private_key, public):
        path.unlink(missing_ok=True)
    subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-C", SSH_KEY_NAME, "-f", str(private_key)],
                   check=True, capture_output=True, timeout=30)
    return public.read_text(encoding="ascii").strip()


def sandbox_seed(public_key: str) -> dict[str, Any]:
    """The emulator seed (see ``soong.plugins.lambda_cloud.emulator.seed``) for the sandbox account."""
    return {
        "capacity": {name: dict(regions) for name, regions in CAPACITY.items()},
        "ssh_keys": [{"name": SSH_KEY_NAME, "public_key": public_key}],
        "file_systems": [{"name": FILESYSTEM_NAME, "region": SANDBOX_REGION}],
    }

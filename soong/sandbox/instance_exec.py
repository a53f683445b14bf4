"""Run a command "on" a sandbox instance: the ``direct`` backend's ``run`` for the sandbox profile.

``python -m soong.sandbox.instance_exec ADDRESS -- COMMAND...`` (config key
``tunnel.direct_exec`` of the sandbox profile). A sandbox instance has no SSH and no
shell of its own, so this understands the one command soong sends to an instance:
its secret receiver (:data:`~soong.core.bootstrap.SECRET_RECEIVER_PATH` ``NAME``,
whatever runs it as root in front). It runs the receiver program the instance's user
data carries, with its inputs made local by the sandbox host (the secret lands in
the instance's folder, 0600; the phase in its boot log), standard input passed
through untouched. Anything else is refused with exit status 127.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Sequence

from soong.core.bootstrap import SECRET_RECEIVER_PATH
from soong.sandbox.layout import InstanceFiles, SandboxLayout, read_json

EXIT_NOT_FOUND = 127


def instance_at(layout: SandboxLayout, address: str) -> InstanceFiles | None:
    """The files of the sandbox instance at ``address`` that has not ended, if any."""
    for instance_id in reversed(layout.instance_ids()):
        files = layout.instance(instance_id)
        record = read_json(files.record) or {}
        if record.get("ip") == address and not record.get("ended"):
            return files
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the receiver of the instance at the address given; see the module docstring."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 3 or args[1] != "--":
        print("usage: python -m soong.sandbox.instance_exec ADDRESS -- COMMAND...", file=sys.stderr)
        return 2
    address, command = args[0], args[2:]
    if SECRET_RECEIVER_PATH not in command or command.index(SECRET_RECEIVER_PATH) + 1 >= len(command):
        print(f"soong sandbox: instances run no commands but soong's secret receiver ({SECRET_RECEIVER_PATH} NAME)",
              file=sys.stderr)
        return EXIT_NOT_FOUND
    name = command[command.index(SECRET_RECEIVER_PATH) + 1]
    files = instance_at(SandboxLayout.from_env(), address)
    if files is None or not files.receiver_program.exists():
        print(f"soong sandbox: no running sandbox instance at {address} with a secret receiver", file=sys.stderr)
        return EXIT_NOT_FOUND
    return subprocess.run([sys.executable, str(files.receiver_program), "--config", str(files.receiver_config), name],
                          check=False).returncode


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

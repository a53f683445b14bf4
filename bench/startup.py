#!/usr/bin/env python3
"""Start-up benchmark: ``soong --help`` and ``soong plugins -f json`` against the import floor.

The floor is ``python -c "import cliff.app, cliff.commandmanager, pluggy"`` run by the
same venv interpreter in the same run. Prints medians and the ratios; the target is
``soong --help`` within 1.5x of the floor. Run with the venv's python:

    .venv/bin/python bench/startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from timing import median_wall  # bench/timing.py (this folder is on sys.path when run as a script)

BIN = Path(sys.executable).parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, HOME=home, XDG_CONFIG_HOME=f"{home}/.config", XDG_STATE_HOME=f"{home}/.state",
                   XDG_DATA_HOME=f"{home}/.data", XDG_CACHE_HOME=f"{home}/.cache")
        floor = median_wall([str(BIN / "python"), "-c", "import cliff.app, cliff.commandmanager, pluggy"], env, args.runs)
        cases = {
            "soong --help": [str(BIN / "soong"), "--help"],
            "soong plugins -f json": [str(BIN / "soong"), "plugins", "-f", "json"],
        }
        print(f"{'case':<28}{'median s':>10}{'x floor':>10}")
        print(f"{'import floor':<28}{floor:>10.3f}{1.0:>10.2f}")
        ratios = {}
        for name, cmd in cases.items():
            value = median_wall(cmd, env, args.runs)
            ratios[name] = value / floor
            print(f"{name:<28}{value:>10.3f}{ratios[name]:>10.2f}")
    target = 1.5
    verdict = "meets" if ratios["soong --help"] <= target else "misses"
    print(f"soong --help is {ratios['soong --help']:.2f}x the import floor ({verdict} the {target}x target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

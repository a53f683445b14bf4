#!/usr/bin/env python3
"""Boot rehearsal timings: a cold boot (empty cache), then a second boot with the caches it left.

Each boot is the full rehearsal (soong's user data with the daemon, the file system,
the SGLang stand-in and n8n from npm) until n8n is ready. Prints every step's wall
time (host clock, seconds after the machine started; boot-log times for the
phases), the totals and the ratio warm/cold. Needs root, debootstrap and
systemd-nspawn. Run it through ``bench/rehearsal`` (the venv's python):

    bench/rehearsal [--cache DIR] [--warm-only]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PHASES = ("daemon-up", "preflight-ok", "fs-mounted", "sglang-loading", "sglang-ready", "n8n-ready")


def one_boot(cache: Path, workdir: Path) -> dict[str, float | str]:
    """Boot once with ``cache``; return the time of every step (seconds) and how sqlite3 was had."""
    from soong.plugins.sglang.platform import SGLANG_PINS
    from soong.plugins.sglang.userdata import N8N_VERSION
    from soong.testing import rehearsal_n8n
    from soong.testing.rehearsal import BootOptions, Rehearsal
    from soong.testing.rehearsal_resolve import resolve_pins, target_image

    started = time.monotonic()
    row: dict[str, float | str] = {}
    with Rehearsal(workdir, BootOptions(), cache=cache, log=lambda text: print("  " + text, file=sys.stderr)) as rh:
        row["image (debootstrap or cache)"] = rh.timings["image"]
        row["copy image"] = rh.timings["copy"]
        resolution = resolve_pins(SGLANG_PINS, target_image(rh.plan), cache_dir=cache)
        if not resolution.ok:
            raise SystemExit(resolution.summary())
        row["SGLang resolve (dry run)"] = round(resolution.seconds, 1)
        boot_started = rh.machine.started_at or time.time()
        rh.wait_phase("daemon-up", timeout=600, fail_on=("daemon-failed", "preflight-failed"))
        step = time.monotonic()
        rh.deliver_secrets()  # the plan is a gated model: SGLang waits for the token, as after 'soong start'
        row["HF token delivered over SSH (seconds)"] = round(time.monotonic() - step, 1)
        rh.wait_phase("sglang-ready", timeout=600, fail_on=("sglang-failed",))
        rehearsal_n8n.wait_installed(rh, N8N_VERSION, 1800)
        row["n8n npm install done"] = round(time.time() - boot_started, 1)
        step = time.monotonic()
        row["sqlite3"] = rehearsal_n8n.finish_install(rh, cache)
        row["sqlite3 seconds"] = round(time.monotonic() - step, 1)
        rh.wait_phase("n8n-ready", timeout=900, fail_on=("n8n-failed",))
        for phase, seen, _logged in rh.phase_table():
            row[phase] = seen
    row["total"] = round(time.monotonic() - started, 1)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, help="cache folder (default: a new empty one, removed afterwards)")
    parser.add_argument("--warm-only", action="store_true", help="one boot with the given cache")
    args = parser.parse_args()
    from soong.testing.rehearsal import rehearsal_unavailable

    reason = rehearsal_unavailable()
    if reason:
        print(f"bench/rehearsal: {reason}", file=sys.stderr)
        return 2
    cache = args.cache or Path(tempfile.mkdtemp(prefix="soong-rehearsal-bench-", dir="/var/tmp"))
    rows: list[tuple[str, dict]] = []
    try:
        for label in (("warm",) if args.warm_only else ("cold", "warm")):
            print(f"{label} boot (cache {cache})...", file=sys.stderr)
            with tempfile.TemporaryDirectory(prefix=f"rehearsal-{label}-", dir="/var/tmp") as workdir:
                rows.append((label, one_boot(cache, Path(workdir))))
    finally:
        if args.cache is None:
            shutil.rmtree(cache, ignore_errors=True)
    keys: list[str] = []
    for _, row in rows:
        keys += [k for k in row if k not in keys]
    print(f"{'step (seconds; phases: after the machine started)':<52}" + "".join(f"{label:>12}" for label, _ in rows))
    for key in keys:
        cells = "".join(f"{str(row.get(key, '-')):>12}" if not isinstance(row.get(key), str) else f"  {row[key]}"
                        for _, row in rows)
        print(f"{key:<52}{cells}")
    if len(rows) == 2:
        cold, warm = rows[0][1]["total"], rows[1][1]["total"]
        print(f"{'ratio warm/cold (total)':<52}{warm / cold:>12.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

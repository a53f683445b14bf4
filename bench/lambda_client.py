"""Overhead of soong's Lambda client against a bare requests.Session, on the emulator.

Run: .venv/bin/python bench/lambda_client.py [N]

Prints requests per second of a bare session (the baseline), of LambdaClient +
parsing, and of LambdaClient with the file-locked rate limiter set to 0 s
spacing (so only its locking cost shows), each as a ratio to the baseline.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import requests

from soong.plugins.lambda_cloud.client import LambdaClient
from soong.plugins.lambda_cloud.parsing import parse_instance_types
from soong.plugins.lambda_cloud.ratelimit import RateLimiter
from soong.testing.emulator import run_emulator


def rate(fn, n: int) -> float:
    fn()  # warm up
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - start)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    with run_emulator("--rate-limit", "off", "--launch-rate-limit", "off") as emu, tempfile.TemporaryDirectory() as tmp:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {emu.api_key}"
        url = emu.url + "/instance-types"
        bare = lambda: session.get(url, timeout=10).json()  # noqa: E731
        first = rate(bare, n)
        client = LambdaClient(emu.url, emu.api_key)
        plain = rate(lambda: parse_instance_types(client.list_instance_types()), n)
        limited_client = LambdaClient(emu.url, emu.api_key, limiter=RateLimiter(
            Path(tmp) / "limit.json", general_interval=0.0, launch_interval=0.0))
        limited = rate(lambda: parse_instance_types(limited_client.list_instance_types()), n)
        base = (first + rate(bare, n)) / 2  # baseline measured before and after, averaged
    print(f"bare requests.Session     {base:8.0f} req/s  (baseline)")
    print(f"LambdaClient + parsing    {plain:8.0f} req/s  ratio {plain / base:.2f}")
    print(f"  + shared rate limiter   {limited:8.0f} req/s  ratio {limited / base:.2f}")


if __name__ == "__main__":
    main()

"""Helpers to take a rendered user-data document apart for checks."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from soong.core.bootstrap import cloud_config_of, file_content, split_user_data


def shell_texts(document: str) -> dict[str, str]:
    """Every shell script in the document: the x-shellscript parts and the scripts ``write_files`` installs."""
    out = {p.filename: p.text for p in split_user_data(document) if p.content_type == "text/x-shellscript"}
    for entry in cloud_config_of(document)["write_files"]:
        data = file_content(entry)
        if data.startswith(b"#!/bin/bash") or data.startswith(b"#!/bin/sh"):
            out[entry["path"]] = data.decode("utf-8")
    return out


def write_files(document: str) -> dict[str, dict]:
    """``write_files`` entries by path."""
    return {entry["path"]: entry for entry in cloud_config_of(document)["write_files"]}


def cloud_init_schema(path: Path) -> subprocess.CompletedProcess:
    """Validate a cloud-config file with the real ``cloud-init schema``."""
    exe = shutil.which("cloud-init")
    if exe is None:
        pytest.skip("cloud-init is not installed (the CI script installs it)")
    return subprocess.run([exe, "schema", "--config-file", str(path)], capture_output=True, text=True, timeout=120)

"""Request validation with the API's rules (lengths, patterns, enums), as 400 errors."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from soong.plugins.lambda_cloud.emulator.errors import invalid_parameters
from soong.plugins.lambda_cloud.emulator.seed import REGIONS

USER_DATA_LIMIT = 1024 * 1024  # bytes; "cannot exceed 1MB"
HOSTNAME = re.compile(r"^[a-z0-9][0-9a-z-]{0,62}$")
TAG_KEY = re.compile(r"^[a-z][a-z0-9-:]+$")
FILE_SYSTEM_NAME = re.compile(r"^[a-zA-Z]+[0-9a-zA-Z-]*$")
MOUNT_POINT = re.compile(r"^(/home|/lambda/nfs|/data)[//a-zA-Z0-9-]*$")
_KEY_TYPES = ("ssh-rsa", "ssh-ed25519", "ssh-dss", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
              "ecdsa-sha2-nistp521", "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com")


def body_object(body: Any) -> dict[str, Any]:
    """The request body, which must be a JSON object."""
    if not isinstance(body, dict):
        raise invalid_parameters("Request body must be a JSON object.")
    return body


def string(body: dict[str, Any], field: str, *, required: bool = False, min_len: int = 0,
           max_len: int | None = None, pattern: re.Pattern[str] | None = None) -> str | None:
    """A string field, checked for type, length and pattern."""
    if field not in body or body[field] is None:
        if required:
            raise invalid_parameters(f"Missing required field '{field}'.")
        return None
    value = body[field]
    if not isinstance(value, str):
        raise invalid_parameters(f"Field '{field}' must be a string.")
    if len(value) < min_len:
        raise invalid_parameters(f"Field '{field}' must be at least {min_len} characters.")
    if max_len is not None and len(value) > max_len:
        raise invalid_parameters(f"Field '{field}' must be {max_len} characters or fewer.")
    if pattern is not None and not pattern.match(value):
        raise invalid_parameters(f"Field '{field}' has an invalid format.")
    return value


def string_list(body: dict[str, Any], field: str, *, required: bool = False) -> list[str]:
    """A list-of-strings field (missing: empty)."""
    if field not in body or body[field] is None:
        if required:
            raise invalid_parameters(f"Missing required field '{field}'.")
        return []
    value = body[field]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid_parameters(f"Field '{field}' must be a list of strings.")
    return value


def region(body: dict[str, Any], field: str) -> str:
    """A required public region code."""
    value = string(body, field, required=True)
    assert value is not None
    if value not in REGIONS:
        raise invalid_parameters(f"Field '{field}': unknown region '{value}'.",
                                 "Use one of the public region codes, e.g. us-east-1.")
    return value


def user_data(body: dict[str, Any]) -> str | None:
    """cloud-init user data: plain text, at most 1 MB."""
    value = string(body, "user_data")
    if value is None:
        return None
    if len(value.encode("utf-8")) > USER_DATA_LIMIT:
        raise invalid_parameters("Field 'user_data' exceeds the 1 MB limit.", "Shrink the user data below 1 MB.")
    if "\x00" in value:
        raise invalid_parameters("Field 'user_data' must be plain text.")
    return value


def tags(body: dict[str, Any]) -> list[dict[str, str]]:
    """Requested tags: key pattern and lengths."""
    raw = body.get("tags")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise invalid_parameters("Field 'tags' must be a list of {key, value} objects.")
    out = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str) or not isinstance(item.get("value"), str):
            raise invalid_parameters("Each tag must be an object with string 'key' and 'value'.")
        if len(item["key"]) > 55 or not TAG_KEY.match(item["key"]):
            raise invalid_parameters(f"Tag key '{item['key']}' is invalid.",
                                     "Tag keys start with a lower-case letter; then a-z, 0-9, '-' or ':'.")
        if len(item["value"]) > 128:
            raise invalid_parameters("Tag values must be 128 characters or fewer.")
        out.append({"key": item["key"], "value": item["value"]})
    return out


def id_objects(body: dict[str, Any], field: str) -> list[str]:
    """A list of ``{"id": ...}`` objects (firewall rulesets)."""
    raw = body.get(field)
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(i, dict) and isinstance(i.get("id"), str) for i in raw):
        raise invalid_parameters(f"Field '{field}' must be a list of {{id}} objects.")
    return [i["id"] for i in raw]


def mounts(body: dict[str, Any]) -> list[dict[str, str]]:
    """Requested file system mounts."""
    raw = body.get("file_system_mounts")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise invalid_parameters("Field 'file_system_mounts' must be a list.")
    out = []
    for item in raw:
        if (not isinstance(item, dict) or not isinstance(item.get("mount_point"), str)
                or not isinstance(item.get("file_system_id"), str)):
            raise invalid_parameters("Each file system mount needs string 'mount_point' and 'file_system_id'.")
        if len(item["mount_point"]) > 256 or not MOUNT_POINT.match(item["mount_point"]):
            raise invalid_parameters(f"Mount point '{item['mount_point']}' is invalid.",
                                     "Mount under /home, /lambda/nfs or /data.")
        out.append({"mount_point": item["mount_point"], "file_system_id": item["file_system_id"]})
    return out


def image(body: dict[str, Any]) -> dict[str, str] | None:
    """An image specification: ``{"id": ...}`` or ``{"family": ...}``."""
    raw = body.get("image")
    if raw is None:
        return None
    if isinstance(raw, dict) and isinstance(raw.get("id"), str):
        return {"id": raw["id"]}
    if isinstance(raw, dict) and isinstance(raw.get("family"), str):
        return {"family": raw["family"]}
    raise invalid_parameters("Field 'image' must be {id} or {family}.")


def public_key(text: str) -> str:
    """Check an OpenSSH public key line (type, base64 blob whose embedded type matches)."""
    parts = text.strip().split()
    if len(parts) < 2 or parts[0] not in _KEY_TYPES:
        raise invalid_parameters("Invalid public key.", "Paste an OpenSSH public key, e.g. the contents of id_ed25519.pub.")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        raise invalid_parameters("Invalid public key.", "The key's base64 part is damaged.") from None
    if len(blob) < 4:
        raise invalid_parameters("Invalid public key.")
    length = int.from_bytes(blob[:4], "big")
    if blob[4:4 + length].decode("ascii", "replace") != parts[0]:
        raise invalid_parameters("Invalid public key.", "The key's type does not match its data.")
    return text.strip()

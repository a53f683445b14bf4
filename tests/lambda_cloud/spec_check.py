"""Check emulator responses against Lambda's OpenAPI description (JSON Schema 2020-12 via jsonschema)."""

from __future__ import annotations

import re
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_URI = "urn:lambda-cloud-api"
#: Statuses the API may send that the description does not list per operation:
#: 429 (rate limits, documented in the description's text).
EXTRA_STATUSES = {429}


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


class SpecChecker:
    """Finds the operation of a request and validates a response body against its schema."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.registry = Registry().with_resource(SPEC_URI, Resource.from_contents(spec, default_specification=DRAFT202012))
        self._ops: list[tuple[str, re.Pattern[str], str]] = []
        for path in spec["paths"]:
            regex = re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)) + "$")
            self._ops.append((path, regex, path))
        # literal paths win over templated ones (e.g. /firewall-rulesets/global)
        self._ops.sort(key=lambda item: item[0].count("{"))
        self._validators: dict[str, jsonschema.protocols.Validator] = {}

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]] | None:
        """(template, operation object) for a request path like ``/api/v1/instances/abc``."""
        for template, regex, _ in self._ops:
            if regex.match(path):
                op = self.spec["paths"][template].get(method.lower())
                if op is not None:
                    return template, op
        return None

    def _validator(self, pointer: str) -> Any:
        if pointer not in self._validators:
            self._validators[pointer] = jsonschema.Draft202012Validator(
                {"$ref": f"{SPEC_URI}#{pointer}"}, registry=self.registry)
        return self._validators[pointer]

    def problems(self, method: str, path: str, status: int, body: Any, content_type: str | None = None) -> list[str]:
        """Why a response is outside the description (empty when it conforms)."""
        found = self.operation(method, path)
        if found is None:
            return [f"{method} {path}: no such operation in the description"]
        template, op = found
        if str(status) not in op["responses"]:
            if status in EXTRA_STATUSES:
                return []
            return [f"{method} {template}: status {status} is not documented"]
        if content_type is not None and not content_type.startswith("application/json"):
            return [f"{method} {template} {status}: content type {content_type}"]
        pointer = "/".join(["", "paths", _escape(template), method.lower(), "responses", str(status), "content",
                            _escape("application/json"), "schema"])
        return [f"{method} {template} {status}: {e.message} at {list(e.absolute_path)}"
                for e in self._validator(pointer).iter_errors(body)]

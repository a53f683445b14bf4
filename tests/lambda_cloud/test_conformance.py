"""Every emulator response conforms to Lambda's OpenAPI description; a fuzzer finds no 5xx.

The fuzzer is hypothesis-driven: request bodies are generated from the
description's own request schemas (biased towards names that exist so some
calls succeed), plus missing or wrong API keys.
"""

from __future__ import annotations

import json
import string

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from soong.core.types import LaunchRequest
from soong.plugins.lambda_cloud.provider import LambdaProvider
from soong.testing.emulator import TEST_PUBLIC_KEY, serve_in_thread
from tests.lambda_cloud.conftest import api_dir, make_context
from tests.lambda_cloud.spec_check import SpecChecker


@pytest.fixture(scope="module")
def checker(spec):
    return SpecChecker(spec)


def assert_log_conforms(handle, checker):
    entries = handle.requests()
    assert entries, "the scenario made no request"
    problems = []
    for entry in entries:
        assert entry["status"] is not None
        problems += checker.problems(entry["method"], "/api/v1" + entry["path"], entry["status"], entry["response"],
                                     entry.get("content_type"))
    assert problems == []
    return entries


def test_samples_conform_to_the_description(checker):
    """Sanity check of the checker itself: Lambda's own sample responses pass, a damaged one fails."""
    samples = {
        "instances.sample.json": ("GET", "/api/v1/instances"),
        "instance_get.sample.json": ("GET", "/api/v1/instances/x"),
        "instance_types.sample.json": ("GET", "/api/v1/instance-types"),
        "ssh_keys.sample.json": ("GET", "/api/v1/ssh-keys"),
        "start.sample.json": ("POST", "/api/v1/instance-operations/launch"),
        "images.sample.json": ("GET", "/api/v1/images"),
    }
    for name, (method, path) in samples.items():
        body = json.loads((api_dir() / name).read_text())
        assert checker.problems(method, path, 200, body) == [], name
    damaged = json.loads((api_dir() / "instance_get.sample.json").read_text())
    del damaged["data"]["region"]
    assert checker.problems("GET", "/api/v1/instances/x", 200, damaged)


def test_every_response_of_a_full_scenario_conforms(emu, checker):
    """Drive every endpoint through the provider and raw calls; validate each logged response."""
    emu.add_ssh_key("me")
    provider = LambdaProvider(make_context(emu))
    provider.list_instance_types()
    provider.add_ssh_key("generated")
    key, _ = provider.add_ssh_key("uploaded", TEST_PUBLIC_KEY.replace("soong-test", "other"))
    provider.delete_ssh_key(key.id)
    fs = provider.create_file_system("models", "us-east-1")
    inst = provider.launch(LaunchRequest("gpu_1x_a10", "us-east-1", "me", "conf", file_system_names=("models",),
                                         hostname="node-1", tags={"team": "ml"}, user_data="#cloud-config\n",
                                         image={"family": "lambda-stack-22-04"}))
    emu.advance(10)
    provider.get_instance(inst.id)
    provider.list_instances()
    provider.rename_instance(inst.id, "renamed")
    provider.restart([inst.id])
    provider.list_file_systems()
    provider.list_ssh_keys()
    provider.list_images()
    provider.list_firewall_rulesets()
    provider.list_audit_events()
    raw = [
        ("DELETE", f"/filesystems/{fs.id}", None),  # in use: 400
        ("POST", "/instance-operations/launch", {"region_name": "us-east-1", "instance_type_name": "gpu_1x_a10",
                                                 "ssh_key_names": ["me", "x"]}),
        ("POST", "/instance-operations/launch", {"region_name": "us-west-1", "instance_type_name": "gpu_1x_a10",
                                                 "ssh_key_names": ["me"], "file_system_names": ["models"]}),
        ("POST", "/instance-operations/launch", {"region_name": "us-east-1", "instance_type_name": "nope",
                                                 "ssh_key_names": ["me"]}),
        ("POST", "/filesystems", {"name": "models", "region": "us-east-1"}),
        ("POST", "/ssh-keys", {"name": "bad", "public_key": "nope"}),
        ("GET", "/instances/nope", None),
        ("POST", "/instances/nope", {"name": "x"}),
        ("POST", "/instance-operations/terminate", {"instance_ids": ["nope"]}),
        ("POST", "/instance-operations/restart", {"instance_ids": ["nope"]}),
        ("DELETE", "/filesystems/nope", None),
        ("DELETE", "/ssh-keys/nope", None),
        ("GET", "/audit-events?start=yesterday", None),
    ]
    for method, path, body in raw:
        emu.api(method, path, body)
    emu.set_capacity("gpu_1x_h100_pcie", "us-west-3", 0)
    emu.api("POST", "/instance-operations/launch", {"region_name": "us-west-3", "instance_type_name": "gpu_1x_h100_pcie",
                                                    "ssh_key_names": ["me"]})
    emu.configure(quota=1)
    emu.api("POST", "/instance-operations/launch", {"region_name": "us-east-1", "instance_type_name": "gpu_1x_a10",
                                                    "ssh_key_names": ["me"]})
    emu.configure(quota=None, account_status="invalid-address")
    emu.api("POST", "/instance-operations/launch", {"region_name": "us-east-1", "instance_type_name": "gpu_1x_a10",
                                                    "ssh_key_names": ["me"]})
    emu.api("POST", "/filesystems", {"name": "other", "region": "us-east-1"})
    emu.configure(account_status="inactive")
    emu.api("GET", "/instances")
    emu.configure(account_status="active")
    requests.get(emu.url + "/instance-types", timeout=5)  # no key: 401
    provider.terminate([inst.id])
    emu.advance(10)
    provider.delete_file_system(fs.id)
    statuses = {(e["path"], e["status"]) for e in assert_log_conforms(emu, checker)}
    for wanted in [("/instance-operations/launch", 200), ("/instance-operations/launch", 400),
                   ("/instance-operations/launch", 404), ("/instance-operations/launch", 403),
                   ("/filesystems", 400), ("/instances", 403), ("/instance-types", 401)]:
        assert wanted in statuses


# -- the fuzzer -------------------------------------------------------------------------------------

def schema_strategy(schema, spec, overrides, depth=0):
    """A hypothesis strategy for instances of a (request) JSON schema of the description."""
    if "$ref" in schema:
        target = spec
        for part in schema["$ref"].lstrip("#/").split("/"):
            target = target[part]
        return schema_strategy(target, spec, overrides, depth)
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "anyOf" in schema:
        return st.one_of([schema_strategy(s, spec, overrides, depth + 1) for s in schema["anyOf"]])
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        required = set(schema.get("required", []))

        def prop(name, sub):
            if name in EXCLUSIVE:
                return overrides[name]
            base = schema_strategy(sub, spec, overrides, depth + 1)
            return st.one_of(overrides[name], base) if name in overrides else base

        return st.fixed_dictionaries({k: prop(k, v) for k, v in props.items() if k in required},
                                     optional={k: prop(k, v) for k, v in props.items() if k not in required})
    if kind == "array":
        return st.lists(schema_strategy(schema["items"], spec, overrides, depth + 1),
                        min_size=schema.get("minItems", 0), max_size=min(schema.get("maxItems", 3), 3))
    if kind == "integer":
        return st.integers(schema.get("minimum", -(2 ** 31)), schema.get("maximum", 2 ** 31))
    if kind == "boolean":
        return st.booleans()
    lo, hi = schema.get("minLength", 0), schema.get("maxLength", 40)
    if "pattern" in schema:
        return st.from_regex(schema["pattern"], fullmatch=True).filter(lambda s: lo <= len(s) <= hi)
    return st.text(min_size=lo, max_size=min(hi, 40))


#: Firewall rules as the description's prose requires (ports for tcp/udp/all, none for icmp, a CIDR).
VALID_RULE = st.one_of(
    st.fixed_dictionaries({"protocol": st.sampled_from(["tcp", "udp", "all"]), "port_range": st.just([22, 443]),
                           "source_network": st.sampled_from(["0.0.0.0/0", "10.0.0.0/8", "1.2.3.4"]),
                           "description": st.text(max_size=20)}),
    st.fixed_dictionaries({"protocol": st.just("icmp"), "source_network": st.just("0.0.0.0/0"),
                           "description": st.just("ping")}),
)
#: Properties drawn only from their override (their schema alone allows what the prose forbids).
EXCLUSIVE = {"rules", "data"}
IDS = st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=32)


@pytest.fixture(scope="module")
def fuzz_target(spec):
    from soong.plugins.lambda_cloud.emulator import RateLimit, create_app

    app = create_app(api_key="fuzz-key", boot_delay=0.0, general_limit=RateLimit(0, 0), launch_limit=RateLimit(0, 0),
                     random_seed=5, default_capacity=1000)
    with serve_in_thread(app) as handle:
        handle.add_ssh_key("me")
        handle.add_file_system("models", "us-east-1")
        yield handle


def _existing(choice, known):
    """``@k`` picks the k-th known id (drawn independently of the changing state), else the text itself."""
    if choice.startswith("@"):
        return known[int(choice[1:]) % len(known)] if known else "none"
    return choice


def _body_schema(op):
    return op["requestBody"]["content"]["application/json"]["schema"]


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_fuzzed_requests_get_documented_answers(checker, fuzz_target, data):
    handle, spec = fuzz_target, checker.spec
    types = list(handle.app.state.instance_types)
    overrides = {
        "instance_type_name": st.sampled_from(types),
        "ssh_key_names": st.just(["me"]),
        "file_system_names": st.sampled_from([[], ["models"]]),
        "instance_ids": st.lists(st.sampled_from(["@0", "@1", "@2"]), max_size=2),
        "rules": st.lists(VALID_RULE, max_size=2),
        "data": st.lists(VALID_RULE, max_size=2),
        "user_data": st.just("#cloud-config\n"),
    }
    operations = [(p, m) for p, ops in spec["paths"].items() for m in ops]
    template, method = data.draw(st.sampled_from(operations), label="operation")
    op = spec["paths"][template][method]
    path = template
    state = handle.app.state
    known = list(state.instances) + list(state.file_systems) + list(state.ssh_keys) + list(state.firewall.rulesets)
    if "{id}" in path:
        chosen = data.draw(st.one_of(IDS, st.sampled_from(["@0", "@1", "@2", "@3"])), label="id")
        path = path.replace("{id}", _existing(chosen, known))
    body = None
    if "requestBody" in op:
        body = data.draw(schema_strategy(_body_schema(op), spec, overrides), label="body")
        if isinstance(body, dict) and isinstance(body.get("instance_ids"), list):
            body["instance_ids"] = [_existing(i, list(state.instances)) for i in body["instance_ids"]]
    params = {}
    for param in op.get("parameters", []):
        if param["in"] == "query" and data.draw(st.booleans()):
            params[param["name"]] = data.draw(st.one_of(st.text(max_size=10), st.just("2025-01-01T00:00:00Z")))
    auth = data.draw(st.sampled_from(["good", "good", "good", "wrong", "none"]), label="auth")
    headers = {"good": {"Authorization": "Bearer fuzz-key"}, "wrong": {"Authorization": "Bearer nope"}, "none": {}}[auth]
    resp = requests.request(method.upper(), handle.base_url + path, json=body, params=params, headers=headers, timeout=10)
    assert resp.status_code < 500, resp.text
    problems = checker.problems(method, path.split("?")[0], resp.status_code, resp.json(),
                                resp.headers.get("content-type"))
    assert problems == []

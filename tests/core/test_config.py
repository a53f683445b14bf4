"""Configuration: layering, validation messages, atomic private writes, property tests."""

from __future__ import annotations

import os
import stat

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from soong.core import config as config_module
from soong.core.config import Config, read_config_file, validate_file_data
from soong.core.declarations import schema as declared_schema
from soong.core.errors import ConfigError
from soong.core.paths import Paths
from soong.core.plugins import BUILTIN_ORDER, PluginHost

#: Core's keys and the built-in plugins' (the lambda.* keys are the Lambda plugin's).
SCHEMA = declared_schema(PluginHost(env={"SOONG_LOAD_PLUGINS": ",".join(BUILTIN_ORDER)}))
KEYS = SCHEMA.keys
KEYS_BY_PATH = SCHEMA.by_path


def load_config(*args, **kwargs):
    return config_module.load_config(*args, schema=SCHEMA, **kwargs)


def save_config(values, path):
    return config_module.save_config(values, path, schema=SCHEMA)


def _paths(home):
    return Paths.from_env({"HOME": str(home)})


def test_defaults_without_a_file(isolated_env):
    config = load_config(_paths(isolated_env), env={})
    assert config.get("lambda.api_url") == "https://cloud.lambda.ai/api/v1"
    assert config.get("defaults.lease_hours") == 4.0 and config.source("defaults.lease_hours") == "default"


def test_precedence_flag_over_env_over_file(isolated_env):
    paths = _paths(isolated_env)
    save_config({"defaults.lease_hours": 2.0, "lambda.api_url": "http://file.example/api/v1"}, paths.config_file)
    env = {"SOONG_DEFAULTS_LEASE_HOURS": "3"}
    config = load_config(paths, env=env)
    assert config.get("defaults.lease_hours") == 3.0 and config.source("defaults.lease_hours") == "env"
    assert config.get("lambda.api_url") == "http://file.example/api/v1"
    flagged = config.with_flags(defaults__lease_hours=6)
    assert flagged.get("defaults.lease_hours") == 6.0 and flagged.source("defaults.lease_hours") == "flag"
    # flags never rewrite the file
    assert read_config_file(paths.config_file)[0]["defaults.lease_hours"] == 2.0


def test_env_api_url_override(isolated_env):
    config = load_config(_paths(isolated_env), env={"SOONG_LAMBDA_API_URL": "http://127.0.0.1:9/api/v1"})
    assert config.get("lambda.api_url") == "http://127.0.0.1:9/api/v1"


def test_unknown_key_is_a_warning_with_did_you_mean():
    values, warnings = validate_file_data({"defaults": {"lease_hour": 3}})
    assert values == {}
    assert warnings and "did you mean 'defaults.lease_hours'" in warnings[0]


@pytest.mark.parametrize(
    "data, message",
    [
        ({"defaults": {"lease_hours": "four"}}, "'defaults.lease_hours' must be a number"),
        ({"defaults": {"lease_hours": 12}}, "'defaults.lease_hours' must be at most 8"),
        ({"ssh": {"port": 0}}, "'ssh.port' must be at least 1"),
        ({"services": {"n8n": "maybe"}}, "'services.n8n' must be true or false"),
        ({"secrets": {"backend": "vault"}}, "'secrets.backend' must be one of keyring, file"),
        ({"lambda": ["x"]}, "section 'lambda' must be a mapping"),
        (["a"], "top level must be a mapping"),
    ],
)
def test_invalid_values_name_the_key(data, message):
    with pytest.raises(ConfigError) as info:
        validate_file_data(data, schema=SCHEMA)
    assert message in str(info.value)


def test_save_is_private_and_atomic(isolated_env):
    path = _paths(isolated_env).config_file
    save_config({"defaults.model": "mistral-7b"}, path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["config.yaml"]  # no temp file left behind


def test_malformed_file_is_never_overwritten(isolated_env):
    path = _paths(isolated_env).config_file
    path.parent.mkdir(parents=True)
    path.write_text("defaults: {lease_hours: [\n")
    with pytest.raises(ConfigError) as info:
        load_config(_paths(isolated_env), env={})
    assert str(path) in str(info.value) and "line" in str(info.value)
    with pytest.raises(ConfigError):
        save_config({"defaults.model": "x"}, path)
    assert path.read_text() == "defaults: {lease_hours: [\n"


def test_invalid_value_in_save_writes_nothing(isolated_env):
    path = _paths(isolated_env).config_file
    with pytest.raises(ConfigError):
        save_config({"ssh.port": 70000}, path)
    assert not path.exists()


def test_legacy_config_is_read_with_a_hint(isolated_env):
    legacy = isolated_env / ".config" / "gpu-dashboard" / "config.yaml"
    legacy.parent.mkdir(parents=True)
    legacy.write_text("lambda:\n  default_region: us-east-1\n")
    config = load_config(Paths.from_env({"HOME": str(isolated_env)}), env={})
    assert config.get("lambda.default_region") == "us-east-1"
    assert any("soong config migrate" in w for w in config.warnings)


def test_profiles_apply_between_file_and_env(isolated_env):
    paths = _paths(isolated_env)
    save_config({"profiles": {"cheap": {"defaults": {"model": "mistral-7b"}}}}, paths.config_file)
    env = {"HOME": str(isolated_env)}
    config = load_config(env=env, profile="cheap")
    assert config.get("defaults.model") == "mistral-7b" and config.source("defaults.model") == "profile"
    with pytest.raises(ConfigError, match="unknown profile 'nope'"):
        load_config(env=env, profile="nope")


# --- property tests ----------------------------------------------------------------------

def _value_strategy(key):
    if key.kind == "bool":
        return st.booleans()
    if key.kind == "int":
        return st.integers(int(key.minimum if key.minimum is not None else -10**6),
                           int(key.maximum if key.maximum is not None else 10**6))
    if key.kind == "float":
        return st.floats(key.minimum if key.minimum is not None else -1e6,
                         key.maximum if key.maximum is not None else 1e6, allow_nan=False)
    if key.kind == "str":
        if key.choices:
            return st.sampled_from(key.choices)
        if key.path in ("lambda.api_url", "huggingface.endpoint"):  # URL-checked keys
            return st.from_regex(r"\Ahttps?://[a-z0-9.]{1,20}(:[0-9]{2,5})?/api/v1\Z")
        return st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,20}\Z")
    if key.path == "tunnel.direct_exec":  # a command: a list of words
        return st.lists(st.from_regex(r"\A[a-z/][a-z0-9/._-]{0,10}\Z"), max_size=3)
    if key.kind == "names":
        name = st.from_regex(r"\A[a-z][a-z0-9-]{0,10}\Z")
        return st.lists(st.builds(lambda a, b: f"{a}:{b}", name, name), max_size=3)
    if key.kind == "list":
        return st.lists(st.fixed_dictionaries({"id": st.from_regex(r"\A[a-z][a-z0-9-]{0,10}\Z")}), max_size=3)
    return st.dictionaries(st.from_regex(r"\A[a-z][a-z0-9-]{0,8}\Z"),
                           st.fixed_dictionaries({"defaults": st.fixed_dictionaries({"lease_hours": st.sampled_from([1.0, 2.0])})}),
                           max_size=2)


config_values = st.fixed_dictionaries({}, optional={key.path: _value_strategy(key) for key in KEYS})


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(values=config_values)
def test_load_of_save_is_identity(isolated_env, values):
    path = _paths(isolated_env).config_file
    if path.exists():
        path.unlink()
    save_config(values, path)
    loaded = load_config(_paths(isolated_env), env={})
    assert loaded.file_values == {k: KEYS_BY_PATH[k].coerce(v) for k, v in values.items()}


yaml_documents = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=15), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(document=yaml_documents | st.dictionaries(st.sampled_from(["lambda", "defaults", "ssh", "tunnel", "budget"]),
                                                  st.dictionaries(st.sampled_from([k.path.split(".")[-1] for k in KEYS]),
                                                                  yaml_documents, max_size=4), max_size=4))
def test_arbitrary_yaml_only_raises_config_error(document):
    try:
        validate_file_data(document, schema=SCHEMA)
    except ConfigError:
        pass


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200))
def test_arbitrary_text_only_raises_config_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("cfg") / "config.yaml"
    path.write_text(text)
    try:
        read_config_file(path)
    except ConfigError:
        pass


def test_config_object_is_independent_of_os_environ(monkeypatch):
    monkeypatch.setenv("SOONG_DEFAULTS_MODEL", "from-os-env")
    assert Config({}, env={}).get("defaults.model") != "from-os-env"


def test_profile_own_file_overrides_its_defaults_and_is_what_it_writes(isolated_env):
    base = _paths(isolated_env)
    save_config({"defaults.model": "llama-3.1-8b", "profiles": {"lab": {"ssh": {"user": "lab"}}}}, base.config_file)
    lab_paths = Paths.from_env({"HOME": str(isolated_env)}, "lab")
    assert lab_paths.config_file != base.config_file
    config = load_config(lab_paths, env={"HOME": str(isolated_env)}, profile="lab")
    assert config.get("ssh.user") == "lab" and config.get("defaults.model") == "llama-3.1-8b"
    save_config(config.updated_file_values({"ssh.user": "mine"}), config.path)
    again = load_config(lab_paths, env={"HOME": str(isolated_env)}, profile="lab")
    assert again.get("ssh.user") == "mine" and again.source("ssh.user") == "file"
    assert read_config_file(base.config_file)[0]["profiles"]["lab"] == {"ssh": {"user": "lab"}}

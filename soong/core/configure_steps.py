"""The pieces of ``soong configure``: checking the API key, the choices offered, and applying them.

Nothing is changed while the questions are asked: every answer goes into a
:class:`Setup`, and :func:`commit` applies it at the end (secrets to the
keyring, an SSH key upload, a new file system or an SSH-only firewall at the
provider, the changed keys to the config file, written atomically). Ctrl-C
before that leaves everything as it was; keys that were not asked about keep
their values.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

from soong.core.errors import ConfigError
from soong.core.prompts import Option

LEASE_CHOICES = (2.0, 4.0, 6.0, 8.0)


@dataclasses.dataclass
class Setup:
    """What configure will apply (see the module docstring)."""

    changes: dict[str, Any] = dataclasses.field(default_factory=dict)
    api_key: str | None = None
    daemon_token: str | None = None
    upload_key: tuple[str, str] | None = None  # (name, public key)
    create_filesystem: tuple[str, str] | None = None  # (name, region)
    firewall_change: Any = None  # a FirewallChange from the provider's ssh_only_change()
    #: Secrets plugins declared with ``ask=True``, as answered (name -> value).
    secrets: dict[str, str] = dataclasses.field(default_factory=dict)


def provider_with_key(context: Any, api_key: str | None) -> Any:
    """The lambda provider using ``api_key`` (not stored anywhere), or the profile's own key when None."""
    if not api_key:
        return context.provider("lambda")
    from soong.core.context import Context
    from soong.core.redact import register_secret

    register_secret(api_key)
    trial = Context(profile=context.profile, env={**context.env, "LAMBDA_API_KEY": api_key}, clock=context.clock,
                    plugin_host=context.plugins, config=context.config)
    return trial.provider("lambda")


def read_public_key(key_path: str) -> tuple[str, Path] | None:
    """The OpenSSH public key beside a private key path (``PATH.pub``, or PATH itself if it is one)."""
    path = Path(key_path).expanduser()
    candidates = [path] if path.suffix == ".pub" else [Path(str(path) + ".pub")]
    for candidate in candidates:
        try:
            text = candidate.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            continue
        if len(text.split()) >= 2 and text.split()[0].startswith(("ssh-", "ecdsa-", "sk-")):
            return text, candidate
    return None


def key_body(public_key: str) -> str:
    """The type and base64 part of an OpenSSH public key (the comment dropped)."""
    return " ".join(public_key.split()[:2])


def match_key(public_key: str, account_keys: Sequence[Any]) -> Any | None:
    """The account key with the same type and body as ``public_key``, if any."""
    wanted = key_body(public_key)
    for key in account_keys:
        if key_body(key.public_key) == wanted:
            return key
    return None


def model_options(models: dict[str, Any]) -> list[Option]:
    """The catalog as options, by id."""
    return [Option(spec.id, spec.id, (spec.good_for or "")[:60]) for spec in sorted(models.values(), key=lambda s: s.id)]


def gpu_options(spec: Any, types: Sequence[Any], context_length: int | None = None) -> list[Option]:
    """Types that fit ``spec`` cheapest first, the recommended one marked, then 'decide at each start'."""
    from soong.core.recommend import recommend

    options = [Option(None, "decide at each start", "the recommended type with capacity then")]
    ranked = recommend(spec, types, context=context_length)
    best = recommended_type(spec, types, context_length)
    for rec in ranked:
        itype = rec.instance_type
        regions = ", ".join(r.name for r in itype.regions_with_capacity) or "no capacity now"
        mark = "  <- recommended" if best is not None and itype.name == best.name else ""
        options.append(Option(itype.name, f"{itype.name:<24} ${itype.price_per_hour:>6.2f}/h  {itype.gpu_count}x "
                                          f"{itype.gpu_model}", f"[{regions}]{mark}"))
    return options


def recommended_type(spec: Any, types: Sequence[Any], context_length: int | None = None) -> Any | None:
    """The type ``soong start`` would pick now: the cheapest that fits, one with capacity first."""
    from soong.core.recommend import recommend

    ranked = [r.instance_type for r in recommend(spec, types, context=context_length)]
    return next((t for t in ranked if t.has_capacity()), ranked[0] if ranked else None)


def region_options(type_name: str | None, types: Sequence[Any]) -> list[Option]:
    """Regions with capacity for the type first, then every other region the provider names."""
    with_capacity: list[str] = []
    for itype in types:
        if itype.name == type_name:
            with_capacity = [r.name for r in itype.regions_with_capacity]
    others = sorted({r.name for t in types for r in t.regions_with_capacity} - set(with_capacity))
    options = [Option(None, "any region with capacity", "chosen at each start")]
    options += [Option(name, name, "capacity now" + (f" for {type_name}" if type_name else "")) for name in with_capacity]
    options += [Option(name, name, "") for name in others]
    return options


def lease_options(price_cents: int | None) -> list[Option]:
    """2, 4, 6 and 8 hours, each with what it costs at ``price_cents`` per hour."""
    out = []
    for hours in LEASE_CHOICES:
        note = f"${price_cents / 100 * hours:.2f}" if price_cents is not None else ""
        out.append(Option(hours, f"{hours:g} h", note))
    return out


def check_lease(hours: float) -> float:
    """``hours`` if it is a valid lease, else ConfigError."""
    from soong.core.config_schema import KEYS_BY_PATH

    return KEYS_BY_PATH["defaults.lease_hours"].coerce(hours)


def plugin_questions(context: Any) -> tuple[list[Any], list[Any]]:
    """The plugin keys and secrets declared with ``ask=True``, in the order the plugins declared them."""
    config = context.config
    keys = [key for key in config.schema.keys if key.ask and config.schema.owner(key.path) is not None]
    secrets = [secret for _plugin, secret in context.plugins.secrets() if secret.ask]
    return keys, secrets


def key_answer(key: Any, text: str) -> Any:
    """The value ``text`` sets ``key`` to (empty: unset, for a key that may be empty); ConfigError when refused."""
    if not text and key.nullable:
        return None
    return key.coerce(text, from_text=True)


@dataclasses.dataclass(frozen=True)
class FirewallPlan:
    """The inbound firewall launches get and the SSH-only change on offer.

    ``found`` is None when the provider cannot read its firewall, ``change`` None when
    nothing needs changing or the provider cannot change it. ``note`` is set when the
    region has no firewall at all; ``found`` is then the rules of the other regions.
    """

    found: Any = None
    change: Any = None
    note: str | None = None


def firewall_plan(provider: Any, region: str | None) -> FirewallPlan:
    """Read the provider's inbound firewall for ``region`` and the change that would leave only SSH open."""
    from soong.core.firewall_check import read_firewall

    found = read_firewall(provider, region)
    note = None
    if found is not None and not found.filtered:
        note = f"{found.scope}: every port an instance there listens on is reachable, whatever the rules say"
        region = None
        found = read_firewall(provider, region)
    if found is None or found.ssh_only:
        return FirewallPlan(found, None, note)
    return FirewallPlan(found, provider.ssh_only_change(region), note)


def commit(context: Any, setup: Setup, provider: Any) -> list[str]:
    """Apply ``setup``: secrets, provider-side changes, then the config file. Returns what was done."""
    from soong.core.config import save_config

    done = []
    if setup.firewall_change is not None:  # first: refused (the rules moved since they were read), nothing changes
        after = provider.apply_firewall_change(setup.firewall_change)
        done.append(f"{after.scope} now let in only SSH"
                    + ("" if after.ssh_only else f" and still: {'; '.join(after.openings())}"))
    store = context.secrets
    if setup.api_key:
        store.set("lambda_api_key", setup.api_key)
        done.append(f"stored the Lambda API key ({store.backend_description()})")
    if setup.daemon_token:
        store.set("daemon_token", setup.daemon_token)
        done.append("stored a new daemon token (shown only by 'soong configure --show-token')")
    for name, value in setup.secrets.items():
        store.set(name, value)
        done.append(f"stored {name} ({store.backend_description()})")
    if setup.upload_key:
        name, public_key = setup.upload_key
        key, _private = provider.add_ssh_key(name, public_key)
        setup.changes["lambda.ssh_key_name"] = key.name
        done.append(f"uploaded your public key to the account as '{key.name}'")
    if setup.create_filesystem:
        name, region = setup.create_filesystem
        fs = provider.create_file_system(name, region)
        setup.changes["lambda.filesystem_name"] = fs.name
        done.append(f"created file system '{fs.name}' in {fs.region}")
    config = context.config
    if config.path is None:
        raise ConfigError("this profile has no config file to write")
    current = {k: config.file_values.get(k) for k in setup.changes}
    if any(current[k] != v for k, v in setup.changes.items()):
        save_config(config.updated_file_values(setup.changes), config.path, schema=config.schema)
        done.append(f"wrote {config.path}")
    return done

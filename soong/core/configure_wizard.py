"""The interactive ``soong configure``: one question per setting, the current value as the default.

Order: API key (checked by a real call), model, GPU (types that fit, cheapest
first, the recommended one marked), region (those with capacity for that GPU
first), file system (existing ones, or create one), lease (2/4/6/8 h with
their cost), SSH key (matched against the account's keys, or uploaded), then
the inbound firewall (when it lets in more than SSH, an offer to leave only
22/tcp open, with what that changes and for which instances), then every config
key and secret a plugin declared with ``ask=True`` (a third-party provider's API
URL and key, for example). The answers only fill a
:class:`~soong.core.configure_steps.Setup`; nothing is changed until the caller
commits it.
"""

from __future__ import annotations

import re
import socket
from typing import Any

from soong.core import configure_steps as steps
from soong.core.errors import AuthError, SoongError
from soong.core.prompts import Option, Prompter

_FS_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,59}$")


class Wizard:
    """Asks the questions for one profile (``context``) through ``prompter``."""

    def __init__(self, context: Any, prompter: Prompter) -> None:
        self.context = context
        self.ask = prompter
        self.config = context.config
        self.provider: Any = None
        self.types: list[Any] = []

    def run(self, setup: steps.Setup) -> steps.Setup:
        """Every question in order; returns ``setup`` filled in."""
        self.api_key(setup)
        spec = self.model(setup)
        gpu = self.gpu(setup, spec)
        region = self.region(setup, gpu)
        self.filesystem(setup, region)
        self.lease(setup, gpu)
        self.ssh_key(setup)
        self.firewall(setup)
        self.plugin_settings(setup)
        return setup

    def _current(self, key: str) -> Any:
        return self.config.get(key)

    def api_key(self, setup: steps.Setup) -> None:
        """Ask for the key until one works (Enter keeps a stored one that works)."""
        stored = self.context.secrets.get("lambda_api_key")
        for _attempt in range(3):
            prompt = "Lambda API key (Enter keeps the stored one)" if stored else "Lambda API key"
            candidate = self.ask.secret(prompt) or None
            if candidate is None and not stored:
                self.ask.say("  an API key is needed: create one at https://cloud.lambda.ai/api-keys")
                continue
            provider = steps.provider_with_key(self.context, candidate)
            try:
                self.types = provider.list_instance_types()
            except AuthError:
                self.ask.say("  Lambda did not accept that key; try again")
                continue
            self.provider = provider
            setup.api_key = candidate
            self.ask.say(f"  the key works ({len(self.types)} instance types listed)")
            return
        raise AuthError("no working API key after 3 tries; nothing was changed")

    def model(self, setup: steps.Setup) -> Any:
        """The default model."""
        models = self.context.models()
        current = self._current("defaults.model")
        chosen = self.ask.choose("Default model:", steps.model_options(models),
                                 default=current if current in models else None)
        setup.changes["defaults.model"] = chosen
        return models[chosen]

    def gpu(self, setup: steps.Setup, spec: Any) -> Any:
        """The default instance type (or none: decide at each start)."""
        options = steps.gpu_options(spec, self.types)
        current = self._current("defaults.gpu")
        default = current if any(o.value == current for o in options) else None
        chosen = self.ask.choose(f"Default GPU for {spec.id} (types that fit, cheapest first):", options, default=default)
        setup.changes["defaults.gpu"] = chosen
        if chosen is None:
            return steps.recommended_type(spec, self.types)
        return next(t for t in self.types if t.name == chosen)

    def region(self, setup: steps.Setup, itype: Any) -> str | None:
        """The preferred region."""
        options = steps.region_options(itype.name if itype else None, self.types)
        current = self._current("lambda.default_region")
        default = current if any(o.value == current for o in options) else None
        chosen = self.ask.choose("Preferred region (a region without capacity fails over at start):", options,
                                 default=default)
        setup.changes["lambda.default_region"] = chosen
        return chosen

    def filesystem(self, setup: steps.Setup, region: str | None) -> None:
        """Attach an existing file system, create one, or none."""
        try:
            systems = self.provider.list_file_systems()
        except SoongError as exc:
            self.ask.say(f"  could not list file systems ({exc}); leaving lambda.filesystem_name as it is")
            return
        options = [Option(None, "none", "models download to the instance's own disk each time")]
        options += [Option(fs.name, fs.name, f"{fs.region}" + ("" if region in (None, fs.region) else
                                                                " (another region: launches will go there)"))
                    for fs in systems]
        options.append(Option("__create__", "create a new one", f"in {region or 'a region you choose'}"))
        current = self._current("lambda.filesystem_name")
        chosen = self.ask.choose("Persistent file system (keeps downloaded models between instances):", options,
                                 default=current if any(o.value == current for o in options) else None)
        if chosen == "__create__":
            name = self.ask.text("Name of the new file system", "soong-models",
                                 check=lambda v: None if _FS_NAME.match(v) else "letters, digits, '-' and '_' only")
            fs_region = region or self.ask.text("Region of the new file system", "us-east-1")
            setup.create_filesystem = (name, fs_region)
            return
        setup.changes["lambda.filesystem_name"] = chosen
        fs = next((f for f in systems if f.name == chosen), None)
        if fs is not None and region not in (None, fs.region):
            self.ask.say(f"  '{fs.name}' is in {fs.region}: the preferred region becomes {fs.region}")
            setup.changes["lambda.default_region"] = fs.region

    def lease(self, setup: steps.Setup, itype: Any) -> None:
        """The default lease."""
        price = itype.price_cents_per_hour if itype else None
        current = float(self._current("defaults.lease_hours"))
        options = steps.lease_options(price)
        if current not in steps.LEASE_CHOICES:
            options.append(Option(current, f"{current:g} h", "(current)"))
        on = f" (cost on {itype.name})" if itype else ""
        setup.changes["defaults.lease_hours"] = self.ask.choose(f"Lease of a new instance{on}:", options, default=current)

    def ssh_key(self, setup: steps.Setup) -> None:
        """The local key soong connects with, and the account key it matches (uploaded if missing)."""
        path = self.ask.text("Private SSH key soong connects with", self._current("ssh.key_path"))
        setup.changes["ssh.key_path"] = path
        account = self.provider.list_ssh_keys()
        found = steps.read_public_key(path)
        if found is None:
            self.ask.say(f"  no public key beside {path} (.pub); create one with: ssh-keygen -t ed25519 -f {path}")
            if account:
                names = [Option(k.name, k.name) for k in account]
                setup.changes["lambda.ssh_key_name"] = self.ask.choose(
                    "Account key to launch with (it must belong to that private key):", names,
                    default=self._current("lambda.ssh_key_name"))
            return
        public_key, pub_path = found
        match = steps.match_key(public_key, account)
        if match is not None:
            self.ask.say(f"  {pub_path} is the account's key '{match.name}'")
            setup.changes["lambda.ssh_key_name"] = match.name
            return
        if self.ask.yes_no(f"  {pub_path} is not in the account. Upload it?", default=True):
            default = f"soong-{socket.gethostname().split('.')[0]}"[:40]
            name = self.ask.text("Name for the key in the account", default)
            setup.upload_key = (name, public_key)

    def firewall(self, setup: steps.Setup) -> None:
        """Check the inbound firewall; offer to leave only SSH open when it lets in more (made at the end)."""
        from soong.core.firewall_check import change_lines, openings_text

        region = setup.changes.get("lambda.default_region", self._current("lambda.default_region"))
        try:
            plan = steps.firewall_plan(self.provider, region)
        except SoongError as exc:
            self.ask.say(f"  could not read the inbound firewall ({exc}); not checked")
            return
        found, change = plan.found, plan.change
        if plan.note:
            self.ask.say(f"  firewall: {plan.note}; launches in other regions get the rules below")
        if found is None:
            return
        if found.ssh_only:
            self.ask.say(f"  firewall: {found.scope} let in only SSH (22/tcp)")
            return
        self.ask.say(f"  firewall: {found.scope} let in more than SSH: {openings_text(found)}")
        if change is None:
            self.ask.say("  soong cannot change these rules; close the ports in the provider's console")
            return
        for line in change_lines(change):
            self.ask.say(f"    {line}")
        if self.ask.yes_no("  Leave only SSH (22/tcp) open?", default=False):
            setup.firewall_change = change

    def plugin_settings(self, setup: steps.Setup) -> None:
        """Each key and secret plugins declared with ``ask=True``: Enter keeps the current value."""
        from soong.core.errors import ConfigError

        keys, secrets = steps.plugin_questions(self.context)
        for key in keys:
            current = self._current(key.path)
            shown = ",".join(current) if isinstance(current, list) else ("" if current is None else str(current))

            def check(text: str, _key: Any = key) -> str | None:
                try:
                    steps.key_answer(_key, text)
                except ConfigError as exc:
                    return str(exc)
                return None

            answer = self.ask.text(f"{key.doc} ({key.path}{', Enter: none' if key.nullable else ''})", shown or None,
                                   check=check)
            value = steps.key_answer(key, answer)
            if value != current:
                setup.changes[key.path] = value
        store = self.context.secrets
        for secret in secrets:
            stored = store.get(secret.name)
            value = self.ask.secret(f"{secret.doc} ({secret.name}{'; Enter keeps the stored one' if stored else ''})")
            if value:
                setup.secrets[secret.name] = value

"""``soong providers``: the providers plugins registered, and whether each is ready to use."""

from __future__ import annotations

from soong.core.command import Lister


def _readiness(context, provider) -> tuple[str, str]:
    """``("yes"|"no", detail)``: whether ``provider`` can launch instances that can end themselves."""
    from soong.core.errors import SoongError

    try:
        ending = provider.self_termination()
    except SoongError as exc:
        return "no", str(exc)
    if ending is None:
        return "no", "its instances cannot terminate themselves, so soong will not launch on it"
    try:
        has_key = bool(context.secrets.get(ending.api_key_secret))
    except SoongError as exc:
        return "no", f"cannot read the secret {ending.api_key_secret}: {exc}"
    if not has_key:
        return "no", f"no {ending.api_key_secret} (soong secrets set {ending.api_key_secret}, or soong configure)"
    return "yes", ending.api_url


class ListProviders(Lister):
    """List the providers with the plugin and package that register each, and whether each is configured.

    Configured means: its instances can terminate themselves (the provider says how) and the
    secret they do it with is set here. Nothing is sent to any provider's API.
    """

    def take_action(self, parsed_args):
        from soong.core.errors import SoongError

        context = self.context
        host = context.plugins
        rows = []
        for name in sorted(host.providers()):
            owner = host.owner("providers", name) or ""
            info = host.infos.get(owner)
            package = f"{info.distribution} {info.version}".strip() if info is not None else ""
            try:
                configured, detail = _readiness(context, context.provider(name))
            except SoongError as exc:
                configured, detail = "no", str(exc)
            rows.append((name, owner, package, configured, detail))
        return ("Name", "Plugin", "Package", "Configured", "Detail"), rows

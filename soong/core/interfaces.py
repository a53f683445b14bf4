"""The interfaces a plugin implements: providers, tunnel backends and cost sinks.

Plugins register *classes* for these three kinds (the host builds them with a
:class:`~soong.core.context.Context` when a command needs one) and
:class:`~soong.core.types.ModelSpec` *instances* for models. The host checks each
registration against these abstract base classes; see ``docs/plugins.md``.
"""

from __future__ import annotations

import abc
import contextlib
import re
import secrets
from typing import TYPE_CHECKING, Any, Iterator, Sequence

if TYPE_CHECKING:
    from soong.core.context import Context
    from soong.core.firewall import FirewallChange, InboundFirewall
    from soong.core.images import ImageFamily, MachineImage
    from soong.core.types import (
        CostEvent,
        FileSystem,
        Forward,
        Instance,
        InstanceType,
        LaunchRequest,
        RemoteResult,
        SelfTermination,
        SshKey,
        TunnelRecord,
        TunnelTarget,
    )

_TOKEN = re.compile(r"^[a-z0-9]{6,16}$")


class Provider(abc.ABC):
    """A cloud that can launch, list and terminate GPU instances.

    Money is spent through this interface, so implementations must follow its
    rules: :meth:`launch` is never retried blindly (an ambiguous failure is resolved
    by looking the instance up by its unique name, :meth:`instance_name`);
    :meth:`terminate` raises on any failure and never reports success it has not
    seen; :meth:`self_termination` must be set for instances to end themselves.

    Everything about a launch that differs between clouds is asked of the provider:
    the unique launch name, the request ``start --dry-run`` prints, the login user,
    the region, file system and SSH key launches use by default (from the provider's
    own config keys, declared through ``soong_config_keys``), the machine image, and
    the GPU facts of each instance type. Core and the commands import no provider.
    """

    #: Unique provider name, e.g. ``lambda``.
    name: str = ""
    #: Longest instance name the provider accepts; :meth:`instance_name` cuts the prefix to fit.
    name_limit: int = 64
    #: The provider's own config keys holding the region launches prefer, the persistent file
    #: system they attach and the account SSH key they use (None: no such setting). ``start``
    #: reads them through :meth:`default_region`, :meth:`default_filesystem` and
    #: :meth:`default_ssh_key_name`; ``configure`` writes them. Declare them with ``soong_config_keys``.
    region_key: str | None = None
    filesystem_key: str | None = None
    ssh_key_name_key: str | None = None

    def __init__(self, context: "Context") -> None:
        self.context = context

    @abc.abstractmethod
    def list_instance_types(self) -> list["InstanceType"]:
        """Every instance type with its price and the regions with capacity now."""

    @abc.abstractmethod
    def list_instances(self) -> list["Instance"]:
        """Every instance the account has that is not yet gone."""

    @abc.abstractmethod
    def get_instance(self, instance_id: str) -> "Instance":
        """One instance; raises :class:`~soong.core.errors.ApiNotFoundError` when unknown."""

    @abc.abstractmethod
    def launch(self, request: "LaunchRequest") -> "Instance":
        """Launch exactly one instance and return it (status usually ``booting``).

        Raises :class:`~soong.core.errors.CapacityError` when there is no capacity,
        and :class:`~soong.core.errors.AmbiguousLaunchError` when it cannot tell
        whether the instance exists.
        """

    @abc.abstractmethod
    def terminate(self, instance_ids: Sequence[str]) -> list["Instance"]:
        """Ask for termination; return the instances as the provider reports them after.

        Raises on any failure; never returns normally unless the provider accepted it.
        """

    @abc.abstractmethod
    def list_ssh_keys(self) -> list["SshKey"]:
        """The account's SSH public keys."""

    @abc.abstractmethod
    def list_file_systems(self) -> list["FileSystem"]:
        """The account's persistent file systems."""

    # -- naming and the launch request -----------------------------------------------------------
    def new_token(self) -> str:
        """A fresh launch token (default: 12 hex digits), unique per launch.

        Money rule: the token makes the instance's name unique (:meth:`instance_name`),
        and that name is how a launch that failed ambiguously, or a process killed
        mid-launch, is found again; the ledger records it before the launch is sent.
        """
        return secrets.token_hex(6)

    def instance_name(self, name: str, token: str) -> str:
        """The name a launch gives its instance: ``<name>-<token>``, the prefix cut to :attr:`name_limit`.

        Must be a pure function of its arguments: soong writes it to the ledger before
        the launch and matches it against :meth:`list_instances` afterwards. Raises
        :class:`~soong.core.errors.UsageError` for a token :meth:`new_token` could not
        have made (6-16 lower-case letters or digits).
        """
        from soong.core.errors import UsageError

        if not _TOKEN.match(token or ""):
            raise UsageError(f"invalid launch token {token!r} (6-16 lower-case letters or digits)")
        room = self.name_limit - len(token) - 1
        return f"{name[:room]}-{token}" if name else token

    def launch_preview(self, request: "LaunchRequest") -> tuple[str, dict[str, Any]]:
        """What ``start --dry-run`` prints: ``(the call, the request body)`` :meth:`launch` would send.

        Must not touch the network and must name the instance as :meth:`instance_name`
        does. ``user_data`` in the body is replaced by its size for display (it is
        printed after the body with secrets masked). The default shows the
        :class:`~soong.core.types.LaunchRequest` fields; a provider shows its real body.
        """
        import dataclasses

        body = {k: v for k, v in dataclasses.asdict(request).items() if v not in (None, (), {})}
        body["name"] = self.instance_name(request.name, request.token or self.new_token())
        body.pop("token", None)
        return f"{self.name} launch", body

    # -- reaching and configuring its instances -------------------------------------------------
    def ssh_user(self) -> str | None:
        """The login user on the provider's instances (``ubuntu`` on Lambda's images).

        Config key ``ssh.user`` overrides it. Default None: the provider does not say,
        and soong refuses to launch or connect until ``ssh.user`` is set (a wrong user
        would leave the bootstrap's services without their owner).
        """
        return None

    def tunnel_target(self, instance: "Instance") -> "TunnelTarget":
        """Where a tunnel backend reaches ``instance``: its address and the login user (``ssh.user``, else :meth:`ssh_user`)."""
        from soong.core.types import TunnelTarget

        user = self.context.config.get("ssh.user") or self.ssh_user()
        return TunnelTarget(instance_id=instance.id, host=instance.ip or "", name=instance.name, user=user)

    def _config_value(self, key: str | None) -> Any:
        return self.context.config.get(key) if key else None

    def default_region(self) -> str | None:
        """The region launches prefer (from :attr:`region_key`); None: the first with capacity."""
        return self._config_value(self.region_key)

    def default_filesystem(self) -> str | None:
        """The persistent file system launches attach (from :attr:`filesystem_key`); None: none."""
        return self._config_value(self.filesystem_key)

    def default_ssh_key_name(self) -> str | None:
        """The account SSH key launches use (from :attr:`ssh_key_name_key`); None: the only one, or ask."""
        return self._config_value(self.ssh_key_name_key)

    def self_termination(self) -> "SelfTermination | None":
        """What an instance's daemon needs to terminate itself through this provider's API.

        Money rule: the lease, the idle timeout and the hard limit all end in the
        daemon's own terminate call, so ``start`` refuses to launch on a provider that
        returns None (the default): its instances could not end themselves. Only the
        API URL and the *name* of the secret go here; the value is read at launch.
        """
        return None

    def image_family(self) -> "ImageFamily | None":
        """The image family launches boot (from the provider's settings), with its Python and architectures.

        Optional: the default None means the provider does not choose images; then
        only the serving engine's own needs limit what is offered. Must not touch the
        network. Raise :class:`~soong.core.errors.ConfigError` for a configured family
        the provider cannot describe.
        """
        return None

    def machine_images(self) -> list["MachineImage"]:
        """Every image the provider offers now, by region and architecture (read before each launch).

        Only called when :meth:`image_family` returns a family; the launch request then
        names the image chosen from this list (:attr:`~soong.core.types.LaunchRequest.image`
        is ``{"id": ...}``).
        """
        return []

    def inbound_firewall(self, region: str | None = None) -> "InboundFirewall | None":
        """The inbound firewall rules an instance launched in ``region`` gets (None region: not chosen yet).

        Optional: the default None means the provider cannot tell, and ``start`` and
        ``configure`` skip the firewall check. ``start`` calls it before each launch and
        turns any error into a one-line warning, so it should answer quickly (no long
        retries) and raise rather than guess.
        """
        return None

    def ssh_only_change(self, region: str | None = None) -> "FirewallChange | None":
        """The change that would leave only SSH (22/tcp) open to launches in ``region``, read but not made.

        Optional (default None: the provider cannot change its firewall). None also when
        nothing needs changing. :attr:`FirewallChange.effect` must say precisely which
        instances the change reaches; ``configure`` shows it before asking.
        """
        return None

    def apply_firewall_change(self, change: "FirewallChange") -> "InboundFirewall":
        """Make a change :meth:`ssh_only_change` returned; return the rules as they are after.

        Must refuse (raise) when the rules differ from ``change.before`` by now, so a
        user never approves one change and gets another.
        """
        raise NotImplementedError(f"provider {self.name!r} cannot change its firewall")


class TunnelBackend(abc.ABC):
    """A way to reach an instance's ports (SGLang, n8n, the status daemon) from this machine."""

    #: Unique backend name, e.g. ``plumbum-ssh``.
    name: str = ""

    def __init__(self, context: "Context") -> None:
        self.context = context

    @abc.abstractmethod
    @contextlib.contextmanager
    def open(self, target: "TunnelTarget", forwards: Sequence["Forward"]) -> Iterator[list["Forward"]]:
        """Open forwards for the duration of a ``with`` block; yield them with real local ports."""

    @abc.abstractmethod
    def start(self, target: "TunnelTarget", forwards: Sequence["Forward"]) -> "TunnelRecord":
        """Open a persistent tunnel that outlives the command; return its record."""

    @abc.abstractmethod
    def list(self) -> list["TunnelRecord"]:
        """Every persistent tunnel this backend knows, with whether it is alive."""

    @abc.abstractmethod
    def close(self, instance_id: str) -> bool:
        """Close the persistent tunnel of an instance; False if there was none."""

    @abc.abstractmethod
    def check(self, instance_id: str) -> bool:
        """Whether the persistent tunnel of an instance is up and its ports answer."""

    def run(self, target: "TunnelTarget", argv: Sequence[str], *, stdin: bytes = b"",
            timeout: float = 60.0) -> "RemoteResult":
        """Run ``argv`` on the instance as the login user, with ``stdin`` as its standard input.

        This is how soong delivers a secret after boot (the Hugging Face token, and the
        Lambda API key with ``secrets.api_key_delivery: ssh``): the secret travels only
        on ``stdin``, so an implementation must never put ``stdin`` on a command line,
        in a file or in a log. Return the command's exit status and output (a failing
        command is a result, not an exception); raise
        :class:`~soong.core.errors.UnreachableError` when the instance cannot be
        reached or the command did not finish within ``timeout`` seconds.

        Optional: the default raises UnreachableError, meaning this backend cannot run
        commands (soong then cannot deliver secrets through it and says so).
        """
        from soong.core.errors import UnreachableError

        raise UnreachableError(f"the tunnel backend '{self.name}' cannot run commands on an instance")

    def forget(self, instance_id: str) -> None:
        """Drop what the backend remembers about an ended instance (e.g. its SSH host key).

        Called after the instance is terminated, because addresses get reused.
        Optional: the default does nothing.
        """
        return None

    # -- a shell on the instance (``soong ssh``, ``soong ssh-config``); optional -------------------
    def shell_argv(self, target: "TunnelTarget", command: Sequence[str] = (), *, tty: bool = False) -> list[str] | None:
        """The command line that runs ``command`` on the instance with this terminal (a login shell when empty).

        ``soong ssh`` runs it and passes its exit status through (replacing itself
        with it for an interactive shell, so the client may ask for a key's
        passphrase). ``tty``: give the remote command a terminal. Raise a soong
        error for what is missing locally (a key file). Optional: the default None
        means this backend cannot open a shell, and ``soong ssh`` uses a backend
        that can.
        """
        return None

    def diagnose(self, target: "TunnelTarget") -> Exception | None:
        """Why a shell on the instance fails: try once, return the explained error, or None when it works.

        ``soong ssh`` calls it before an interactive shell and after a command whose
        client failed (exit status 255 for OpenSSH). Optional: the default None has
        nothing to add.
        """
        return None

    def write_ssh_config(self, targets: Sequence["TunnelTarget"], path: Any, *, include_from: Any = None) -> list[str] | None:
        """For ``soong ssh-config``: write an OpenSSH client config with one ``Host`` per target to ``path`` (0600).

        With ``include_from`` (the user's ``~/.ssh/config``), also include ``path``
        from it, once. Returns what was done, one line each (a line starting with
        ``warning:`` is shown as a warning). Optional: the default None means this
        backend has no OpenSSH client config to offer.
        """
        return None


class CostSink(abc.ABC):
    """A receiver of cost events (launched, extended, activity, terminated, accrued).

    :meth:`emit` may raise; the host queues the event for a later retry and goes on
    with the other sinks, so a sink should raise rather than swallow a failure.
    """

    #: Unique sink name, e.g. ``ledger``.
    name: str = ""

    def __init__(self, context: "Context") -> None:
        self.context = context

    @abc.abstractmethod
    def emit(self, event: "CostEvent") -> None:
        """Record or deliver one event."""

    def close(self) -> None:
        """Release resources (connections, files). Optional."""
        return None

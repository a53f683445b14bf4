"""The interfaces a plugin implements: providers, tunnel backends and cost sinks.

Plugins register *classes* for these three kinds (the host builds them with a
:class:`~soong.core.context.Context` when a command needs one) and
:class:`~soong.core.types.ModelSpec` *instances* for models. The host checks each
registration against these abstract base classes; see ``docs/plugins.md``.
"""

from __future__ import annotations

import abc
import contextlib
from typing import TYPE_CHECKING, Iterator, Sequence

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
        SshKey,
        TunnelRecord,
        TunnelTarget,
    )


class Provider(abc.ABC):
    """A cloud that can launch, list and terminate GPU instances.

    Money is spent through this interface, so implementations must follow its
    rules: :meth:`launch` is never retried blindly (an ambiguous failure is resolved
    by looking the instance up by its unique name); :meth:`terminate` raises on any
    failure and never reports success it has not seen.
    """

    #: Unique provider name, e.g. ``lambda``.
    name: str = ""

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

"""Hook specifications: the public contract between soong and its plugins.

Every hook is prefixed ``soong_``. Registration hooks receive a ``register``
callable; each call is checked by the host (the object must have the interface
of its kind and a unique name, see :mod:`soong.core.plugins`). A plugin may
override a built-in of the same name only on purpose, with
``register(obj, override=True)``. Registration hooks also receive ``context``,
the :class:`soong.core.context.Context` of the command (None when a plugin host
runs without one); as with every pluggy hook, an implementation takes only the
arguments it names, so ``def soong_register_models(register)`` stays valid.

Every hook here is documented, with a runnable example, in ``docs/plugins.md``;
a test keeps the two in step.
"""

from __future__ import annotations

from typing import Any, Callable

import pluggy

hookspec = pluggy.HookspecMarker("soong")

#: The ``register`` callable passed to registration hooks: ``register(obj, *, override=False)``.
Register = Callable[..., None]


@hookspec
def soong_register_providers(register: Register, context: Any) -> None:
    """Register cloud providers.

    :param register: call ``register(ProviderClass)`` once per provider. The class
        must subclass :class:`soong.core.interfaces.Provider`, implement all its
        abstract methods and set a unique ``name``. The host instantiates it with a
        :class:`soong.core.context.Context` when a command needs it.

    :param context: the command's :class:`soong.core.context.Context` (or None).

    The return value is ignored. Called once, when a command first needs the
    plugin registry (never for ``soong --help``). The built-in ``lambda`` provider
    is registered through this hook.
    """


@hookspec
def soong_register_models(register: Register, context: Any) -> None:
    """Register model catalog entries.

    :param register: call ``register(spec)`` once per model, where ``spec`` is a
        :class:`soong.core.types.ModelSpec` with a unique ``id``.

    :param context: the command's :class:`soong.core.context.Context` (or None).

    The return value is ignored. Called once per process when the catalog is first
    needed. The built-in SGLang plugin registers the default catalog; models from
    the config file's ``custom_models`` are added by the host after all plugins.
    """


@hookspec
def soong_register_tunnel_backends(register: Register, context: Any) -> None:
    """Register ways to reach an instance's ports.

    :param register: call ``register(BackendClass)`` once per backend; the class
        subclasses :class:`soong.core.interfaces.TunnelBackend` with a unique
        ``name`` (config key ``tunnel.backend`` selects one).

    :param context: the command's :class:`soong.core.context.Context` (or None).

    The return value is ignored. Called once per process when a command first needs
    a tunnel. The built-ins are ``plumbum-ssh`` and ``direct``.
    """


@hookspec
def soong_register_cost_sinks(register: Register, context: Any) -> None:
    """Register receivers of cost events.

    :param register: call ``register(SinkClass)`` once per sink; the class
        subclasses :class:`soong.core.interfaces.CostSink` with a unique ``name``.

    :param context: the command's :class:`soong.core.context.Context` (or None).

    The return value is ignored. Called once per process when the first cost event
    is emitted. Every registered sink receives every event; a sink that raises has
    the event queued for retry without affecting the others.
    """


@hookspec
def soong_config_keys(register: Register, context: Any) -> None:
    """Declare the plugin's configuration keys, with their types, defaults and docs.

    :param register: call ``register(key)`` once per key, where ``key`` is a
        :class:`soong.core.config_schema.Key` whose path is ``SECTION.NAME``. SECTION
        is the plugin's own name with ``-`` as ``_``, or the name of a provider,
        tunnel backend or cost sink it registers (plugin ``acme``, or package
        ``soong-acme`` registering provider ``acme``, declares ``acme.api_url``); a
        key in another section, one of core's sections or paths, a key declared
        twice, or a default its own rules refuse is an error that fails the plugin
        (its keys are then unknown, see below).
    :param context: the command's :class:`soong.core.context.Context` (or None). The
        configuration is being loaded when this hook runs, so ``context.config``
        is not available here.

    The return value is ignored. Called once per process, when the configuration
    is first loaded, so it must be quick and must not touch the network. A
    declared key works like core's: ``soong config set``, ``SOONG_<SECTION>_<NAME>``,
    profiles, validation with one-line errors, and ``docs/configuration.md``. A key
    with ``ask=True`` is asked by ``soong configure``. When the plugin is missing or
    broken, its keys in the config file are unknown keys: a warning, never an error,
    and ``soong config set`` keeps them in the file. The built-in Lambda plugin
    declares every ``lambda.*`` key this way.
    """


@hookspec
def soong_secrets(register: Register, context: Any) -> None:
    """Declare the secrets the plugin reads, each with its environment variable and a one-line doc.

    :param register: call ``register(secret)`` once per secret, where ``secret`` is a
        :class:`soong.core.secrets.Secret`. Its name starts with one of the plugin's
        sections (see :func:`soong_config_keys`) and an underscore (``acme_api_key``);
        its environment variable must not be one core or another plugin uses.
    :param context: the command's :class:`soong.core.context.Context` (or None); as
        for :func:`soong_config_keys`, ``context.config`` is not available here.

    The return value is ignored. Called once per process, when the secret store is
    first built. A declared secret is listed by ``soong secrets list``, read from its
    environment variable before the keyring, masked in every output, and, with
    ``ask=True``, asked (hidden) by ``soong configure``. Read it with
    ``context.secrets.require(name)``. The built-in Lambda plugin declares
    ``lambda_api_key`` (``LAMBDA_API_KEY``).
    """


@hookspec
def soong_user_data_parts(launch):
    """Contribute parts to the cloud-init user data an instance boots with.

    :param launch: the :class:`soong.core.bootstrap.LaunchPlan` being rendered: the
        model, the GPU count (tensor-parallel size), the instance name, the file
        system, the lease and limits, the enabled services and the secrets.
    :return: a list of :class:`soong.core.bootstrap.UserDataPart`, or None to add nothing.

    Called every time user data is rendered (``soong user-data``, a launch); it must
    not touch the network or the provider. Core merges every ``cloud-config`` part
    into one cloud-config document (``write_files``, ``bootcmd`` and other lists are
    concatenated; a path written twice is an error) and appends the ``shellscript``
    parts ordered by ``order``. The built-in SGLang plugin contributes the status
    daemon (10), the file system (20), SGLang (30) and n8n (40); a plugin adding a
    service should use an order above 40 and must not make the daemon depend on it.
    Secrets belong only in ``write_files`` entries with ``permissions: '0600'``,
    never in a script, a unit file or a command line. The assembled document must
    stay under 1 MB.
    """


@hookspec
def soong_serving_requirements():
    """Say what a serving engine's bootstrap can install on: Python versions and host architectures.

    No parameters.

    :return: a :class:`soong.core.images.ServingRequirements` (or a list of them, one
        per engine), or None.

    Called when a command offers or launches instance types (``models recommend``,
    ``models info``, ``models list``, ``start``); it must not touch the network.
    Core keeps the first declaration per ``engine`` (the
    :attr:`~soong.core.types.ModelSpec.engine` of the models it serves). An image
    family whose Python is not in ``pythons`` is refused before launching, and an
    instance type whose host architecture is not in ``architectures`` is never
    offered for that engine's models. The built-in SGLang plugin declares
    ``sglang`` from its pinned wheels (``soong/plugins/sglang/platform.py``).
    """


def all_hook_names() -> list[str]:
    """Names of every hook spec defined here (used by docs and tests)."""
    return sorted(name for name, value in globals().items() if name.startswith("soong_") and callable(value))



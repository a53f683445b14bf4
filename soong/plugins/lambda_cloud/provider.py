"""``LambdaProvider``: soong's Provider interface on top of the Lambda Cloud API.

Launch safety: every launch names its instance ``<name>-<token>`` with a unique
token. A launch that fails ambiguously (timeout, dropped connection, 5xx or an
unreadable answer after the request was sent) is never retried blindly: the
provider looks for an instance with exactly that name, for up to
``lambda.launch_lookup_seconds``. Found: the launch succeeded and that instance
is returned. Not found: nothing was launched and a TransientError says so. The
lookup itself failing: :class:`~soong.core.errors.AmbiguousLaunchError`.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from typing import TYPE_CHECKING, Any, Callable, Sequence

from soong.core import errors as E
from soong.core.interfaces import Provider
from soong.core.types import FileSystem, Instance, InstanceType, LaunchRequest, SelfTermination, SshKey
from soong.plugins.lambda_cloud.settings import API_KEY_SECRET, FILESYSTEM_KEY, REGION_KEY, SSH_KEY_NAME_KEY

if TYPE_CHECKING:
    from soong.core.context import Context
    from soong.core.firewall import FirewallChange, InboundFirewall
    from soong.core.images import ImageFamily, MachineImage
    from soong.plugins.lambda_cloud.client import LambdaClient
    from soong.plugins.lambda_cloud.parsing import FirewallRuleset, Image

LOG = logging.getLogger(__name__)
NAME_LIMIT = 64
TOKEN = re.compile(r"^[a-z0-9]{6,16}$")
#: The login user of Lambda's images (Lambda Stack and GPU Base are Ubuntu images with user ``ubuntu``).
LOGIN_USER = "ubuntu"


def new_token() -> str:
    """A fresh launch token (12 hex digits)."""
    return secrets.token_hex(6)


def instance_name(name: str, token: str) -> str:
    """The instance name a launch uses: ``<name>-<token>``, the name cut to fit 64 characters."""
    if not TOKEN.match(token):
        raise E.UsageError(f"invalid launch token {token!r} (6-16 lower-case letters or digits)")
    room = NAME_LIMIT - len(token) - 1
    return f"{name[:room]}-{token}" if name else token


class LambdaProvider(Provider):
    """The ``lambda`` provider: Lambda Cloud, through :class:`~.client.LambdaClient`.

    Settings come from the ``lambda.*`` configuration keys and the
    ``lambda_api_key`` secret; see docs/lambda.md.
    """

    name = "lambda"
    name_limit = NAME_LIMIT
    region_key = REGION_KEY
    filesystem_key = FILESYSTEM_KEY
    ssh_key_name_key = SSH_KEY_NAME_KEY

    def __init__(self, context: "Context", *, client: "LambdaClient | None" = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(context)
        self._client = client
        self._sleep = sleep

    # -- plumbing ------------------------------------------------------------------------------
    @property
    def client(self) -> "LambdaClient":
        """The API client, built on first use from the configuration and the API key."""
        if self._client is None:
            self._client = build_client(self.context, sleep=self._sleep)
        return self._client

    def _setting(self, key: str) -> Any:
        return self.context.config.get(key)

    # -- Provider interface ----------------------------------------------------------------------
    def list_instance_types(self) -> list[InstanceType]:
        """Every instance type with price and regions with capacity now, cheapest first."""
        from soong.plugins.lambda_cloud.parsing import parse_instance_types

        return parse_instance_types(self.client.list_instance_types())

    def list_instances(self) -> list[Instance]:
        """Every instance not yet gone."""
        from soong.plugins.lambda_cloud.parsing import parse_instances

        return parse_instances(self.client.list_instances())

    def get_instance(self, instance_id: str) -> Instance:
        """One instance; ApiNotFoundError when unknown or gone."""
        from soong.plugins.lambda_cloud.parsing import parse_instance

        return parse_instance(self.client.get_instance(instance_id))

    def find_instances(self, name: str) -> list[Instance]:
        """Instances whose name is exactly ``name`` (a launch's ``<name>-<token>``)."""
        return [i for i in self.list_instances() if i.name == name]

    def launch(self, request: LaunchRequest) -> Instance:
        """Launch exactly one instance, or none; see the module docstring for the ambiguous case."""
        from soong.plugins.lambda_cloud.parsing import ResponseShapeError, parse_launch

        token = request.token or self.new_token()
        name = self.instance_name(request.name, token)
        body = launch_body(request, name)
        try:
            ids = parse_launch(self.client.launch(body))
            if len(ids) != 1:
                raise ResponseShapeError(f"launch returned {len(ids)} instance ids instead of 1")
        except E.TransientError as exc:
            if not getattr(exc, "request_sent", True) or isinstance(exc, E.RateLimitedError):
                raise  # the request never took effect: nothing was launched
            return self._resolve_ambiguous(name, request, exc)
        except ResponseShapeError as exc:
            return self._resolve_ambiguous(name, request, exc)
        return self._launched(ids[0], name, request)

    def _launched(self, instance_id: str, name: str, request: LaunchRequest) -> Instance:
        """The launched instance as the API reports it, or a stand-in if it cannot be read now."""
        try:
            return self.get_instance(instance_id)
        except E.ApiError as exc:
            LOG.warning("launched %s but could not read it back: %s", instance_id, exc)
            return Instance(id=instance_id, status="booting", instance_type=request.instance_type,
                            region=request.region, name=name, ssh_key_names=(request.ssh_key_name,),
                            file_system_names=tuple(request.file_system_names))

    def _resolve_ambiguous(self, name: str, request: LaunchRequest, cause: Exception) -> Instance:
        """After an ambiguous failure: find the instance by its unique name, or prove there is none."""
        window = float(self._setting("lambda.launch_lookup_seconds"))
        deadline = time.monotonic() + window
        pause = min(5.0, max(window / 6, 0.0))
        LOG.warning("launch of %s failed ambiguously (%s); looking it up by name", name, cause)
        while True:
            try:
                found = self.find_instances(name)
            except E.ApiError as exc:
                raise E.AmbiguousLaunchError(
                    f"the launch of '{name}' may or may not have happened ({cause}), and looking it up failed "
                    f"({exc}); check 'soong status' or the Lambda console before launching again",
                    code="soong/ambiguous-launch") from exc
            if found:
                if len(found) > 1:
                    LOG.error("%d instances carry the launch name %s; returning the first", len(found), name)
                return found[0]
            if time.monotonic() >= deadline:
                break
            self._sleep(min(pause, max(0.0, deadline - time.monotonic())))
        error = E.TransientError(
            f"the launch of '{name}' failed ({cause}) and no instance with that name exists: nothing was launched",
            code=getattr(cause, "code", None) or "soong/launch-failed",
            suggestion="try again; soong never re-sends a launch on its own after such a failure")
        error.request_sent = True  # type: ignore[attr-defined]
        error.launched = False  # type: ignore[attr-defined]
        raise error from cause

    def terminate(self, instance_ids: Sequence[str]) -> list[Instance]:
        """Terminate instances; return them as reported after. Raises unless every one is ending or gone.

        If the API says an id does not exist (e.g. a retry after a first attempt that
        did work), each id is checked: gone or terminating counts as done; the rest are
        terminated again. Instances that are gone are returned as ``terminated`` stand-ins.
        """
        from soong.plugins.lambda_cloud.parsing import parse_instances

        ids = list(dict.fromkeys(instance_ids))
        if not ids:
            return []
        try:
            data = self.client.terminate(ids)
        except E.ApiNotFoundError:
            return self._terminate_checked(ids)
        from soong.plugins.lambda_cloud.parsing import field

        return parse_instances(field(data, "terminated_instances", "data", list), "data.terminated_instances")

    def _terminate_checked(self, ids: list[str]) -> list[Instance]:
        result: dict[str, Instance] = {}
        remaining = []
        for instance_id in ids:
            try:
                inst = self.get_instance(instance_id)
            except E.ApiNotFoundError:
                result[instance_id] = Instance(id=instance_id, status="terminated", instance_type="", region="")
                continue
            if inst.status in ("terminating", "terminated", "preempted"):
                result[instance_id] = inst
            else:
                remaining.append(instance_id)
        if remaining:
            from soong.plugins.lambda_cloud.parsing import field, parse_instances

            data = self.client.terminate(remaining)
            for inst in parse_instances(field(data, "terminated_instances", "data", list), "data.terminated_instances"):
                result[inst.id] = inst
        missing = [i for i in ids if i not in result]
        if missing:
            raise E.UnconfirmedError(f"termination of {', '.join(missing)} could not be confirmed")
        return [result[i] for i in ids]

    def list_ssh_keys(self) -> list[SshKey]:
        """The account's SSH keys."""
        from soong.plugins.lambda_cloud.parsing import items, parse_ssh_key

        return [parse_ssh_key(k, f"data[{i}]") for i, k in enumerate(items(self.client.list_ssh_keys(), "data"))]

    def list_file_systems(self) -> list[FileSystem]:
        """The account's file systems."""
        from soong.plugins.lambda_cloud.parsing import items, parse_file_system

        return [parse_file_system(f, f"data[{i}]")
                for i, f in enumerate(items(self.client.list_file_systems(), "data"))]

    def new_token(self) -> str:
        """A fresh launch token (12 hex digits)."""
        return new_token()

    def instance_name(self, name: str, token: str) -> str:
        """``<name>-<token>``, the name cut to fit Lambda's 64 characters."""
        return instance_name(name, token)

    def launch_preview(self, request: LaunchRequest) -> tuple[str, dict[str, Any]]:
        """The body :meth:`launch` sends to ``POST /instance-operations/launch``."""
        name = self.instance_name(request.name, request.token or self.new_token())
        return "POST /instance-operations/launch", launch_body(request, name)

    def ssh_user(self) -> str:
        """``ubuntu``: the user of Lambda's images."""
        return LOGIN_USER

    def self_termination(self) -> SelfTermination:
        """The daemon terminates through ``lambda.api_url`` with ``lambda_api_key``."""
        return SelfTermination(api_url=str(self._setting("lambda.api_url")), api_key_secret=API_KEY_SECRET)

    def image_family(self) -> "ImageFamily":
        """The family of ``lambda.image_family`` with its Python and architectures (see :mod:`.images`)."""
        import dataclasses

        from soong.plugins.lambda_cloud.images import family_facts

        return dataclasses.replace(family_facts(self._setting("lambda.image_family")), setting="lambda.image_family")

    def machine_images(self) -> list["MachineImage"]:
        """Every image of ``GET /images``, as core's MachineImage."""
        from soong.plugins.lambda_cloud.images import machine_image

        return [machine_image(image) for image in self.list_images()]

    def inbound_firewall(self, region: str | None = None) -> "InboundFirewall":
        """The inbound rules a launch in ``region`` gets: the global ones, none in us-south-1 (see :mod:`.firewall`).

        Read once, without retries: it only feeds a warning before a launch.
        """
        from soong.plugins.lambda_cloud.firewall import launch_firewall

        return launch_firewall(self.client, region, max_attempts=1)

    def ssh_only_change(self, region: str | None = None) -> "FirewallChange | None":
        """The change of the global rules that leaves only 22/tcp open (None: they already do); nothing is changed.

        The global rules are the same for every region, so ``region`` does not matter.
        """
        from soong.plugins.lambda_cloud.firewall import ssh_only_change

        return ssh_only_change(self.client)

    def apply_firewall_change(self, change: "FirewallChange") -> "InboundFirewall":
        """Make a change :meth:`ssh_only_change` returned; refused if the rules changed since."""
        from soong.plugins.lambda_cloud.firewall import apply_change

        return apply_change(self.client, change)

    # -- more of the API -------------------------------------------------------------------------------
    def rename_instance(self, instance_id: str, name: str) -> Instance:
        """Give an instance a new name (at most 64 characters)."""
        from soong.plugins.lambda_cloud.parsing import parse_instance

        if len(name) > NAME_LIMIT:
            raise E.UsageError(f"instance names are at most {NAME_LIMIT} characters")
        return parse_instance(self.client.rename_instance(instance_id, name))

    def restart(self, instance_ids: Sequence[str]) -> list[Instance]:
        """Restart instances; return those the API restarted."""
        from soong.plugins.lambda_cloud.parsing import field, parse_instances

        data = self.client.restart(list(instance_ids))
        return parse_instances(field(data, "restarted_instances", "data", list), "data.restarted_instances")

    def add_ssh_key(self, name: str, public_key: str | None = None) -> tuple[SshKey, str | None]:
        """Add a public key, or have Lambda generate a pair; return the key and the private key (if generated)."""
        from soong.core.redact import register_secret
        from soong.plugins.lambda_cloud.parsing import field, parse_ssh_key

        data = self.client.add_ssh_key(name, public_key)
        private = field(data, "private_key", "data", required=False)
        register_secret(private)
        return parse_ssh_key(data), private

    def delete_ssh_key(self, key_id: str) -> None:
        """Delete an SSH key by id."""
        self.client.delete_ssh_key(key_id)

    def create_file_system(self, name: str, region: str) -> FileSystem:
        """Create a persistent file system in a region."""
        from soong.plugins.lambda_cloud.parsing import parse_file_system

        return parse_file_system(self.client.create_file_system(name, region))

    def delete_file_system(self, fs_id: str) -> list[str]:
        """Delete a file system by id; return the deleted ids."""
        from soong.plugins.lambda_cloud.parsing import field

        return list(field(self.client.delete_file_system(fs_id), "deleted_ids", "data", list))

    def list_images(self) -> list["Image"]:
        """Machine images by region."""
        from soong.plugins.lambda_cloud.parsing import items, parse_image

        return [parse_image(img, f"data[{i}]") for i, img in enumerate(items(self.client.list_images(), "data"))]

    def list_firewall_rulesets(self) -> list["FirewallRuleset"]:
        """Firewall rulesets."""
        from soong.plugins.lambda_cloud.parsing import items, parse_firewall_ruleset

        return [parse_firewall_ruleset(r, f"data[{i}]")
                for i, r in enumerate(items(self.client.list_firewall_rulesets(), "data"))]

    def list_audit_events(self, start: str | None = None, end: str | None = None) -> list[dict[str, Any]]:
        """Audit events of the account (one page), as the API returns them."""
        from soong.plugins.lambda_cloud.parsing import field

        return list(field(self.client.audit_events(start=start, end=end), "events", "data", list))


def launch_body(request: LaunchRequest, name: str) -> dict[str, Any]:
    """The JSON body of a launch request."""
    body: dict[str, Any] = {
        "region_name": request.region,
        "instance_type_name": request.instance_type,
        "ssh_key_names": [request.ssh_key_name],
        "file_system_names": list(request.file_system_names),
        "name": name,
    }
    if request.hostname:
        body["hostname"] = request.hostname
    if request.image:
        body["image"] = dict(request.image)
    if request.user_data is not None:
        if len(request.user_data.encode("utf-8")) > 1024 * 1024:
            raise E.UsageError("user data is larger than Lambda's 1 MB limit")
        body["user_data"] = request.user_data
    if request.tags:
        body["tags"] = [{"key": k, "value": v} for k, v in request.tags.items()]
    if request.firewall_ruleset_ids:
        body["firewall_rulesets"] = [{"id": i} for i in request.firewall_ruleset_ids]
    return body


def build_client(context: "Context", *, sleep: Callable[[float], None] = time.sleep) -> "LambdaClient":
    """A client for the context's configuration, API key and shared rate-limit file."""
    import hashlib

    from soong.core.paths import private_dir
    from soong.plugins.lambda_cloud.client import LambdaClient
    from soong.plugins.lambda_cloud.ratelimit import RateLimiter

    config = context.config
    url = config.get("lambda.api_url")
    digest = hashlib.sha256(url.encode()).hexdigest()[:12]
    limiter = RateLimiter(
        private_dir(context.paths.state_dir / "lambda") / f"ratelimit-{digest}.json",
        general_interval=config.get("lambda.request_interval_seconds"),
        launch_interval=config.get("lambda.launch_interval_seconds"),
        sleep=sleep,
    )
    return LambdaClient(
        url, context.secrets.require(API_KEY_SECRET),
        connect_timeout=config.get("lambda.connect_timeout_seconds"), read_timeout=config.get("lambda.timeout_seconds"),
        limiter=limiter, retry_budget=config.get("lambda.retry_budget_seconds"),
        backoff_base=config.get("lambda.retry_base_seconds"), sleep=sleep,
    )

"""The emulated Lambda Cloud account: instances, capacity, SSH keys, file systems.

All methods are thread-safe and take the emulated time from the clock; instance
status is derived from that time, so moving the clock forward moves instances
along ``booting -> active`` and ``terminating -> terminated -> gone``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import ipaddress
import random
import threading
from typing import Any

from soong.plugins.lambda_cloud.emulator import errors as E
from soong.plugins.lambda_cloud.emulator import validation as V
from soong.plugins.lambda_cloud.emulator.accounts import LIVE, KeysAndFileSystems
from soong.plugins.lambda_cloud.emulator.clock import EmulatorClock
from soong.plugins.lambda_cloud.emulator.config import EmulatorConfig
from soong.plugins.lambda_cloud.emulator.firewall import Firewall, check_rules
from soong.plugins.lambda_cloud.emulator.seed import REGIONS, load_seed, region_json

FORCEABLE = ("booting", "active", "unhealthy", "preempted")
_ACTIONS = ("migrate", "rebuild", "restart", "cold_reboot", "terminate")


@dataclasses.dataclass
class _Instance:
    id: str
    type_name: str
    region: str
    ssh_key_names: list[str]
    file_system_names: list[str]
    file_system_mounts: list[dict[str, str]]
    created_at: float
    boot_delay: float
    ip: str
    private_ip: str
    name: str | None = None
    hostname: str | None = None
    image: dict[str, str] | None = None
    user_data: str | None = None
    tags: list[dict[str, str]] = dataclasses.field(default_factory=list)
    firewall_rulesets: list[str] = dataclasses.field(default_factory=list)
    jupyter_token: str = ""
    forced: str | None = None
    restart_at: float | None = None
    restart_delay: float = 0.0
    terminate_at: float | None = None
    terminate_delay: float = 0.0
    gone_delay: float = 0.0
    launch_seq: int | None = None

    def status(self, now: float) -> str:
        if self.terminate_at is not None:
            if now < self.terminate_at + self.terminate_delay:
                return "terminating"
            if now < self.terminate_at + self.terminate_delay + self.gone_delay:
                return "terminated"
            return "gone"
        if self.forced is not None:
            return self.forced
        if self.restart_at is not None and now < self.restart_at + self.restart_delay:
            return "booting"
        if now < self.created_at + self.boot_delay:
            return "booting"
        return "active"


class EmulatorState(KeysAndFileSystems):
    """One emulated account. ``seed`` is a mapping as from :func:`~.seed.load_seed`."""

    def __init__(self, config: EmulatorConfig | None = None, clock: EmulatorClock | None = None,
                 seed: dict[str, Any] | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.clock = clock or EmulatorClock()
        self.lock = threading.RLock()
        self._seed = seed if seed is not None else load_seed()
        self.reset()

    # -- set-up ------------------------------------------------------------------------
    def reset(self) -> None:
        """Back to the seed: no instances, seeded keys, file systems and capacity."""
        with self.lock:
            seed = self._seed
            self._random = random.Random(self.config.random_seed)
            self.instance_types: dict[str, dict[str, Any]] = {
                name: item["instance_type"] for name, item in seed["instance_types"].items()
            }
            self.images: list[dict[str, Any]] = list(seed["images"])
            self.architectures: dict[str, str] = dict(seed.get("architectures", {}))
            self.instances: dict[str, _Instance] = {}
            self.ssh_keys: dict[str, dict[str, Any]] = {}
            self.file_systems: dict[str, dict[str, Any]] = {}
            self.firewall = Firewall(self._new_id, self._iso)
            self.audit: list[dict[str, Any]] = []
            self._ip_next = int(ipaddress.IPv4Address(self.config.ip_base))
            self._launches = 0
            # capacity totals: available now + instances using it (None: unlimited)
            self._capacity: dict[tuple[str, str], int | None] = {}
            for name, item in seed["instance_types"].items():
                for reg in item.get("regions_with_capacity_available", []):
                    self._capacity[(name, reg["name"])] = self.config.default_capacity
            for name, regions in seed.get("capacity", {}).items():
                for reg, count in regions.items():
                    self._capacity[(name, reg)] = count
            for key in seed.get("ssh_keys", []):
                self._store_key(key["name"], key["public_key"], key.get("id"))
            for fs in seed.get("file_systems", []):
                self._store_file_system(fs["name"], fs["region"], fs.get("id"))
            for rs in seed.get("firewall_rulesets", []):
                self.firewall.add(rs["name"], rs["region"], check_rules(rs.get("rules", [])), rs.get("id"))
            if seed.get("firewall_rules") is not None:
                self.firewall.global_rules = check_rules(seed["firewall_rules"])

    def _new_id(self) -> str:
        return f"{self._random.getrandbits(128):032x}"

    def _iso(self, epoch: float | None = None) -> str:
        moment = self.clock.now() if epoch is None else epoch
        return _dt.datetime.fromtimestamp(moment, _dt.timezone.utc).isoformat().replace("+00:00", "Z")

    def _audit(self, resource: str, action: str, ids: list[str], details: dict[str, Any] | None = None) -> None:
        self.audit.append({
            "service_name": "cloud", "resource_name": resource, "action": action, "catalog_version": "1.0",
            "event_id": self._new_id(), "event_time": self._iso(), "actor_lrn": "lrn:user:emulator-user",
            "resource_lrns": [f"lrn:{resource}:{i}" for i in ids], "resource_owner_lrn": "lrn:account:emulator",
            "request_api_key_lrn": "lrn:api-key:emulator", "additional_details": details or {},
        })

    # -- capacity -------------------------------------------------------------------------
    def _used(self, type_name: str, region: str, now: float) -> int:
        return sum(1 for i in self.instances.values()
                   if i.type_name == type_name and i.region == region and i.status(now) in LIVE)

    def available(self, type_name: str, region: str, now: float | None = None) -> int | None:
        """Launchable count now (None: unlimited)."""
        with self.lock:
            now = self.clock.now() if now is None else now
            total = self._capacity.get((type_name, region), 0)
            if total is None:
                return None
            return max(0, total - self._used(type_name, region, now))

    def set_capacity(self, type_name: str, region: str, count: int | None) -> None:
        """Make ``count`` more instances launchable now (None: unlimited; 0: none)."""
        if type_name not in self.instance_types:
            raise ValueError(f"unknown instance type {type_name!r}")
        if region not in REGIONS:
            raise ValueError(f"unknown region {region!r}")
        if count is not None and (not isinstance(count, int) or count < 0):
            raise ValueError("count must be a whole number >= 0 or null")
        with self.lock:
            used = self._used(type_name, region, self.clock.now())
            self._capacity[(type_name, region)] = None if count is None else count + used

    def capacity_table(self) -> dict[str, dict[str, int | None]]:
        """Launchable count per type and region (regions with none configured left out)."""
        with self.lock:
            now = self.clock.now()
            out: dict[str, dict[str, int | None]] = {}
            for (type_name, region) in sorted(self._capacity):
                out.setdefault(type_name, {})[region] = self.available(type_name, region, now)
            return out

    # -- serialisation ----------------------------------------------------------------------
    def _instance_json(self, inst: _Instance, now: float) -> dict[str, Any]:
        status = inst.status(now)
        data: dict[str, Any] = {"id": inst.id}
        if inst.name is not None:
            data["name"] = inst.name
        if now >= inst.created_at + inst.boot_delay:  # the IP is known once the first boot is done
            data["ip"] = inst.ip
            data["private_ip"] = inst.private_ip
        data["status"] = status
        data["ssh_key_names"] = list(inst.ssh_key_names)
        data["file_system_names"] = list(inst.file_system_names)
        if inst.file_system_mounts:
            data["file_system_mounts"] = [dict(m) for m in inst.file_system_mounts]
        data["region"] = region_json(inst.region)
        data["instance_type"] = dict(self.instance_types[inst.type_name])
        if inst.hostname:
            data["hostname"] = inst.hostname
        elif "ip" in data:
            data["hostname"] = inst.ip
        if status == "active":
            data["jupyter_token"] = inst.jupyter_token
            data["jupyter_url"] = f"https://jupyter-{inst.id}.lambdaspaces.example/?token={inst.jupyter_token}"
        data["is_reserved"] = False
        data["actions"] = self._actions(status)
        data["tags"] = [dict(t) for t in inst.tags]
        if inst.firewall_rulesets:
            data["firewall_rulesets"] = [{"id": r} for r in inst.firewall_rulesets]
        return data

    @staticmethod
    def _actions(status: str) -> dict[str, Any]:
        def blocked(code: str, text: str) -> dict[str, Any]:
            return {"available": False, "reason_code": code, "reason_description": text}

        if status == "active" or status == "unhealthy":
            return {a: {"available": True} for a in _ACTIONS}
        if status == "booting":
            out = {a: blocked("vm-has-not-launched", "The instance has not finished launching.") for a in _ACTIONS}
            out["terminate"] = {"available": True}
            return out
        return {a: blocked("vm-is-terminating", "The instance is terminating.") for a in _ACTIONS}

    # -- instances -------------------------------------------------------------------------------
    def _visible(self, instance_id: str, now: float) -> _Instance:
        inst = self.instances.get(instance_id)
        if inst is None or inst.status(now) == "gone":
            raise E.instance_not_found()
        return inst

    def list_instances(self, cluster_id: str | None = None) -> list[dict[str, Any]]:
        """GET /instances."""
        with self.lock:
            now = self.clock.now()
            if cluster_id is not None:
                return []
            return [self._instance_json(i, now) for i in self.instances.values() if i.status(now) != "gone"]

    def get_instance(self, instance_id: str) -> dict[str, Any]:
        """GET /instances/{id}."""
        with self.lock:
            now = self.clock.now()
            return self._instance_json(self._visible(instance_id, now), now)

    def rename(self, instance_id: str, body: Any) -> dict[str, Any]:
        """POST /instances/{id}."""
        body = V.body_object(body)
        with self.lock:
            now = self.clock.now()
            inst = self._visible(instance_id, now)
            name = V.string(body, "name", max_len=64)
            if name is not None:
                inst.name = name
                self._audit("instance", "update", [inst.id], {"name": name})
            return self._instance_json(inst, now)

    def launch(self, body: Any, seq: int | None = None) -> list[str]:
        """POST /instance-operations/launch: create one instance; return its id in a list."""
        body = V.body_object(body)
        region = V.region(body, "region_name")
        type_name = V.string(body, "instance_type_name", required=True)
        keys = V.string_list(body, "ssh_key_names", required=True)
        fs_names = V.string_list(body, "file_system_names")
        mounts = V.mounts(body)
        name = V.string(body, "name", max_len=64)
        hostname = V.string(body, "hostname", min_len=1, max_len=63, pattern=V.HOSTNAME)
        image = V.image(body)
        user_data = V.user_data(body)
        tags = V.tags(body)
        rulesets = V.id_objects(body, "firewall_rulesets")
        quantity = body.get("quantity", 1)
        if quantity != 1:
            raise E.invalid_parameters("Only one instance can be launched per request.", "Set quantity to 1 or leave it out.")
        if len(keys) != 1:
            raise E.invalid_parameters("Exactly one SSH key must be specified.", "Pass one name in ssh_key_names.")
        with self.lock:
            now = self.clock.now()
            if type_name not in self.instance_types:
                raise E.launch_resource_not_found(f"Instance type '{type_name}' does not exist.",
                                                  "List instance types with GET /instance-types.")
            if not any(k["name"] == keys[0] for k in self.ssh_keys.values()):
                raise E.launch_resource_not_found(f"SSH key '{keys[0]}' does not exist.",
                                                  "Add the key with POST /ssh-keys or pick an existing one.")
            by_name = {fs["name"]: fs for fs in self.file_systems.values()}
            for fs_name in fs_names:
                if fs_name not in by_name:
                    raise E.launch_resource_not_found(f"File system '{fs_name}' does not exist.",
                                                      "Create it with POST /filesystems or pick an existing one.")
                if by_name[fs_name]["region"]["name"] != region:
                    raise E.file_system_in_wrong_region(fs_name, by_name[fs_name]["region"]["name"], region)
            for mount in mounts:
                fs = self.file_systems.get(mount["file_system_id"])
                if fs is None:
                    raise E.launch_resource_not_found(f"File system '{mount['file_system_id']}' does not exist.",
                                                      "Use the id of an existing file system.")
                if fs["region"]["name"] != region:
                    raise E.file_system_in_wrong_region(fs["name"], fs["region"]["name"], region)
            if image is not None:
                self._check_image(image, region, type_name)
            for rid in rulesets:
                ruleset = self.firewall.rulesets.get(rid)
                if ruleset is None:
                    raise E.launch_resource_not_found(f"Firewall ruleset '{rid}' does not exist.",
                                                      "List rulesets with GET /firewall-rulesets.")
                if ruleset["region"]["name"] != region:
                    raise E.invalid_parameters(f"Firewall ruleset '{rid}' is not in {region}.")
            if self.config.account_status == "invalid-address":
                raise E.invalid_address()
            if self.config.quota is not None:
                live = sum(1 for i in self.instances.values() if i.status(now) in LIVE)
                if live >= self.config.quota:
                    raise E.quota_exceeded()
            available = self.available(type_name, region, now)
            if available is not None and available <= 0:
                raise E.insufficient_capacity()
            inst = _Instance(
                id=self._new_id(), type_name=type_name, region=region, ssh_key_names=list(keys),
                file_system_names=list(fs_names) + [self.file_systems[m["file_system_id"]]["name"] for m in mounts
                                                    if self.file_systems[m["file_system_id"]]["name"] not in fs_names],
                file_system_mounts=self._mounts_for(fs_names, mounts), created_at=now,
                boot_delay=self.config.boot_delay, ip=self._next_ip(), private_ip=self._private_ip(), name=name,
                hostname=hostname, image=image, user_data=user_data, tags=tags, firewall_rulesets=rulesets,
                jupyter_token=f"{self._random.getrandbits(128):032x}", launch_seq=seq,
            )
            self.instances[inst.id] = inst
            for rid in rulesets:
                self.firewall.rulesets[rid]["instance_ids"].append(inst.id)
            self._launches += 1
            self._audit("instance", "launch", [inst.id], {"instance_type": type_name, "region": region})
            return [inst.id]

    def _mounts_for(self, fs_names: list[str], mounts: list[dict[str, str]]) -> list[dict[str, str]]:
        by_name = {fs["name"]: fs for fs in self.file_systems.values()}
        explicit = {m["file_system_id"]: m["mount_point"] for m in mounts}
        out = []
        for fs_name in fs_names:
            fs = by_name[fs_name]
            out.append({"mount_point": explicit.pop(fs["id"], fs["mount_point"]), "file_system_id": fs["id"]})
        out.extend({"mount_point": point, "file_system_id": fid} for fid, point in explicit.items())
        return out

    def architecture(self, type_name: str) -> str:
        """The host architecture of an instance type (seed ``architectures``; x86_64 when not listed)."""
        return self.architectures.get(type_name, "x86_64")

    def _check_image(self, image: dict[str, str], region: str, type_name: str) -> None:
        """Refuse an image that does not exist in ``region`` (404) or is not built for the type's host (400)."""
        key, value = ("id", image["id"]) if "id" in image else ("family", image["family"])
        here = [i for i in self.images if i.get(key) == value and i["region"]["name"] == region]
        if not here:
            raise E.launch_resource_not_found(f"Image {key} '{value}' does not exist in {region}.",
                                              "List images with GET /images.")
        arch = self.architecture(type_name)
        if not any(i.get("architecture") == arch for i in here):
            built = ", ".join(sorted({str(i.get("architecture")) for i in here}))
            raise E.invalid_parameters(f"Image {key} '{value}' is for {built}, and instance type '{type_name}' "
                                       f"has an {arch} host.",
                                       f"Choose an {arch} image; list images with GET /images.")

    def _next_ip(self) -> str:
        address = ipaddress.IPv4Address(self._ip_next)
        self._ip_next += 1
        return str(address)

    def _private_ip(self) -> str:
        n = len(self.instances) + 2
        return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"

    def _ids(self, body: Any) -> list[str]:
        body = V.body_object(body)
        ids = V.string_list(body, "instance_ids", required=True)
        return ids

    def terminate(self, body: Any) -> list[dict[str, Any]]:
        """POST /instance-operations/terminate: all or nothing; already-ending instances are reported as they are."""
        ids = self._ids(body)
        with self.lock:
            now = self.clock.now()
            found = [self._visible(i, now) for i in ids]
            for inst in found:
                if inst.terminate_at is None:
                    inst.terminate_at = now
                    inst.terminate_delay = self.config.terminate_delay
                    inst.gone_delay = self.config.gone_delay
                    self._audit("instance", "terminate", [inst.id])
            return [self._instance_json(i, now) for i in found]

    def restart(self, body: Any) -> list[dict[str, Any]]:
        """POST /instance-operations/restart: active or unhealthy instances boot again."""
        ids = self._ids(body)
        with self.lock:
            now = self.clock.now()
            found = [self._visible(i, now) for i in ids]
            restarted = []
            for inst in found:
                if inst.status(now) in ("active", "unhealthy"):
                    inst.forced = None
                    inst.restart_at = now
                    inst.restart_delay = self.config.restart_delay
                    self._audit("instance", "restart", [inst.id])
                    restarted.append(self._instance_json(inst, now))
            return restarted

    def instance_types_json(self) -> dict[str, Any]:
        """GET /instance-types."""
        with self.lock:
            now = self.clock.now()
            out = {}
            for name, itype in self.instance_types.items():
                regions = []
                for (type_name, reg) in self._capacity:
                    if type_name == name:
                        count = self.available(name, reg, now)
                        if count is None or count > 0:
                            regions.append(region_json(reg))
                out[name] = {"instance_type": dict(itype), "regions_with_capacity_available": regions}
            return out

    # -- images, firewall, audit ---------------------------------------------------------------------
    def list_images(self) -> list[dict[str, Any]]:
        """GET /images."""
        with self.lock:
            return [dict(i) for i in self.images]

    def list_firewall_rulesets(self) -> list[dict[str, Any]]:
        """GET /firewall-rulesets."""
        with self.lock:
            return [self.firewall.get(rid) for rid in self.firewall.rulesets]

    def firewall_call(self, operation: str, *args: Any) -> Any:
        """Run a :class:`~.firewall.Firewall` operation under the state lock."""
        with self.lock:
            if operation == "delete":
                now = self.clock.now()
                live = {i.id for i in self.instances.values() if i.status(now) in LIVE}
                return self.firewall.delete(args[0], live)
            return getattr(self.firewall, operation)(*args)

    def audit_events(self, start: str | None = None, end: str | None = None,
                     resource_type: str | None = None) -> dict[str, Any]:
        """GET /audit-events (one page)."""
        def parse(text: str | None, field: str) -> _dt.datetime | None:
            if text is None:
                return None
            try:
                value = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                raise E.invalid_parameters(f"Parameter '{field}' must be an ISO 8601 timestamp.") from None
            return value if value.tzinfo else value.replace(tzinfo=_dt.timezone.utc)

        lo, hi = parse(start, "start"), parse(end, "end")
        with self.lock:
            events = []
            for event in self.audit:
                moment = _dt.datetime.fromisoformat(event["event_time"].replace("Z", "+00:00"))
                if (lo and moment < lo) or (hi and moment > hi):
                    continue
                if resource_type and event["resource_name"] != resource_type:
                    continue
                events.append(dict(event))
            return {"events": events, "page_token": None}

    # -- admin view ------------------------------------------------------------------------------------
    def admin_instances(self) -> list[dict[str, Any]]:
        """Every instance ever launched, including terminated and gone ones, with internal fields."""
        with self.lock:
            now = self.clock.now()
            out = []
            for inst in self.instances.values():
                status = inst.status(now)
                out.append({
                    "id": inst.id, "name": inst.name, "status": status, "instance_type": inst.type_name,
                    "region": inst.region, "ip": inst.ip, "private_ip": inst.private_ip, "hostname": inst.hostname,
                    "created_at": inst.created_at, "terminate_requested_at": inst.terminate_at,
                    "ssh_key_names": inst.ssh_key_names, "file_system_names": inst.file_system_names,
                    "tags": inst.tags, "image": inst.image, "launch_seq": inst.launch_seq,
                    "user_data_bytes": None if inst.user_data is None else len(inst.user_data.encode("utf-8")),
                })
            return out

    def user_data(self, instance_id: str) -> str | None:
        """The user data an instance was launched with (KeyError if never launched)."""
        with self.lock:
            return self.instances[instance_id].user_data

    def force_status(self, instance_id: str, status: str) -> dict[str, Any]:
        """Put an instance into ``booting``, ``active``, ``unhealthy`` or ``preempted`` (KeyError if unknown)."""
        if status not in FORCEABLE:
            raise ValueError(f"status must be one of {', '.join(FORCEABLE)}")
        with self.lock:
            inst = self.instances[instance_id]
            if inst.terminate_at is not None:
                raise ValueError("the instance is already terminating")
            now = self.clock.now()
            if status == "active":
                inst.forced = None
                inst.restart_at = None
                inst.boot_delay = min(inst.boot_delay, max(0.0, now - inst.created_at))
            else:
                inst.forced = status
            return self._instance_json(inst, now)

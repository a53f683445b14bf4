"""The emulator behaves like Lambda's API: lifecycle, capacity, validation, limits, faults, admin API."""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import pytest
import requests

from soong.testing.emulator import TEST_PUBLIC_KEY, run_emulator

LAUNCH = "/instance-operations/launch"


def launch(handle, **overrides):
    body = {"region_name": "us-east-1", "instance_type_name": "gpu_1x_a10", "ssh_key_names": ["me"], "name": "t"}
    body.update(overrides)
    return handle.api("POST", LAUNCH, body)


def error_code(resp):
    return resp.json()["error"]["code"]


@pytest.fixture
def keyed(emu):
    emu.add_ssh_key("me")
    return emu


def test_lifecycle_follows_the_emulated_clock(keyed):
    resp = launch(keyed, user_data="#cloud-config\n")
    assert resp.status_code == 200
    (iid,) = resp.json()["data"]["instance_ids"]
    data = keyed.api("GET", f"/instances/{iid}").json()["data"]
    assert data["status"] == "booting" and "ip" not in data
    keyed.advance(5)
    data = keyed.api("GET", f"/instances/{iid}").json()["data"]
    assert data["status"] == "active" and data["ip"].startswith("127.")
    term = keyed.api("POST", "/instance-operations/terminate", {"instance_ids": [iid]}).json()["data"]
    assert [i["status"] for i in term["terminated_instances"]] == ["terminating"]
    keyed.advance(1)
    assert keyed.api("GET", f"/instances/{iid}").json()["data"]["status"] == "terminated"
    keyed.advance(1)
    gone = keyed.api("GET", f"/instances/{iid}")
    assert gone.status_code == 404 and error_code(gone) == "global/object-does-not-exist"
    assert keyed.api("GET", "/instances").json()["data"] == []
    assert [(i["id"], i["status"]) for i in keyed.instances()] == [(iid, "gone")]
    assert keyed.user_data(iid) == "#cloud-config\n"


def test_capacity_is_consumed_released_and_changeable(keyed):
    keyed.set_capacity("gpu_1x_a10", "us-east-1", 1)
    first = launch(keyed)
    assert first.status_code == 200
    second = launch(keyed)
    assert second.status_code == 400 and error_code(second) == "instance-operations/launch/insufficient-capacity"
    types = keyed.api("GET", "/instance-types").json()["data"]
    assert "us-east-1" not in [r["name"] for r in types["gpu_1x_a10"]["regions_with_capacity_available"]]
    iid = first.json()["data"]["instance_ids"][0]
    keyed.api("POST", "/instance-operations/terminate", {"instance_ids": [iid]})
    keyed.advance(1)  # terminated: capacity comes back
    assert launch(keyed).status_code == 200
    keyed.set_capacity("gpu_1x_h100_pcie", "us-east-1", None)
    assert launch(keyed, instance_type_name="gpu_1x_h100_pcie").status_code == 200


@pytest.mark.parametrize("overrides, status, code", [
    ({"ssh_key_names": []}, 400, "global/invalid-parameters"),
    ({"ssh_key_names": ["me", "me"]}, 400, "global/invalid-parameters"),
    ({"ssh_key_names": ["nobody"]}, 404, "global/object-does-not-exist"),
    ({"instance_type_name": "gpu_99x_imaginary"}, 404, "global/object-does-not-exist"),
    ({"region_name": "mars-north-1"}, 400, "global/invalid-parameters"),
    ({"name": "x" * 65}, 400, "global/invalid-parameters"),
    ({"hostname": "Bad_Host"}, 400, "global/invalid-parameters"),
    ({"tags": [{"key": "Upper", "value": "v"}]}, 400, "global/invalid-parameters"),
    ({"user_data": "x" * (1024 * 1024 + 1)}, 400, "global/invalid-parameters"),
    ({"quantity": 2}, 400, "global/invalid-parameters"),
    ({"file_system_names": ["nope"]}, 404, "global/object-does-not-exist"),
    ({"image": {"family": "no-such-family"}}, 404, "global/object-does-not-exist"),
    ({"firewall_rulesets": [{"id": "nope"}]}, 404, "global/object-does-not-exist"),
])
def test_launch_validation(keyed, overrides, status, code):
    resp = launch(keyed, **overrides)
    assert (resp.status_code, error_code(resp)) == (status, code)
    assert keyed.instances() == []


def test_user_data_of_exactly_one_megabyte_is_accepted(keyed):
    assert launch(keyed, user_data="x" * (1024 * 1024)).status_code == 200


def test_file_system_rules(keyed):
    fs = keyed.add_file_system("models", "us-west-1")
    wrong = launch(keyed, file_system_names=["models"])
    assert (wrong.status_code, error_code(wrong)) == (400, "instance-operations/launch/file-system-in-wrong-region")
    dup = keyed.api("POST", "/filesystems", {"name": "models", "region": "us-east-1"})
    assert (dup.status_code, error_code(dup)) == (400, "global/duplicate")
    bad = keyed.api("POST", "/filesystems", {"name": "9lives", "region": "us-east-1"})
    assert (bad.status_code, error_code(bad)) == (400, "global/invalid-parameters")
    ok = launch(keyed, region_name="us-west-1", file_system_names=["models"])
    assert ok.status_code == 200
    inst = keyed.api("GET", f"/instances/{ok.json()['data']['instance_ids'][0]}").json()["data"]
    assert inst["file_system_mounts"] == [{"mount_point": "/lambda/nfs/models", "file_system_id": fs["id"]}]
    busy = keyed.api("DELETE", f"/filesystems/{fs['id']}")
    assert (busy.status_code, error_code(busy)) == (400, "filesystems/filesystem-in-use")
    keyed.api("POST", "/instance-operations/terminate", {"instance_ids": [inst["id"]]})
    keyed.advance(1)
    assert keyed.api("DELETE", f"/filesystems/{fs['id']}").json()["data"] == {"deleted_ids": [fs["id"]]}
    missing = keyed.api("DELETE", f"/filesystems/{fs['id']}")
    assert (missing.status_code, error_code(missing)) == (404, "global/object-does-not-exist")


def test_ssh_key_rules(emu):
    bad = emu.api("POST", "/ssh-keys", {"name": "k", "public_key": "ssh-ed25519 not-base64!"})
    assert (bad.status_code, error_code(bad)) == (400, "global/invalid-parameters")
    mismatched = TEST_PUBLIC_KEY.replace("ssh-ed25519", "ssh-rsa", 1)
    assert emu.api("POST", "/ssh-keys", {"name": "k", "public_key": mismatched}).status_code == 400
    added = emu.add_ssh_key("k")
    dup = emu.api("POST", "/ssh-keys", {"name": "k", "public_key": TEST_PUBLIC_KEY})
    assert (dup.status_code, error_code(dup)) == (400, "global/invalid-parameters")
    generated = emu.api("POST", "/ssh-keys", {"name": "gen"}).json()["data"]
    assert "PRIVATE KEY" in generated["private_key"] and generated["public_key"].startswith("ssh-ed25519 ")
    assert emu.api("DELETE", f"/ssh-keys/{added['id']}").json() == {"data": {}}
    assert emu.api("DELETE", f"/ssh-keys/{added['id']}").status_code == 400
    assert [k["name"] for k in emu.api("GET", "/ssh-keys").json()["data"]] == ["gen"]


def test_authentication_forms_and_account_state(emu):
    url = emu.url + "/instances"
    assert error_code(requests.get(url, timeout=5)) == "global/invalid-api-key"
    assert requests.get(url, headers={"Authorization": "Bearer wrong"}, timeout=5).status_code == 401
    assert requests.get(url, auth=(emu.api_key, ""), timeout=5).status_code == 200  # curl -u KEY:
    basic = base64.b64encode(f"{emu.api_key}:".encode()).decode()
    assert requests.get(url, headers={"Authorization": f"Basic {basic}"}, timeout=5).status_code == 200
    emu.configure(account_status="inactive")
    resp = emu.api("GET", "/instances")
    assert (resp.status_code, error_code(resp)) == (403, "global/account-inactive")
    assert resp.json()["error"]["suggestion"]


def test_quota(keyed):
    keyed.configure(quota=1)
    assert launch(keyed).status_code == 200
    resp = launch(keyed)
    assert (resp.status_code, error_code(resp)) == (400, "global/quota-exceeded")


def test_rate_limits_answer_429_with_retry_after(emu):
    emu.configure(general_limit="2/30", launch_limit="off")
    codes = [emu.api("GET", "/ssh-keys", wait_on_429=False).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    resp = emu.api("GET", "/ssh-keys", wait_on_429=False)
    assert float(resp.headers["Retry-After"]) >= 1 and error_code(resp) == "global/rate-limited"
    emu.configure(rate_limit_style="cloudflare")
    text = emu.api("GET", "/ssh-keys", wait_on_429=False)
    assert text.status_code == 429 and text.text == "error code: 1015"
    log = emu.requests()
    assert [e["rate_limited"] for e in log] == [False, False, True, True, True]


def test_launch_rate_limit_is_separate(keyed):
    keyed.configure(general_limit="off", launch_limit="1/30")
    assert launch(keyed).status_code == 200
    assert keyed.api("GET", "/instances", wait_on_429=False).status_code == 200
    second = keyed.api("POST", LAUNCH, {"region_name": "us-east-1", "instance_type_name": "gpu_1x_a10",
                                        "ssh_key_names": ["me"]}, wait_on_429=False)
    assert second.status_code == 429
    assert len(keyed.instances()) == 1


def test_fault_sequence_and_counts(emu):
    emu.add_fault(method="GET", path="/instances", sequence=[{"action": "error", "status": 500}, None,
                                                             {"action": "error", "code": "provider/internal-unavailable"}])
    codes = [emu.api("GET", "/instances").status_code for _ in range(4)]
    assert codes == [500, 200, 503, 200]
    assert [e["code"] for e in emu.requests()] == ["global/internal-error", None, "provider/internal-unavailable", None]
    assert emu.faults()[0]["fired"] == 2


def test_fault_probability_is_reproducible(emu):
    emu.configure(random_seed=11)
    emu.add_fault(path="/ssh-keys", action="error", status=502, probability=0.3)
    first = [emu.api("GET", "/ssh-keys").status_code for _ in range(60)]
    emu.clear_faults()
    emu.configure(random_seed=11)
    emu.add_fault(path="/ssh-keys", action="error", status=502, probability=0.3)
    second = [emu.api("GET", "/ssh-keys").status_code for _ in range(60)]
    assert first == second and 5 < first.count(502) < 35 and set(first) == {200, 502}


def test_gateway_errors_are_html(emu):
    emu.add_fault(path="/instances", action="error", status=504, times=1)
    resp = emu.api("GET", "/instances")
    assert resp.status_code == 504 and resp.headers["content-type"].startswith("text/html")


def test_dropped_connection(emu):
    emu.add_fault(path="/instances", action="drop", times=1)
    with pytest.raises(requests.ConnectionError):
        emu.api("GET", "/instances")
    assert emu.api("GET", "/instances").status_code == 200
    assert emu.requests()[0]["fault"] == "drop" and emu.requests()[0]["status"] is None


@pytest.mark.parametrize("then", ["drop", "error", "timeout"])
def test_ambiguous_launch_creates_then_fails(keyed, then):
    keyed.add_fault(path=LAUNCH, action="ambiguous", then=then, delay=1.0, times=1)
    try:
        resp = keyed.api("POST", LAUNCH, {"region_name": "us-east-1", "instance_type_name": "gpu_1x_a10",
                                          "ssh_key_names": ["me"], "name": "amb"}, timeout=0.3)
        assert resp.status_code >= 500
    except (requests.ConnectionError, requests.Timeout):
        pass
    created = keyed.instances()
    assert [i["name"] for i in created] == ["amb"]
    entry = [e for e in keyed.requests() if e["launch"]][0]
    assert entry["fault"] == "ambiguous" and entry["instance_ids"] == [created[0]["id"]]


def test_latency_fault_still_answers(emu):
    emu.add_fault(path="/images", action="latency", delay=0.05, times=1)
    assert emu.api("GET", "/images").status_code == 200
    assert emu.requests()[-1]["fault"] == "latency"


def test_admin_force_status_restart_rename_and_errors(keyed):
    iid = launch(keyed).json()["data"]["instance_ids"][0]
    keyed.set_status(iid, "active")
    assert keyed.api("GET", f"/instances/{iid}").json()["data"]["status"] == "active"
    restarted = keyed.api("POST", "/instance-operations/restart", {"instance_ids": [iid]}).json()["data"]
    assert [i["status"] for i in restarted["restarted_instances"]] == ["booting"]
    renamed = keyed.api("POST", f"/instances/{iid}", {"name": "renamed"}).json()["data"]
    assert renamed["name"] == "renamed"
    keyed.set_status(iid, "preempted")
    assert keyed.api("GET", "/instances").json()["data"][0]["status"] == "preempted"
    with pytest.raises(RuntimeError):
        keyed.set_status(iid, "exploded")
    with pytest.raises(RuntimeError):
        keyed.configure(boot_delay=-1)
    with pytest.raises(RuntimeError):
        keyed.add_fault(action="explode")
    unknown = keyed.api("POST", "/instance-operations/terminate", {"instance_ids": ["nope"]})
    assert (unknown.status_code, error_code(unknown)) == (404, "global/object-does-not-exist")
    assert keyed.api("GET", "/instances/nope").status_code == 404


def test_invalid_json_and_unknown_paths(emu):
    resp = emu.api("POST", "/instance-operations/terminate", data="{not json", headers={"Content-Type": "application/json"})
    assert (resp.status_code, error_code(resp)) == (400, "global/invalid-parameters")
    assert error_code(emu.api("GET", "/no-such-thing")) == "global/object-does-not-exist"
    assert emu.api("DELETE", "/instances").status_code == 405


def test_console_script_flags_under_gunicorn(tmp_path):
    key_file = tmp_path / "me.pub"
    key_file.write_text(TEST_PUBLIC_KEY + "\n")
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"capacity": {"gpu_1x_gh200": {"us-east-3": 2}}}))
    fault = json.dumps({"method": "GET", "path": "/ssh-keys", "action": "error", "status": 500, "times": 1})
    with run_emulator("--rate-limit", "off", "--boot-delay", "0", "--capacity", "gpu_1x_a10:us-east-1=0",
                      "--ssh-key", f"me={key_file}", "--file-system", "models:us-east-1", "--seed", str(seed),
                      "--fault", fault) as handle:
        assert handle.api("GET", "/ssh-keys").status_code == 500
        keys = handle.api("GET", "/ssh-keys").json()["data"]
        assert [k["name"] for k in keys] == ["me"]
        assert [f["name"] for f in handle.api("GET", "/file-systems").json()["data"]] == ["models"]
        types = handle.api("GET", "/instance-types").json()["data"]
        assert [r["name"] for r in types["gpu_1x_gh200"]["regions_with_capacity_available"]] == ["us-east-3"]
        assert "us-east-1" not in [r["name"] for r in types["gpu_1x_a10"]["regions_with_capacity_available"]]
        resp = launch(handle, instance_type_name="gpu_1x_gh200", region_name="us-east-3")
        assert resp.status_code == 200
        iid = resp.json()["data"]["instance_ids"][0]
        assert handle.api("GET", f"/instances/{iid}").json()["data"]["status"] == "active"  # --boot-delay 0
        assert handle.config()["general_limit"] == {"limit": 0, "period": 0.0}


def test_console_script_rejects_bad_flags():
    result = subprocess.run([sys.executable, "-m", "soong.plugins.lambda_cloud.emulator.cli", "--api-key", "k",
                             "--rate-limit", "fast"], capture_output=True, text=True, timeout=30)
    assert result.returncode != 0 and "N/SECONDS" in result.stderr and "Traceback" not in result.stderr

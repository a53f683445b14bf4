"""LambdaClient over real HTTP: retries, permanent errors, 429 and Retry-After, what is never retried."""

from __future__ import annotations

import pytest

from soong.core import errors as E
from soong.plugins.lambda_cloud.client import LambdaClient, error_class, parse_retry_after
from soong.testing.net import free_port


class Sleeps(list):
    """A sleep function that records what it was asked to wait, and waits it."""

    def __call__(self, seconds):
        import time

        self.append(seconds)
        time.sleep(seconds)


def make_client(handle, **kwargs):
    kwargs.setdefault("backoff_base", 0.01)
    kwargs.setdefault("sleep", Sleeps())
    return LambdaClient(handle.url if handle else f"http://127.0.0.1:{free_port()}/api/v1",
                        handle.api_key if handle else "k", **kwargs)


def test_retry_then_success_with_growing_back_off(emu):
    emu.add_fault(method="GET", path="/instances", sequence=[
        {"action": "error", "status": 500}, {"action": "error", "status": 502},
        {"action": "error", "code": "provider/internal-unavailable"}, {"action": "drop"}, None])
    client = make_client(emu)
    assert client.list_instances() == []
    assert [e["status"] for e in emu.requests()] == [500, 502, 503, None, 200]
    waits = client.sleep
    assert len(waits) == 4 and all(b > a for a, b in zip(waits, waits[1:], strict=False))


def test_gives_up_after_the_attempt_limit(emu):
    emu.add_fault(method="GET", path="/ssh-keys", action="error", status=503)
    client = make_client(emu, max_attempts=3)
    with pytest.raises(E.TransientError) as info:
        client.list_ssh_keys()
    assert len(emu.requests()) == 3 and info.value.exit_code == E.EXIT_UNAVAILABLE


@pytest.mark.parametrize("exc_type, setup", [
    (E.AuthError, lambda emu: None),
    (E.PermissionDeniedError, lambda emu: emu.configure(account_status="inactive")),
])
def test_permanent_errors_fail_at_once_with_the_suggestion(emu, exc_type, setup):
    setup(emu)
    key = "wrong-key" if exc_type is E.AuthError else emu.api_key
    client = LambdaClient(emu.url, key, backoff_base=0.01)
    with pytest.raises(exc_type) as info:
        client.list_instances()
    assert len(emu.requests()) == 1
    assert info.value.suggestion and info.value.suggestion in str(info.value)
    assert info.value.code in str(info.value) and "wrong-key" not in str(info.value)


def test_not_found_and_invalid_are_not_retried(emu):
    client = make_client(emu)
    with pytest.raises(E.ApiNotFoundError):
        client.get_instance("nope")
    with pytest.raises(E.InvalidRequestError):
        client.add_ssh_key("bad", "not a key")
    assert len(emu.requests()) == 2


def test_429_is_honoured_with_retry_after(emu):
    emu.add_fault(method="GET", path="/images", sequence=[
        {"action": "error", "status": 429, "retry_after": 0.2},
        {"action": "error", "status": 429, "retry_after": 0.3, "body": "text"}, None])
    client = make_client(emu)
    assert client.list_images()
    waits = client.sleep
    assert waits[0] >= 0.2 and waits[1] >= 0.3
    assert [e["status"] for e in emu.requests()] == [429, 429, 200]


def test_real_rate_limit_answers_are_waited_out(emu):
    emu.configure(general_limit="1/0.3")
    client = make_client(emu)
    client.list_images()
    client.list_images()  # the emulator refuses this one at first
    log = emu.requests()
    assert [e["rate_limited"] for e in log] == [False, True, False]
    assert client.sleep[0] >= 0.001


def test_retry_after_beyond_the_budget_fails_fast(emu):
    emu.add_fault(method="GET", path="/images", action="error", status=429, retry_after=120)
    client = make_client(emu, retry_budget=5)
    with pytest.raises(E.RateLimitedError) as info:
        client.list_images()
    assert info.value.retry_after == 120 and client.sleep == [] and len(emu.requests()) == 1


def test_non_idempotent_call_is_not_resent_after_it_may_have_arrived(emu):
    emu.add_fault(method="POST", path="/filesystems", action="error", status=502)
    client = make_client(emu)
    with pytest.raises(E.TransientError) as info:
        client.create_file_system("data", "us-east-1")
    assert info.value.request_sent is True and len(emu.requests()) == 1


def test_non_idempotent_call_is_retried_when_never_sent():
    client = make_client(None, max_attempts=3, connect_timeout=0.5)
    with pytest.raises(E.TransientError) as info:
        client.launch({"region_name": "us-east-1"})
    assert info.value.request_sent is False and len(client.sleep) == 2


def test_idempotent_call_survives_a_read_timeout(emu):
    emu.add_fault(method="GET", path="/file-systems", action="latency", delay=0.6, times=1)
    client = make_client(emu, read_timeout=0.2)
    assert client.list_file_systems() == []
    log = emu.requests()  # the single-threaded emulator may time out a queued retry too
    assert log[0]["fault"] == "latency" and log[-1]["status"] == 200 and len(log) >= 2


def test_terminate_is_retried_after_a_lost_answer(emu):
    emu.add_ssh_key("me")
    iid = emu.api("POST", "/instance-operations/launch", {"region_name": "us-east-1", "instance_type_name": "gpu_1x_a10",
                                                          "ssh_key_names": ["me"]}).json()["data"]["instance_ids"][0]
    emu.add_fault(path="/instance-operations/terminate", action="ambiguous", then="drop", times=1)
    client = make_client(emu)
    data = client.terminate([iid])
    assert [i["status"] for i in data["terminated_instances"]] == ["terminating"]


def test_error_mapping_by_code_then_status():
    assert error_class(400, "instance-operations/launch/insufficient-capacity") is E.CapacityError
    assert error_class(400, "global/quota-exceeded") is E.QuotaExceededError
    assert error_class(400, "provider/quota") is E.TransientError
    assert error_class(403, "global/invalid-address") is E.PermissionDeniedError
    assert error_class(404, None) is E.ApiNotFoundError
    assert error_class(502, None) is E.TransientError
    assert error_class(429, "anything") is E.RateLimitedError
    assert error_class(418, "unheard-of") is E.ApiError


def test_retry_after_parsing():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("0.25") == 0.25
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=lambda: 1445412480.0 - 10) == pytest.approx(10)
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
    assert parse_retry_after("-5") == 0.0

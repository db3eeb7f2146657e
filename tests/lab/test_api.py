"""The JSON API, driven as the page drives it, against a real worker, real Redis and real jails."""

from __future__ import annotations

import json

import pytest

from .conftest import LabClient

pytestmark = pytest.mark.slow


def test_three_calls_one_cold_two_warm_with_the_same_instance(lab: LabClient):
    function = lab.new_function(name="reuse")
    first, second, third = (lab.run(function["id"])[0] for _ in range(3))
    assert first["status"] == "success" and first["cold"] is True
    assert first["init_reason"] == "first_call" and first["init_reason_text"] == "the first call"
    assert second["cold"] is False and third["cold"] is False
    bodies = [json.loads(i["response"]) for i in (first, second, third)]
    assert len({b["instance"] for b in bodies}) == 1
    assert [b["calls_in_this_environment"] for b in bodies] == [1, 2, 3]
    assert first["init_duration_ms"] > 0 and second["init_duration_ms"] is None
    assert first["report"].startswith(f"REPORT RequestId: {first['request_id']}\tDuration: ")
    assert lab.call("GET", f"/api/invocations/{first['request_id']}")["logs"][-1] == first["report"]


def test_n_in_a_row_run_in_order_in_one_warm_environment(lab: LabClient):
    function = lab.new_function(name="series")
    results = lab.run(function["id"], mode="series", count=4)
    assert [json.loads(r["response"])["calls_in_this_environment"] for r in results] == [1, 2, 3, 4]
    assert [r["cold"] for r in results] == [True, False, False, False]


def test_a_burst_makes_environments_at_once(lab: LabClient):
    function = lab.new_function(
        name="burst",
        code="import time\ndef lambda_handler(event, context):\n    time.sleep(0.5)\n    return 1\n",
    )
    results = lab.run(function["id"], mode="burst", count=4)
    assert all(r["status"] == "success" for r in results)
    assert len({r["environment"] for r in results}) == 4
    envs = lab.call("GET", f"/api/functions/{function['id']}/environments")["environments"]
    assert len(envs) == 4 and {e["state"] for e in envs} == {"frozen"}


def test_editing_the_code_makes_the_next_call_cold_and_says_why(lab: LabClient):
    function = lab.new_function(name="edit")
    before = lab.run(function["id"])[0]
    updated = lab.call(
        "PATCH", f"/api/functions/{function['id']}", {"code": function["code"] + "\n# edited\n"}
    )
    assert updated["new_revision"] and updated["changed"] == ["code"] and updated["revision"] == 2
    after = lab.run(function["id"])[0]
    assert after["cold"] and after["init_reason"] == "new_revision"
    assert after["environment"] != before["environment"]
    # the event and the idle eviction are not revisions: still warm
    lab.call("PATCH", f"/api/functions/{function['id']}", {"event": '{"x": 1}', "idle_timeout_s": 60})
    again = lab.run(function["id"])[0]
    assert not again["cold"] and again["environment"] == after["environment"]


def test_a_timeout_then_a_re_init(lab: LabClient):
    function = lab.new_function(
        name="timeout",
        timeout_s=1,
        code="import time\ndef lambda_handler(event, context):\n    time.sleep(event.get('s', 0))\n    return 'ok'\n",
    )
    slow = lab.run(function["id"], event={"s": 3})[0]
    assert slow["status"] == "timeout" and slow["error_type"] == "Sandbox.Timedout"
    assert json.loads(slow["response"])["errorMessage"].endswith("Task timed out after 1.00 seconds")
    after = lab.run(function["id"])[0]
    assert after["status"] == "success" and not after["cold"] and after["environment"] == slow["environment"]
    assert after["init_reason"] == "reset_timeout"


def test_two_users_with_the_same_code_get_their_own_environments(lab: LabClient, other_lab: LabClient):
    mine = lab.new_function(name="same")
    theirs = other_lab.new_function(name="same")
    a = lab.run(mine["id"])[0]
    b = other_lab.run(theirs["id"])[0]
    assert a["environment"] != b["environment"]
    assert json.loads(b["response"])["calls_in_this_environment"] == 1


def test_another_users_function_and_invocations_are_not_found(lab: LabClient, other_lab: LabClient):
    mine = lab.new_function(name="private")
    rid = lab.run(mine["id"])[0]["request_id"]
    for method, path in (
        ("GET", f"/api/functions/{mine['id']}"),
        ("PATCH", f"/api/functions/{mine['id']}"),
        ("POST", f"/api/functions/{mine['id']}/invoke"),
        ("GET", f"/api/functions/{mine['id']}/invocations"),
        ("GET", f"/api/functions/{mine['id']}/environments"),
        ("GET", f"/api/invocations/{rid}"),
        ("GET", f"/api/invocations/{rid}/response"),
        ("DELETE", f"/api/functions/{mine['id']}"),
    ):
        answer = other_lab.call(method, path, {} if method in ("PATCH", "POST") else None, status=404)
        assert answer["error"]["type"] == "ResourceNotFoundException", (method, path)
    assert lab.call("GET", f"/api/functions/{mine['id']}", status=200)["name"] == "private"


def test_bad_input_is_refused_before_anything_runs(lab: LabClient):
    function = lab.new_function(name="refusals")
    answer = lab.call("POST", f"/api/functions/{function['id']}/invoke", {"event": "{nope"}, status=400)
    assert answer["error"]["type"] == "InvalidRequestContentException" and answer["error"]["field"] == "event"
    answer = lab.call(
        "POST", f"/api/functions/{function['id']}/invoke", {"mode": "burst", "count": 500}, status=400
    )
    assert answer["error"]["field"] == "count"
    answer = lab.call("PATCH", f"/api/functions/{function['id']}", {"memory_mb": 20000}, status=400)
    assert answer["error"] == {
        "type": "InvalidParameterValueException",
        "field": "memory_mb",
        "message": "Memory must be between 128 and 10,240 MB",
    }
    assert lab.call("GET", f"/api/functions/{function['id']}/invocations")["invocations"] == []


def test_the_full_response_is_kept_and_fetched_whole(lab: LabClient):
    function = lab.new_function(
        name="big", code="def lambda_handler(event, context):\n    return 'x' * 2_000_000\n", memory_mb=512
    )
    result = lab.run(function["id"])[0]
    assert result["response_bytes"] == 2_000_002
    whole = lab.http.get(f"/api/invocations/{result['request_id']}/response")
    assert whole["Content-Type"] == "application/json" and whole.content == b'"' + b"x" * 2_000_000 + b'"'


def test_shutting_down_the_environments_makes_the_next_call_cold(lab: LabClient):
    function = lab.new_function(name="shutdown")
    lab.run(function["id"])
    assert lab.call("POST", f"/api/functions/{function['id']}/environments", status=202)["workers"] == 1
    after = lab.run(function["id"])[0]
    assert after["cold"] and after["init_reason"] in ("shut_down", "first_call", "busy")


def test_invocations_per_minute_are_bounded_per_owner_and_per_address(lab: LabClient, settings):
    function = lab.new_function(name="rate")
    import redis as redis_lib

    r = redis_lib.Redis.from_url(settings.REDIS_URL)
    for key in r.keys("ll:rate:*"):
        r.delete(key)
    settings.LAB_INVOCATIONS_PER_MINUTE = 3
    lab.invoke(function["id"], mode="series", count=3)
    answer = lab.call("POST", f"/api/functions/{function['id']}/invoke", {}, status=429)
    assert (
        answer["error"]["type"] == "TooManyRequestsException" and "per minute" in answer["error"]["message"]
    )
    # a new session from the same address (cookies cleared) is bounded all the same
    fresh = LabClient(address=lab.address)
    theirs = fresh.new_function(name="rate-2")
    assert fresh.call("POST", f"/api/functions/{theirs['id']}/invoke", {}, status=429)["error"]["type"] == (
        "TooManyRequestsException"
    )
    for key in r.keys("ll:rate:*"):
        r.delete(key)


def test_live_environments_are_bounded_per_owner(lab: LabClient, settings):
    settings.LAB_MAX_LIVE_ENVIRONMENTS = 3
    function = lab.new_function(
        name="live-bound", code="import time\ndef lambda_handler(event, context):\n    time.sleep(0.3)\n"
    )
    lab.run(function["id"], mode="burst", count=3)
    answer = lab.call(
        "POST", f"/api/functions/{function['id']}/invoke", {"mode": "burst", "count": 2}, status=429
    )
    assert "3 live execution environments (at most 3)" in answer["error"]["message"]
    lab.call("POST", f"/api/functions/{function['id']}/environments", status=202)


def test_a_burst_past_the_reserved_concurrency_is_throttled_and_never_runs(lab: LabClient):
    function = lab.new_function(
        name="reserved",
        code="import time\ndef lambda_handler(event, context):\n    time.sleep(1)\n    return 1\n",
    )
    lab.call("PATCH", f"/api/functions/{function['id']}", {"reserved_concurrency": 2}, status=200)
    results = lab.run(function["id"], mode="burst", count=5)
    statuses = sorted(r["status"] for r in results)
    assert statuses == ["success", "success", "throttled", "throttled", "throttled"]
    throttled = [r for r in results if r["status"] == "throttled"]
    assert all(r["error_type"] == "TooManyRequestsException" and r["environment"] is None for r in throttled)
    body = json.loads(throttled[0]["response"])
    assert body["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    assert len({r["environment"] for r in results if r["status"] == "success"}) == 2
    # the slots come back when the calls end: the next burst of two runs
    again = lab.run(function["id"], mode="burst", count=2)
    assert [r["status"] for r in again] == ["success", "success"]
    # 0 throttles everything
    lab.call("PATCH", f"/api/functions/{function['id']}", {"reserved_concurrency": 0}, status=200)
    assert lab.run(function["id"])[0]["status"] == "throttled"
    answer = lab.call("PATCH", f"/api/functions/{function['id']}", {"reserved_concurrency": -1}, status=400)
    assert answer["error"]["field"] == "reserved_concurrency"

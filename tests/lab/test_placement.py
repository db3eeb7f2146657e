"""Warm calls reach the worker holding the environment; a worker that dies leaves nothing hanging."""

from __future__ import annotations

import json
import time

import pytest
import redis
from django.conf import settings

from lambdalab.celery import app

from .conftest import LabClient

pytestmark = pytest.mark.slow


def events_of(function_id: str) -> list[dict]:
    r = redis.Redis.from_url(settings.REDIS_URL)
    return [json.loads(fields[b"e"]) for _, fields in r.xrange(f"ll:ev:{function_id}")]


def wait_for_event(function_id: str, predicate, timeout: float = 30.0) -> dict:
    """Block on the function's stream until an event matches (XREAD, not a sleep)."""
    r = redis.Redis.from_url(settings.REDIS_URL)
    cursor, deadline = "0-0", time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = r.xread({f"ll:ev:{function_id}": cursor}, block=500, count=100)
        for _, entries in found:
            for entry_id, fields in entries:
                cursor = entry_id
                event = json.loads(fields[b"e"])
                if predicate(event):
                    return event
    raise AssertionError("the awaited event never came")


def test_every_warm_call_reaches_its_environment_across_two_workers(lab: LabClient, start_worker):
    start_worker("second")
    function = lab.new_function(name="placed")
    first = lab.run(function["id"])[0]
    later = [lab.run(function["id"])[0] for _ in range(10)]
    # both workers take from the shared queue: without placement about half would land cold elsewhere
    assert all(not r["cold"] and r["environment"] == first["environment"] for r in later)
    assert [json.loads(r["response"])["calls_in_this_environment"] for r in later] == list(range(2, 12))


def test_a_dead_worker_leaves_no_call_running_and_no_environment_registered(
    lab: LabClient, lab_worker, start_worker
):
    doomed = start_worker("doomed")
    app.control.cancel_consumer("lab", destination=[lab_worker.name], reply=True, timeout=5)
    try:
        function = lab.new_function(
            name="doomed",
            timeout_s=60,
            code="import time\ndef lambda_handler(event, context):\n    time.sleep(event.get('s', 0))\n    return 1\n",
        )
        request_id = lab.invoke(function["id"], event={"s": 50})[0]
        started = wait_for_event(function["id"], lambda e: e["type"] == "invoke.start")
        assert started["request_id"] == request_id
        doomed.kill()
        t0 = time.monotonic()
        end = wait_for_event(
            function["id"], lambda e: e["type"] == "invoke.end" and e["request_id"] == request_id
        )
        assert time.monotonic() - t0 < 15  # within seconds: the heartbeat's expiry and one janitor round
        assert end["status"] == "failure" and end["error_type"] == "Sandbox.Failure"
        row = lab.wait(request_id)
        assert row["status"] == "failure" and "stopped" in json.loads(row["response"])["errorMessage"]
        shutdown = wait_for_event(function["id"], lambda e: e["type"] == "shutdown")
        assert shutdown["reason"] == "failure"
        assert lab.call("GET", f"/api/functions/{function['id']}/environments")["environments"] == []
    finally:
        app.control.add_consumer("lab", destination=[lab_worker.name], reply=True, timeout=5)
    again = lab.run(function["id"], event={"s": 0})[0]
    assert again["status"] == "success" and again["cold"] and again["init_reason"] == "lost"


def test_a_worker_without_memory_for_the_call_refuses_it_clearly(lab: LabClient, lab_worker, start_worker):
    start_worker("small", LAMBDALAB_MEMORY_BUDGET_MB="1024")
    app.control.cancel_consumer("lab", destination=[lab_worker.name], reply=True, timeout=5)
    try:
        function = lab.new_function(name="too-big", memory_mb=2048)
        [refused] = lab.run(function["id"])
    finally:
        app.control.add_consumer("lab", destination=[lab_worker.name], reply=True, timeout=5)
    assert refused["status"] == "refused" and refused["error_type"] == "TooManyRequestsException"
    assert "budget is 1,024 MB" in json.loads(refused["response"])["errorMessage"]
    end = wait_for_event(function["id"], lambda e: e["type"] == "invoke.end")
    assert end["status"] == "refused" and end["request_id"] == refused["request_id"]

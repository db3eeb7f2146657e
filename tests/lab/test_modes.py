"""Always-cold mode (a local emulator's model) and provisioned concurrency (Lambda's), as function
settings, through a real worker."""

from __future__ import annotations

import json

import pytest

from lambdalab.celery import app
from lambdalab.lab import stream

from .conftest import LabClient
from .test_placement import wait_for_event

pytestmark = pytest.mark.slow

COUNTER = """import os
calls = 0
def lambda_handler(event, context):
    global calls
    calls += 1
    return {"calls": calls, "init": os.environ["AWS_LAMBDA_INITIALIZATION_TYPE"]}
"""


def test_always_cold_runs_every_call_in_a_new_environment_discarded_after_it(lab: LabClient):
    function = lab.new_function(name="emulated", code=COUNTER)
    warm = lab.run(function["id"], mode="series", count=2)  # production first: one warm environment
    assert [r["cold"] for r in warm] == [True, False]
    lab.call("PATCH", f"/api/functions/{function['id']}", {"always_cold": True})
    rows = lab.run(function["id"], mode="series", count=3)
    assert all(r["cold"] and r["init_reason"] == "always_cold" for r in rows)
    assert len({r["environment"] for r in rows} | {warm[0]["environment"]}) == 4  # never the warm one
    assert [json.loads(r["response"])["calls"] for r in rows] == [1, 1, 1]  # globals never survive
    for row in rows:  # each shut down right after its call, never frozen
        gone = wait_for_event(
            function["id"],
            lambda e, env=row["environment"]: e["type"] == "shutdown" and e["environment"] == env,
        )
        assert gone["reason"] == "discarded"
    events = lab_events(function["id"])
    assert not [
        e for e in events if e["type"] == "freeze" and e["environment"] in {r["environment"] for r in rows}
    ]
    # back to Lambda's model: the production environment was left alone and is still warm
    lab.call("PATCH", f"/api/functions/{function['id']}", {"always_cold": False})
    [again] = lab.run(function["id"])
    assert not again["cold"] and again["environment"] == warm[0]["environment"]
    assert json.loads(again["response"])["calls"] == 3


def lab_events(function_id: str) -> list[dict]:
    from lambdalab.lab import rds

    return [json.loads(f[b"e"]) for _, f in rds.client().xrange(f"ll:ev:{function_id}")]


def wait_provisioned(function_id: str, n: int, after: int = 0) -> list[dict]:
    """Until ``n`` provisioned environments are frozen and ready (the worker's own event, after
    sequence number ``after``)."""
    event = wait_for_event(
        function_id, lambda e: e["type"] == "provisioned" and e["ready"] == n and e["seq"] > after, timeout=60
    )
    assert event["error"] is None
    envs = [e for e in stream.environments(function_id) if e.get("init") == "provisioned-concurrency"]
    assert len(envs) == n and all(e["state"] == "frozen" for e in envs)
    return envs


def test_provisioned_concurrency_initialises_ahead_and_calls_within_it_are_warm(lab: LabClient):
    # calls that last, so that three at once overlap (else the third may find one free already)
    slow = COUNTER.replace("    calls += 1\n", "    calls += 1\n    __import__('time').sleep(0.5)\n")
    function = lab.new_function(name="provisioned", code=slow, idle_timeout_s=1)
    lab.call("PATCH", f"/api/functions/{function['id']}", {"provisioned_concurrency": 2})
    envs = wait_provisioned(function["id"], 2)
    inits = [e for e in lab_events(function["id"]) if e["type"] == "init.start"]
    assert len(inits) == 2 and all(e["initialization_type"] == "provisioned-concurrency" for e in inits)
    assert all(e["phase"] == "init" and e.get("request_id") is None for e in inits)  # before any call

    rows = lab.run(function["id"], mode="burst", count=3)
    warm = [r for r in rows if not r["cold"]]
    cold = [r for r in rows if r["cold"]]
    assert len(warm) == 2 and {r["environment"] for r in warm} == {e["id"] for e in envs}
    assert all(r["init_duration_ms"] is None and "Init Duration" not in r["report"] for r in warm)
    assert all(json.loads(r["response"])["init"] == "provisioned-concurrency" for r in warm)
    # the third spilled over to on-demand: a cold start, initialised as on-demand
    assert len(cold) == 1 and json.loads(cold[0]["response"])["init"] == "on-demand"
    # idle eviction (1 s) takes the on-demand one, never the provisioned ones
    gone = wait_for_event(function["id"], lambda e: e["type"] == "shutdown")
    assert gone["environment"] == cold[0]["environment"] and gone["reason"] == "idle"
    assert {e["id"] for e in stream.environments(function["id"])} == {e["id"] for e in envs}


def test_provisioned_environments_follow_the_latest_revision_and_the_number(lab: LabClient):
    function = lab.new_function(name="follows", code=COUNTER)
    lab.call("PATCH", f"/api/functions/{function['id']}", {"provisioned_concurrency": 1})
    [old] = wait_provisioned(function["id"], 1)
    lab.call("PATCH", f"/api/functions/{function['id']}", {"code": COUNTER + "\n# revision 2\n"})
    gone = wait_for_event(function["id"], lambda e: e["type"] == "shutdown" and e["environment"] == old["id"])
    [new] = wait_provisioned(function["id"], 1, after=gone["seq"])
    assert new["revision"] == "2" and new["id"] != old["id"]
    lab.call("PATCH", f"/api/functions/{function['id']}", {"provisioned_concurrency": 0})
    wait_for_event(function["id"], lambda e: e["type"] == "shutdown" and e["environment"] == new["id"])
    wait_for_event(function["id"], lambda e: e["type"] == "provisioned" and e["wanted"] == 0)
    assert stream.environments(function["id"]) == []


def test_provisioned_concurrency_is_checked(lab: LabClient):
    function = lab.new_function(name="checked", reserved_concurrency=1)
    path = f"/api/functions/{function['id']}"
    over = lab.call("PATCH", path, {"provisioned_concurrency": 2}, status=400)["error"]
    assert over["field"] == "provisioned_concurrency" and "reserved concurrency (1)" in over["message"]
    assert lab.call("PATCH", path, {"provisioned_concurrency": 99}, status=400)["error"]["field"] == (
        "provisioned_concurrency"
    )
    assert lab.call("PATCH", path, {"always_cold": "yes"}, status=400)["error"]["field"] == "always_cold"
    lab.call("PATCH", path, {"always_cold": True})
    both = lab.call("PATCH", path, {"provisioned_concurrency": 1}, status=400)["error"]
    assert both["field"] == "always_cold"


def test_provisioned_environments_come_back_on_another_worker_when_theirs_dies(
    lab: LabClient, lab_worker, start_worker
):
    doomed = start_worker("doomed-pc")
    app.control.cancel_consumer("lab", destination=[lab_worker.name], reply=True, timeout=5)
    try:
        function = lab.new_function(name="survives", code=COUNTER)
        lab.call("PATCH", f"/api/functions/{function['id']}", {"provisioned_concurrency": 1})
        [first] = wait_provisioned(function["id"], 1)
        assert first["worker"] == doomed.name
    finally:
        app.control.add_consumer("lab", destination=[lab_worker.name], reply=True, timeout=5)
    doomed.kill()
    again = wait_for_event(
        function["id"],
        lambda e: e["type"] == "init.start" and e["environment"] != first["id"],
        timeout=60,
    )
    assert again["initialization_type"] == "provisioned-concurrency"
    [second] = wait_provisioned(function["id"], 1, after=again["seq"])
    assert second["worker"] == lab_worker.name

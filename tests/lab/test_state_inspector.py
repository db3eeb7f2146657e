"""The State inspector through the API: the worker holding a frozen environment describes it."""

from __future__ import annotations

import json
import time

import pytest
import redis
from django.conf import settings

from .conftest import LabClient
from .test_placement import wait_for_event

pytestmark = pytest.mark.slow

CODE = """import os

VISITS = 0
CACHE = {"hits": 0}

with open("/tmp/warm.txt", "w") as f:
    f.write("made by Init")


def lambda_handler(event, context):
    global VISITS
    VISITS += 1
    os.makedirs("/tmp/models", exist_ok=True)
    with open("/tmp/models/weights.bin", "wb") as f:
        f.write(b"w" * 2048)
    return {"visits": VISITS}
"""


def state_path(function: dict, env: str) -> str:
    return f"/api/functions/{function['id']}/environments/{env}/state"


def test_a_frozen_environment_shows_its_globals_and_its_tmp(lab: LabClient):
    function = lab.new_function(name="inspected", code=CODE)
    first = lab.run(function["id"])[0]
    state = lab.call("GET", state_path(function, first["environment"]), status=200)
    names = {entry["name"]: entry for entry in state["names"]}
    assert names["VISITS"]["text"] == "1" and names["CACHE"]["text"] == "{'hits': 0} (1 item)"
    tmp = {entry["path"]: entry for entry in state["tmp"]}
    assert tmp["/tmp/warm.txt"]["size"] == len("made by Init")
    assert tmp["/tmp/models/weights.bin"]["size"] == 2048 and tmp["/tmp/models"]["kind"] == "dir"
    assert state["state"] == "frozen" and state["after"] == first["request_id"] and state["taken_at"]
    second = lab.run(function["id"])[0]  # inspecting ran nothing: the call is warm, its count 2
    assert not second["cold"] and json.loads(second["response"]) == {"visits": 2}


def test_an_unknown_environment_or_someone_elses_function_is_not_found(lab: LabClient, other_lab: LabClient):
    function = lab.new_function(name="mine", code=CODE)
    env = lab.run(function["id"])[0]["environment"]
    missing = lab.call("GET", state_path(function, "0" * 32), status=404)
    assert missing["error"]["type"] == "ResourceNotFoundException"
    other_lab.call("GET", state_path(function, env), status=404)  # the same check as the controls


def test_a_busy_environment_is_a_conflict(lab: LabClient):
    function = lab.new_function(
        name="busy",
        code="import time\n\ndef lambda_handler(event, context):\n    time.sleep(event.get('s', 0))\n",
    )
    env = lab.run(function["id"])[0]["environment"]
    [request_id] = lab.invoke(function["id"], event='{"s": 2}')
    wait_for_event(function["id"], lambda e: e["type"] == "invoke.start" and e["request_id"] == request_id)
    busy = lab.call("GET", state_path(function, env), status=409)
    assert busy["error"]["type"] == "ResourceConflictException" and "busy" in busy["error"]["message"]
    lab.wait(request_id)
    assert lab.call("GET", state_path(function, env), status=200)["state"] == "frozen"


def test_a_worker_that_does_not_answer_is_a_gateway_timeout(lab: LabClient):
    function = lab.new_function(name="orphan", code=CODE)
    # an environment the registry says a worker holds, on a worker that is not there to answer
    r = redis.Redis.from_url(settings.REDIS_URL)
    env = "f" * 32
    r.hset(f"ll:envs:{function['id']}", env, json.dumps({"state": "frozen", "worker": "gone@nowhere"}))
    started = time.monotonic()
    timed_out = lab.call("GET", state_path(function, env), status=504)
    assert timed_out["error"]["type"] == "ServiceException" and 2.5 < time.monotonic() - started < 6
    r.hdel(f"ll:envs:{function['id']}", env)

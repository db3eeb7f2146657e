"""Lifecycle controls: make a lesson happen now (evict, reset, age an environment)."""

from __future__ import annotations

import json

import pytest

from .conftest import LabClient
from .test_placement import wait_for_event

pytestmark = pytest.mark.slow


def warm_environment(lab: LabClient) -> tuple[dict, str]:
    function = lab.new_function(name="controls")
    first = lab.run(function["id"])[0]
    return function, first["environment"]


def control(lab: LabClient, function: dict, env: str, **body) -> dict:
    return lab.call("POST", f"/api/functions/{function['id']}/environments/{env}", body, status=202)


def test_evicting_now_makes_the_next_call_cold_for_eviction(lab: LabClient):
    function, env = warm_environment(lab)
    control(lab, function, env, action="evict")
    shutdown = wait_for_event(function["id"], lambda e: e["type"] == "shutdown" and e["environment"] == env)
    assert shutdown["reason"] == "idle"
    after = lab.run(function["id"])[0]
    assert after["cold"] and after["init_reason"] == "evicted" and after["environment"] != env


def test_resetting_the_runtime_makes_the_next_call_re_initialise_in_the_same_environment(lab: LabClient):
    function, env = warm_environment(lab)
    control(lab, function, env, action="reset")
    wait_for_event(function["id"], lambda e: e["type"] == "reset" and e["environment"] == env)
    after = lab.run(function["id"])[0]
    assert not after["cold"] and after["environment"] == env
    assert after["init_reason"] == "reset_request"
    assert json.loads(after["response"])["calls_in_this_environment"] == 1  # globals started over


def test_ageing_an_environment_past_its_idle_eviction_evicts_it(lab: LabClient):
    function, env = warm_environment(lab)  # idle eviction 600 s
    control(lab, function, env, action="age", seconds=601)
    shutdown = wait_for_event(function["id"], lambda e: e["type"] == "shutdown" and e["environment"] == env)
    assert shutdown["reason"] == "idle" and shutdown["idle_s"] >= 600


def test_controls_are_checked(lab: LabClient, other_lab: LabClient):
    function, env = warm_environment(lab)
    path = f"/api/functions/{function['id']}/environments/{env}"
    assert lab.call("POST", path, {"action": "explode"}, status=400)["error"]["field"] == "action"
    assert lab.call("POST", path, {"action": "age", "seconds": -5}, status=400)["error"]["field"] == "seconds"
    unknown = f"/api/functions/{function['id']}/environments/{'0' * 32}"
    assert (
        lab.call("POST", unknown, {"action": "evict"}, status=404)["error"]["type"]
        == "ResourceNotFoundException"
    )
    assert other_lab.call("POST", path, {"action": "evict"}, status=404)

"""A recorded run: the chosen calls' lifecycle events, from a real worker's event stream."""

from __future__ import annotations

import json

import pytest

from lambdalab.lab import rds
from tests.lab.conftest import LabClient

from .conftest import make_share

COUNTING = """import uuid

INSTANCE_ID = uuid.uuid4().hex[:8]
calls = 0


def lambda_handler(event, context):
    global calls
    calls += 1
    print(f"instance {INSTANCE_ID}: call {calls}")
    return {"instance": INSTANCE_ID, "calls": calls}
"""


@pytest.fixture
def author(transactional_db, lab_worker) -> LabClient:
    return LabClient()


def _run_of(client: LabClient, share_id: str) -> dict:
    return client.call("GET", f"/api/shares/{share_id}", status=200)["run"]


def test_a_share_with_its_run_holds_each_calls_lifecycle_events(author):
    function = author.new_function(code=COUNTING)
    calls = author.run(function["id"], mode="series", count=2)
    made = make_share(author, function["id"], status=201, include_run=True)
    run = _run_of(author, made["id"])
    assert run["calls"] == 2
    events = run["events"]
    ends = [e for e in events if e["type"] == "invoke.end"]
    assert [e["request_id"] for e in ends] == [c["request_id"] for c in calls]
    assert [e["cold"] for e in ends] == [True, False]
    types = [e["type"] for e in events]
    assert types.index("init.start") < types.index("invoke.start") and "freeze" in types
    assert [e["time"] for e in events] == sorted(e["time"] for e in events)
    assert any(e["type"] == "log" and "call 2" in e.get("line", "") for e in events)
    for event in events:  # the lab's bookkeeping stays out
        assert not {"function_id", "function", "seq", "worker"} & set(event)
    assert function["id"] not in json.dumps(run)


def test_only_the_chosen_calls_are_recorded(author):
    function = author.new_function(code=COUNTING)
    calls = author.run(function["id"], mode="series", count=3)
    chosen = calls[-1]["request_id"]
    made = make_share(author, function["id"], status=201, include_run=True, invocations=[chosen])
    events = _run_of(author, made["id"])["events"]
    assert {e["request_id"] for e in events} - {None} == {chosen}
    assert [e["type"] for e in events if e["type"] in ("init.start", "thaw", "invoke.start")] == [
        "thaw",
        "invoke.start",
    ]  # a warm call: its thaw, no Init


def test_values_left_out_are_masked_in_the_run_too(author):
    code = "import os\n\ndef lambda_handler(e, c):\n    print(os.environ['TOKEN'])\n    return os.environ['TOKEN']\n"
    function = author.new_function(code=code, environment={"TOKEN": "hush-hush-123"})
    author.run(function["id"])
    without = make_share(author, function["id"], status=201, include_run=True)
    assert "hush-hush-123" not in json.dumps(_run_of(author, without["id"]))
    assert "****" in json.dumps(_run_of(author, without["id"]))
    with_values = make_share(author, function["id"], status=201, include_run=True, include_env_values=True)
    assert "hush-hush-123" in json.dumps(_run_of(author, with_values["id"]))


def test_output_lines_are_bounded_per_call_and_the_cut_is_said(author, settings):
    settings.LAB_SHARE_LOG_LINES = 5
    code = "def lambda_handler(e, c):\n    for i in range(40):\n        print(f'line {i}')\n    return 1\n"
    function = author.new_function(code=code)
    author.run(function["id"])
    events = _run_of(author, make_share(author, function["id"], status=201, include_run=True)["id"])["events"]
    printed = [e["line"] for e in events if e["type"] == "log" and e["line"].startswith("line ")]
    assert printed == [f"line {i}" for i in range(5)]
    assert any("35 more output lines were not included" in e.get("line", "") for e in events)


def test_a_call_the_stream_no_longer_holds_is_rebuilt_from_its_row(author):
    function = author.new_function(code=COUNTING)
    calls = author.run(function["id"], mode="series", count=2)
    rds.client().delete(rds.key("ev", function["id"]))  # as after a day: the stream expired
    events = _run_of(author, make_share(author, function["id"], status=201, include_run=True)["id"])["events"]
    ends = [e for e in events if e["type"] == "invoke.end"]
    assert [e["request_id"] for e in ends] == [c["request_id"] for c in calls]
    assert [e["status"] for e in ends] == ["success", "success"] and ends[0]["cold"] is True
    assert [e["type"] for e in events].count("invoke.start") == 2
    assert any("call 2" in e.get("line", "") for e in events if e["type"] == "log")

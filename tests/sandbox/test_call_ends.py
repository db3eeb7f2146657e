"""Every invoke.start is followed by exactly one invoke.end, and by END and REPORT, whatever happens."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

import pytest

from sandbox.channel import ControlChannel, EnvironmentLost
from sandbox.runtime import frames
from tests.conftest import Recorder

SLOW = """
import time
time.sleep(float(__import__("os").environ.get("INIT_S", "0")))
def lambda_handler(event, context):
    print("working")
    time.sleep(event.get("s", 0))
    return "done"
"""


def the_agent(env) -> int:
    return next(pid for pid in env.keep_pids if pid != env.proc.pid)


def call_in_background(pool, spec, event):
    box = {}
    thread = threading.Thread(target=lambda: box.update(result=pool.invoke(spec, event)))
    thread.start()
    return thread, box


def assert_ended_once(recorder: Recorder, request_id: str) -> dict:
    """One invoke.start, one invoke.end after it, and END then REPORT lines between them."""
    mine = [e for e in recorder.of(request_id=request_id)]
    kinds = [e["type"] for e in mine]
    assert kinds.count("invoke.start") == 1 and kinds.count("invoke.end") == 1, kinds
    assert kinds.index("invoke.start") < kinds.index("invoke.end")
    lines = [e["line"] for e in mine if e["type"] == "log" and e["stream"] == "platform"]
    assert lines[-2] == f"END RequestId: {request_id}"
    assert lines[-1].startswith(f"REPORT RequestId: {request_id}\t")
    return next(e for e in mine if e["type"] == "invoke.end")


def test_an_agent_killed_from_the_host_mid_call_ends_the_call_with_a_report(make_pool, make_spec):
    recorder = Recorder()
    pool = make_pool(on_event=recorder)
    spec = make_spec(SLOW, timeout_s=30)
    pool.invoke(spec)  # warm it up
    thread, box = call_in_background(pool, spec, {"s": 20})
    start = recorder.wait_for(lambda e: e["type"] == "log" and e["line"] == "working")
    env = pool._all[start["environment"]]
    time.sleep(0.2)  # a measurable stretch of the call, so its Duration is not a rounding of 0
    os.kill(the_agent(env), signal.SIGKILL)
    thread.join(10)
    result = box["result"]
    assert result.status == "failure" and result.error_type == "Sandbox.Failure"
    end = assert_ended_once(recorder, result.request_id)
    assert end["status"] == "failure" and end["error_type"] == "Sandbox.Failure"
    assert 200 <= result.duration_ms < 10_000  # what was measured, not 0
    assert result.billed_duration_ms == int(-(-result.duration_ms // 1))  # billed what ran
    assert "Status: error\tError Type: Sandbox.Failure" in result.report
    assert "working" in result.logs  # its output still reached the caller, and was billed
    assert recorder.wait_for(lambda e: e["type"] == "shutdown" and e["environment"] == env.id)["reason"] == (
        "failure"
    )
    assert env.id not in pool._all
    again = pool.invoke(spec)
    assert again.status == "success" and again.cold


def test_a_jail_lost_during_a_cold_start_still_ends_its_call(make_pool, make_spec):
    recorder = Recorder()
    pool = make_pool(on_event=recorder, stem_cells=0)
    spec = make_spec(SLOW, environment={"INIT_S": "5"})
    thread, box = call_in_background(pool, spec, {})
    init = recorder.wait_for(lambda e: e["type"] == "init.start")
    env = pool._all[init["environment"]]
    deadline = time.monotonic() + 5
    while not env.keep_pids and time.monotonic() < deadline:
        time.sleep(0.01)  # the jail is being built
    env.proc.kill()  # bwrap: the whole jail goes with it
    thread.join(10)
    result = box["result"]
    assert result.status == "failure" and result.cold
    assert_ended_once(recorder, result.request_id)
    assert result.duration_ms > 0 and result.init_duration_ms is None


def test_closing_the_pool_mid_call_ends_the_call(make_pool, make_spec, monkeypatch):
    from sandbox import pool as pool_module

    recorder = Recorder()
    pool = make_pool(on_event=recorder)
    spec = make_spec(SLOW, timeout_s=60)
    thread, box = call_in_background(pool, spec, {"s": 50})
    recorder.wait_for(lambda e: e["type"] == "log" and e["line"] == "working")
    monkeypatch.setattr(pool_module, "CLOSE_WAIT_S", 0.5)  # don't wait out the 50 s call
    pool.close()
    thread.join(10)
    result = box["result"]
    assert result.status == "failure"
    assert_ended_once(recorder, result.request_id)


def test_a_hostile_frame_is_a_lost_environment_never_a_host_exception():
    host, jail = socket.socketpair()
    channel = ControlChannel(host, on_log=lambda b: None, on_log_dropped=lambda: None)
    nested = b"[" * 100_000 + b"]" * 100_000
    header = b'{"t": "response", "x": ' + nested + b"}"
    jail.sendall(frames.PREFIX.pack(len(header), 0) + header)
    with pytest.raises(EnvironmentLost, match="protocol"):
        channel.receive(time.monotonic() + 5)
    for bad in (b"[1, 2]", b'{"t": 5}', b"\xff\xfe", b'{"t": "x"' + b" " * 10):
        host2, jail2 = socket.socketpair()
        channel2 = ControlChannel(host2, on_log=lambda b: None, on_log_dropped=lambda: None)
        jail2.sendall(frames.PREFIX.pack(len(bad), 0) + bad)
        with pytest.raises(EnvironmentLost):
            channel2.receive(time.monotonic() + 5)
        channel2.close()
        jail2.close()
    channel.close()
    jail.close()

"""User code cannot kill, stop, read or write the agent (the jail's pid 1): only the runtime falls.

As in Lambda, code that kills what it can see kills the runtime: the call fails
with Runtime.ExitError, and the next call re-initialises in the same
environment with /tmp kept.
"""

from __future__ import annotations

import pytest

ATTACKS = """
import os, signal, subprocess, time

def pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]

def lambda_handler(event, context):
    with open("/tmp/kept", "a") as f:
        f.write("x")
    attack = event.get("attack")
    if attack == "sweep":  # every pid it can see, itself last
        for pid in sorted(pids(), key=lambda p: p == os.getpid()):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    elif attack == "minus-one":  # everything but pid 1 and the caller, then the caller
        subprocess.Popen(["sleep", "30"])
        os.kill(-1, signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)
    elif attack == "parent":
        os.kill(os.getppid(), signal.SIGKILL)
        os.kill(os.getppid(), signal.SIGSTOP)
        os.kill(os.getppid(), signal.SIGTERM)
        return {"parent": os.getppid()}
    elif attack == "stop":  # SIGSTOP to every pid, itself last
        for pid in sorted(pids(), key=lambda p: p == os.getpid()):
            try:
                os.kill(pid, signal.SIGSTOP)
            except OSError:
                pass
    return {"tmp": open("/tmp/kept").read(), "pid1": open("/proc/1/comm").read().strip()}
"""


@pytest.mark.parametrize("attack", ["sweep", "minus-one"])
def test_killing_every_pid_kills_only_the_runtime(pool, make_spec, attack):
    spec = make_spec(ATTACKS)
    first = pool.invoke(spec)
    assert first.status == "success"
    hit = pool.invoke(spec, {"attack": attack})
    assert hit.status == "error" and hit.error_type == "Runtime.ExitError"
    assert hit.json()["errorMessage"] == (
        f"RequestId: {hit.request_id} Error: Runtime exited with error: signal: killed"
    )
    assert hit.environment_id == first.environment_id
    again = pool.invoke(spec)
    assert again.status == "success" and not again.cold
    assert again.environment_id == first.environment_id
    assert again.json()["tmp"] == "xxx"  # /tmp kept through the reset


def test_killing_or_stopping_the_parent_does_nothing(pool, make_spec):
    spec = make_spec(ATTACKS)
    hit = pool.invoke(spec, {"attack": "parent"})
    assert hit.status == "success" and hit.json() == {"parent": 1}
    again = pool.invoke(spec)
    assert again.status == "success" and again.environment_id == hit.environment_id


def test_stopping_every_pid_times_out_and_the_environment_recovers(pool, make_spec):
    spec = make_spec(ATTACKS, timeout_s=1)
    hit = pool.invoke(spec, {"attack": "stop"})
    assert hit.status == "timeout" and hit.error_type == "Sandbox.Timedout"
    again = pool.invoke(spec)
    assert again.status == "success" and again.environment_id == hit.environment_id
    assert again.json()["tmp"] == "xx"


def test_the_agent_is_closed_to_user_code_through_proc(pool, make_spec):
    spec = make_spec("""
import os
def lambda_handler(event, context):
    refused = {}
    for name, mode in (("mem", "r+b"), ("mem", "rb"), ("environ", "rb"), ("fd/0", "rb"), ("maps", "rb")):
        try:
            open(f"/proc/1/{name}", mode).close()
            refused[name + " " + mode] = False
        except PermissionError:
            refused[name + " " + mode] = True
    try:
        os.listdir("/proc/1/fd")
        refused["fd listing"] = False
    except PermissionError:
        refused["fd listing"] = True
    # the function's own processes stay open to it, as anywhere
    with open(f"/proc/{os.getpid()}/mem", "rb"):
        pass
    return refused
""")
    result = pool.invoke(spec)
    assert result.status == "success", result.payload
    assert all(result.json().values()), result.json()

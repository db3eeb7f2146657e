"""A warm environment belongs to one revision of one function; every Init says why it ran."""

from __future__ import annotations

import threading

import pytest

from sandbox import FunctionSpec
from sandbox.pool import PoolCapacityError
from tests.conftest import Recorder

STATE = """
import uuid
instance = uuid.uuid4().hex[:8]
count = 0
def lambda_handler(event, context):
    global count
    count += 1
    open("/tmp/mine", "a").write("x")
    return {"instance": instance, "count": count, "tmp": open("/tmp/mine").read()}
"""


def test_two_owners_with_the_same_code_get_their_own_environments(pool):
    alice = FunctionSpec(source=STATE, function_id="alice-fn")
    bob = FunctionSpec(source=STATE, function_id="bob-fn")
    assert alice.key != bob.key
    a, b = pool.invoke(alice), pool.invoke(bob)
    assert a.environment_id != b.environment_id
    assert b.json()["count"] == 1 and b.json()["tmp"] == "x"  # nothing of alice's globals or /tmp
    assert pool.invoke(alice).json()["count"] == 2


def test_a_new_revision_never_wakes_an_old_environment_even_with_the_same_code(pool):
    one = FunctionSpec(source=STATE, function_id="reverted", revision="1")
    two = FunctionSpec(source=STATE + "# edited\n", function_id="reverted", revision="2")
    back = FunctionSpec(source=STATE, function_id="reverted", revision="3")  # code reverted to 1's
    first = pool.invoke(one)
    second = pool.invoke(two)
    assert second.cold and second.init_reason == "new_revision"
    third = pool.invoke(back)
    assert third.cold and third.environment_id not in (first.environment_id, second.environment_id)
    assert third.init_reason == "new_revision"


def test_the_idle_eviction_is_not_a_setting_lambda_restarts_for(pool):
    short = FunctionSpec(source=STATE, function_id="idle-setting", idle_timeout_s=600)
    longer = FunctionSpec(source=STATE, function_id="idle-setting", idle_timeout_s=900)
    assert short.key == longer.key
    first = pool.invoke(short)
    again = pool.invoke(longer)
    assert not again.cold and again.environment_id == first.environment_id


def test_each_cold_start_says_why(make_pool):
    pool = make_pool()
    spec = FunctionSpec(source=STATE + "import time\n", function_id="why", idle_timeout_s=600)
    first = pool.invoke(spec)
    assert (first.init_reason, first.init_reason_text) == ("first_call", "the first call")
    warm = pool.invoke(spec)
    assert warm.init_reason is None and warm.init_reason_text is None
    # a call while the only environment is busy
    slow = FunctionSpec(
        source="import time\ndef lambda_handler(event, context):\n    time.sleep(event.get('s', 0))\n",
        function_id="busy",
    )
    pool.invoke(slow)
    recorder = Recorder()
    pool.on_event = recorder
    holder = threading.Thread(target=pool.invoke, args=(slow, {"s": 1}))
    holder.start()
    recorder.wait_for(lambda e: e["type"] == "invoke.start")
    overlapping = pool.invoke(slow)
    holder.join()
    assert overlapping.cold and overlapping.init_reason == "busy"
    assert overlapping.init_reason_text == "its only warm environment was busy"
    # after an idle eviction
    env_id = first.environment_id
    assert pool.shutdown_environment(env_id, reason="idle")
    evicted = pool.invoke(spec)
    assert evicted.init_reason == "evicted" and "idle" in evicted.init_reason_text
    # a re-init after a timeout is not a cold start, and says why it ran Init again
    hang = FunctionSpec(
        source="import time\ndef lambda_handler(event, context):\n    time.sleep(event.get('s', 0))\n",
        function_id="reset",
        timeout_s=1,
    )
    pool.invoke(hang)
    assert pool.invoke(hang, {"s": 5}).status == "timeout"
    reinit = pool.invoke(hang)
    assert not reinit.cold and reinit.init_reason == "reset_timeout"
    assert reinit.init_reason_text == "re-initialised after a timeout"


def test_invoke_start_carries_the_reason(make_pool):
    recorder = Recorder()
    pool = make_pool(on_event=recorder)
    result = pool.invoke(FunctionSpec(source=STATE, function_id="event-reason"))
    start = recorder.of("invoke.start", request_id=result.request_id)[0]
    assert start["init_reason"] == "first_call" and start["init_reason_text"] == "the first call"


def test_a_preferred_idle_environment_is_the_one_taken(make_pool):
    pool = make_pool()
    spec = FunctionSpec(
        source="import time\ndef lambda_handler(event, context):\n    time.sleep(event.get('s', 0))\n",
        function_id="prefer",
    )
    threads = [threading.Thread(target=pool.invoke, args=(spec, {"s": 0.5})) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [e["id"] for e in pool.environments()]
    assert len(ids) == 2
    for wanted in ids + list(reversed(ids)):
        assert pool.invoke(spec, prefer=wanted).environment_id == wanted


def test_the_memory_budget_evicts_idle_environments_then_refuses(make_pool):
    pool = make_pool(memory_budget_mb=3100, stem_cells=0)
    small = FunctionSpec(source=STATE, function_id="budget-a", memory_mb=1024)
    other = FunctionSpec(source=STATE, function_id="budget-b", memory_mb=1024)
    big = FunctionSpec(source=STATE, function_id="budget-c", memory_mb=2048)
    a = pool.invoke(small)
    b = pool.invoke(other)
    assert {e["id"] for e in pool.environments()} == {a.environment_id, b.environment_id}
    c = pool.invoke(big)  # 2,048 more does not fit beside 2 x 1,024: the least recently used idle one goes
    assert c.status == "success"
    alive = {e["id"] for e in pool.environments()}
    assert a.environment_id not in alive and b.environment_id in alive
    # nothing idle to shut down: a call that does not fit is refused, clearly
    hold = FunctionSpec(
        source="import time\ndef lambda_handler(event, context):\n    time.sleep(event.get('s', 0))\n",
        function_id="budget-hold",
        memory_mb=2048,
        timeout_s=5,
    )
    recorder = Recorder()
    pool.on_event = recorder
    holder = threading.Thread(target=pool.invoke, args=(hold, {"s": 1.5}))
    holder.start()
    recorder.wait_for(lambda e: e["type"] == "invoke.start" and e["function"] == hold.key)
    with pytest.raises(PoolCapacityError, match="budget is 3,100 MB"):
        pool.invoke(FunctionSpec(source=STATE, function_id="budget-d", memory_mb=2048))
    holder.join()


def test_an_idle_environment_can_be_reset_or_aged_on_request(make_pool):
    recorder = Recorder()
    pool = make_pool(on_event=recorder)
    spec = FunctionSpec(source=STATE, function_id="controls", idle_timeout_s=600)
    first = pool.invoke(spec)
    assert pool.reset_environment(first.environment_id)
    again = pool.invoke(spec)
    assert again.environment_id == first.environment_id and not again.cold
    assert again.init_reason == "reset_request" and again.json()["count"] == 1
    assert again.json()["tmp"] == "xx"  # /tmp kept through the reset
    assert pool.age_environment(first.environment_id, 601)
    shutdown = recorder.wait_for(
        lambda e: e["type"] == "shutdown" and e["environment"] == first.environment_id
    )
    assert shutdown["reason"] == "idle" and shutdown["idle_s"] >= 600
    assert not pool.reset_environment(first.environment_id) and not pool.age_environment("nope", 1)

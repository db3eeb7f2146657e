"""Warm reuse, independence of environments, and the events of each phase."""

import math
import threading

STATEFUL = """
import uuid
INSTANCE = uuid.uuid4().hex
calls = 0

def lambda_handler(event, context):
    global calls
    calls += 1
    return {"instance": INSTANCE, "calls": calls, "event": event}
"""


def test_global_state_and_instance_id_persist_across_warm_invokes(pool, make_spec):
    spec = make_spec(STATEFUL)
    first = pool.invoke(spec, {"n": 1})
    second = pool.invoke(spec, {"n": 2})
    assert first.status == second.status == "success"
    assert first.cold and not second.cold
    assert first.environment_id == second.environment_id
    a, b = first.json(), second.json()
    assert a["instance"] == b["instance"]
    assert (a["calls"], b["calls"]) == (1, 2)
    assert b["event"] == {"n": 2}


def test_cold_report_has_init_duration_and_warm_does_not(pool, make_spec):
    spec = make_spec(STATEFUL)
    cold = pool.invoke(spec)
    warm = pool.invoke(spec)
    assert "\tInit Duration: " in cold.report and cold.init_duration_ms > 0
    assert "Init Duration" not in warm.report and warm.init_duration_ms is None
    assert cold.report.startswith(f"REPORT RequestId: {cold.request_id}\tDuration: ")
    assert "\tMemory Size: 128 MB\tMax Memory Used: " in warm.report


def ceilings(total_ms: float, rounding_ms: float) -> set[int]:
    """Whole milliseconds ``total_ms`` bills, given it was summed from values rounded by up to
    ``rounding_ms`` in all: one value, unless the exact total lies within the rounding of a boundary."""
    return {math.ceil(total_ms - rounding_ms), math.ceil(total_ms + rounding_ms)}


def report_fields(line: str) -> dict[str, str]:
    """A REPORT line's fields by name: ``{"Duration": "1.23 ms", ...}``."""
    head, *fields = line.rstrip("\t").split("\t")
    assert head.startswith("REPORT RequestId: ")
    return dict(field.split(": ", 1) for field in fields)


def reported_ms(fields: dict[str, str], name: str) -> float:
    value, unit = fields[name].split(" ")
    assert unit == "ms"
    return float(value)


def test_billed_duration_is_the_duration_and_any_init_rounded_up_to_the_millisecond(pool, make_spec):
    spec = make_spec(
        "import time\ndef lambda_handler(event, context):\n    time.sleep(event.get('s', 0))\n    return 1\n",
        timeout_s=1,
    )
    cold = pool.invoke(spec, {"s": 0.0123})
    warm = pool.invoke(spec, {"s": 0.0123})
    assert cold.cold and not warm.cold and warm.environment_id == cold.environment_id
    # InvokeResult keeps 3 decimals of the durations billing was computed from
    assert cold.billed_duration_ms in ceilings(cold.duration_ms + cold.init_duration_ms, 0.001)
    assert warm.billed_duration_ms in ceilings(warm.duration_ms, 0.0005)
    assert warm.billed_duration_ms >= 13  # the handler slept 12.3 ms: the duration is real
    # the REPORT line's own numbers (2 decimals) agree with each other and with the result
    for result in (cold, warm):
        fields = report_fields(result.report)
        duration = reported_ms(fields, "Duration")
        init = reported_ms(fields, "Init Duration") if result.cold else 0.0
        assert abs(duration - result.duration_ms) <= 0.0051
        assert fields["Billed Duration"] == f"{result.billed_duration_ms} ms"
        assert result.billed_duration_ms in ceilings(duration + init, 0.01 if result.cold else 0.005)
    assert abs(reported_ms(report_fields(cold.report), "Init Duration") - cold.init_duration_ms) <= 0.0051
    assert "Init Duration" not in report_fields(warm.report)


def test_a_warm_timeout_bills_exactly_the_timeout(pool, make_spec):
    spec = make_spec(
        "import time\ndef lambda_handler(event, context):\n    time.sleep(event.get('s', 0))\n    return 1\n",
        timeout_s=1,
    )
    assert pool.invoke(spec).status == "success"
    timed_out = pool.invoke(spec, {"s": 5})
    assert timed_out.status == "timeout" and not timed_out.cold
    assert timed_out.billed_duration_ms == 1000
    fields = report_fields(timed_out.report)
    assert fields["Billed Duration"] == "1000 ms"
    assert fields["Status"] == "timeout"
    assert reported_ms(fields, "Duration") >= 1000


def test_two_concurrent_invokes_get_two_independent_environments(pool, make_spec):
    spec = make_spec(
        """
import threading, uuid
INSTANCE = uuid.uuid4().hex
calls = 0

def lambda_handler(event, context):
    global calls
    calls += 1
    import time
    time.sleep(0.5)
    return {"instance": INSTANCE, "calls": calls}
"""
    )
    results = [None, None]
    barrier = threading.Barrier(2)

    def call(i):
        barrier.wait()
        results[i] = pool.invoke(spec)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    a, b = results
    assert a.status == b.status == "success"
    assert a.cold and b.cold
    assert a.environment_id != b.environment_id
    assert a.json()["instance"] != b.json()["instance"]
    assert a.json()["calls"] == b.json()["calls"] == 1


def test_each_phase_is_an_event_in_order(pool, recorder, make_spec):
    spec = make_spec(STATEFUL.replace("return", "print('hi')\n    return"))
    cold = pool.invoke(spec)
    recorder.wait_count(1, "freeze", environment=cold.environment_id)
    warm = pool.invoke(spec)
    recorder.wait_count(2, "freeze", environment=cold.environment_id)
    env_events = [e["type"] for e in recorder.of(environment=cold.environment_id)]
    cold_part = env_events[: env_events.index("freeze") + 1]
    assert [t for t in cold_part if t != "log"] == [
        "init.start",
        "init.runtime.done",
        "init.function.done",
        "invoke.start",
        "invoke.end",
        "freeze",
    ]
    warm_types = [e["type"] for e in recorder.of(request_id=warm.request_id)]
    assert warm_types == ["thaw", "invoke.start", "log", "log", "log", "log", "invoke.end"]
    lines = [e["line"] for e in recorder.of("log", request_id=warm.request_id)]
    assert lines[0] == f"START RequestId: {warm.request_id} Version: $LATEST"
    assert lines[1] == "hi"
    assert lines[2] == f"END RequestId: {warm.request_id}"
    assert lines[3] == warm.report
    end = recorder.of("invoke.end", request_id=warm.request_id)[0]
    assert end["status"] == "success" and end["cold"] is False
    assert end["billed_duration_ms"] == warm.billed_duration_ms
    after_cold = env_events[env_events.index("freeze") + 1 :]
    assert [t for t in after_cold if t != "log"] == ["thaw", "invoke.start", "invoke.end", "freeze"]


def test_init_start_line_names_the_runtime_version(pool, make_spec):
    result = pool.invoke(make_spec(STATEFUL))
    assert result.logs[0].startswith("INIT_START Runtime Version: python:3.11.")
    assert "\tRuntime Version ARN: arn:aws:lambda:us-east-1::runtime:" in result.logs[0]


def test_the_context_and_environment_look_like_lambdas(pool, make_spec):
    spec = make_spec(
        """
import os
def lambda_handler(event, context):
    return {
        "env": dict(os.environ),
        "request_id": context.aws_request_id,
        "memory": context.memory_limit_in_mb,
        "remaining": context.get_remaining_time_in_millis(),
        "arn": context.invoked_function_arn,
        "cwd": os.getcwd(),
    }
""",
        memory_mb=256,
        environment={"GREETING": "hello"},
    )
    result = pool.invoke(spec, request_id="11111111-2222-3333-4444-555555555555")
    data = result.json()
    env = data["env"]
    assert data["request_id"] == "11111111-2222-3333-4444-555555555555"
    assert data["memory"] == "256" and env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert 0 < data["remaining"] <= 3000
    assert data["arn"].endswith(":function:lambdalab-function")
    assert env["AWS_LAMBDA_RUNTIME_API"] == "127.0.0.1:9001"
    assert env["_HANDLER"] == "lambda_function.lambda_handler"
    assert env["LAMBDA_TASK_ROOT"] == data["cwd"] == "/var/task"
    assert env["GREETING"] == "hello"
    assert env["_X_AMZN_TRACE_ID"].startswith("Root=1-")


def test_a_result_serialises_for_whoever_stores_or_sends_it(pool, make_spec):
    import json

    result = pool.invoke(make_spec(STATEFUL), {"n": 1})
    data = json.loads(json.dumps(result.to_dict()))
    assert data["request_id"] == result.request_id and data["status"] == "success"
    assert json.loads(data["payload"])["calls"] == 1
    assert data["logs"][-1] == result.report


def test_logging_prints_lambdas_text_format_with_the_request_id(pool, make_spec):
    import re

    spec = make_spec("""
import logging
logger = logging.getLogger()
logger.setLevel(logging.INFO)
def lambda_handler(event, context):
    logger.info("hello %s", "lab")
    logging.getLogger("app").warning("careful")
    return 1
""")
    result = pool.invoke(spec)
    rid = re.escape(result.request_id)
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
    assert any(re.fullmatch(rf"\[INFO\]\t{stamp}\t{rid}\thello lab", line) for line in result.logs), (
        result.logs
    )
    assert any(re.fullmatch(rf"\[WARNING\]\t{stamp}\t{rid}\tcareful", line) for line in result.logs)

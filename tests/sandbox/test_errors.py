"""Every way a function can fail gives Lambda's error, and the environment (and its /tmp) survives."""

import json

import pytest

KEEP_TMP = """
import os
def mark(event):
    if event.get("mark"):
        open("/tmp/mark", "w").write(event["mark"])
    return open("/tmp/mark").read() if os.path.exists("/tmp/mark") else None
"""


def failing(make_spec, *failure: str, **settings):
    """A handler that marks /tmp, then fails with ``failure`` (lines of code), unless asked ``ok``."""
    body = "\n    ".join(failure)
    return make_spec(
        KEEP_TMP
        + f"""
import ctypes, os, time
def lambda_handler(event, context):
    m = mark(event)
    if event.get("ok"):
        return m
    {body}
""",
        **settings,
    )


def assert_reusable(pool, spec, failed):
    """The next call reuses the same environment, re-initialised, with /tmp intact."""
    after = pool.invoke(spec, {"mark": None, "ok": True})
    assert after.environment_id == failed.environment_id
    assert not after.cold
    assert after.status == "success", after.payload
    assert after.json() == "kept"
    return after


def test_timeout_gives_sandbox_timedout_and_keeps_the_environment(pool, recorder, make_spec):
    spec = failing(make_spec, 'print("about to hang")', "time.sleep(60)", timeout_s=1)
    result = pool.invoke(spec, {"mark": "kept"})
    assert result.status == "timeout"
    assert result.error_type == "Sandbox.Timedout"
    assert result.json() == {
        "errorType": "Sandbox.Timedout",
        "errorMessage": f"RequestId: {result.request_id} Error: Task timed out after 1.00 seconds",
    }
    assert result.report.endswith("\tStatus: timeout")
    assert result.duration_ms == 1000.0 and "\tDuration: 1000.00 ms\t" in result.report
    assert result.billed_duration_ms >= 1000
    assert "about to hang" in result.logs
    assert any(
        line.endswith(f"{result.request_id} Task timed out after 1.00 seconds") for line in result.logs
    )
    assert recorder.of("reset", environment=result.environment_id)
    env = pool._all[result.environment_id]
    runtime_tree = [pid for pid in env.cgroup.pids() if pid not in env.keep_pids]
    assert runtime_tree and all(env.cgroup.confined(pid) for pid in runtime_tree)  # the next runtime, waiting
    after = assert_reusable(pool, spec, result)
    # the runtime was re-initialised inside this invoke: no Init Duration
    assert "Init Duration" not in after.report
    assert recorder.of("init.start", request_id=after.request_id, phase="invoke")


def test_os_exit_gives_runtime_exit_error(pool, make_spec):
    spec = failing(make_spec, "os._exit(1)")
    result = pool.invoke(spec, {"mark": "kept"})
    assert result.status == "error"
    assert result.error_type == "Runtime.ExitError"
    message = f"RequestId: {result.request_id} Error: Runtime exited with error: exit status 1"
    assert result.json() == {"errorType": "Runtime.ExitError", "errorMessage": message}
    assert message in result.logs
    assert result.report.endswith("\tStatus: error\tError Type: Runtime.ExitError")
    assert_reusable(pool, spec, result)


def test_a_segfault_gives_signal_in_the_exit_error(pool, make_spec):
    spec = failing(make_spec, "ctypes.string_at(0)")
    result = pool.invoke(spec, {"mark": "kept"})
    assert result.error_type == "Runtime.ExitError"
    assert result.json()["errorMessage"].endswith("Runtime exited with error: signal: segmentation fault")
    assert_reusable(pool, spec, result)


def test_out_of_memory_gives_runtime_out_of_memory(pool, make_spec):
    spec = failing(
        make_spec, "hog = []", "while True:", "    hog.append(bytearray(8 * 1024 * 1024))", timeout_s=20
    )
    result = pool.invoke(spec, {"mark": "kept"})
    assert result.status == "error"
    assert result.error_type == "Runtime.OutOfMemory"
    assert result.json()["errorMessage"] == (
        f"RequestId: {result.request_id} Error: Runtime exited with error: signal: killed"
    )
    assert result.report.endswith("\tStatus: error\tError Type: Runtime.OutOfMemory")
    assert result.max_memory_used_mb >= 128
    assert "Runtime.ExitError" in result.logs
    assert_reusable(pool, spec, result)


def test_an_unhandled_exception_gives_its_type_message_and_stack(pool, make_spec):
    spec = make_spec("""
def lambda_handler(event, context):
    raise ValueError("bad input: " + str(event["x"]))
""")
    result = pool.invoke(spec, {"x": 42})
    body = result.json()
    assert result.status == "error" and result.error_type == "ValueError"
    assert body["errorType"] == "ValueError"
    assert body["errorMessage"] == "bad input: 42"
    assert body["requestId"] == result.request_id
    # line 4: make_spec puts a tag comment on line 1
    assert body["stackTrace"][0].startswith(
        '  File "/var/task/lambda_function.py", line 4, in lambda_handler'
    )
    error_line = next(line for line in result.logs if line.startswith("[ERROR]"))
    assert error_line.startswith("[ERROR] ValueError: bad input: 42\rTraceback (most recent call last):\r")
    assert "Status:" not in result.report  # a function error is not a platform failure
    again = pool.invoke(spec, {"x": 1})
    assert again.environment_id == result.environment_id and not again.cold


@pytest.mark.parametrize(
    "source, handler, error_type, message",
    [
        (
            "import not_a_module\n",
            None,
            "Runtime.ImportModuleError",
            "Unable to import module 'lambda_function': No module named 'not_a_module'",
        ),
        (
            "def lambda_handler(event, context)\n    return 1\n",
            None,
            "Runtime.UserCodeSyntaxError",
            "Syntax error in module 'lambda_function': expected ':' (lambda_function.py, line 2)",
        ),
        (
            "x = 1\n",
            None,
            "Runtime.HandlerNotFound",
            "Handler 'lambda_handler' missing on module 'lambda_function'",
        ),
        (
            "x = 1\n",
            "nodots",
            "Runtime.MalformedHandlerName",
            "Bad handler 'nodots': not enough values to unpack (expected 2, got 1)",
        ),
    ],
)
def test_init_errors_are_retried_in_the_invoke_and_returned(
    pool, recorder, make_spec, source, handler, error_type, message
):
    settings = {"handler": handler} if handler else {}
    spec = make_spec(source, **settings)
    result = pool.invoke(spec)
    assert result.status == "error"
    assert result.error_type == error_type
    body = result.json()
    assert body["errorType"] == error_type
    assert body["errorMessage"] == message
    assert body["requestId"] == ""
    # Init failed, then was retried inside the invoke (suppressed init), before START
    phases = [line for line in result.logs if line.startswith("INIT_REPORT")]
    assert len(phases) == 2
    assert phases[0].endswith(f"\tPhase: init\tStatus: error\tError Type: {error_type}")
    assert phases[1].endswith(f"\tPhase: invoke\tStatus: error\tError Type: {error_type}")
    start = result.logs.index(f"START RequestId: {result.request_id} Version: $LATEST")
    assert result.logs.index(phases[1]) < start
    assert any(
        line.startswith("[WARNING]") and "LAMBDA_WARNING: Unhandled exception." in line
        for line in result.logs
    )
    assert result.report.endswith(f"\tStatus: error\tError Type: {error_type}")
    assert "Init Duration" not in result.report
    # every invoke while init keeps failing returns the init error, in the same environment
    again = pool.invoke(spec)
    assert again.environment_id == result.environment_id and again.error_type == error_type


def test_an_unserialisable_result_gives_marshal_error(pool, make_spec):
    spec = make_spec("""
def lambda_handler(event, context):
    return {"s": {1, 2}}
""")
    result = pool.invoke(spec)
    body = result.json()
    assert result.error_type == "Runtime.MarshalError"
    assert body["errorMessage"] == "Unable to marshal response: Object of type set is not JSON serializable"
    assert body["stackTrace"] == []


def test_a_response_over_6_mb_is_rejected(pool, make_spec):
    spec = make_spec(
        """
def lambda_handler(event, context):
    if event.get("small"):
        return "fine"
    return "x" * (6 * 1024 * 1024 + 200)
""",
        memory_mb=512,
    )
    result = pool.invoke(spec, {})
    assert result.status == "error"
    assert result.error_type == "Function.ResponseSizeTooLarge"
    assert json.loads(result.payload)["errorMessage"] == (
        "Response payload size exceeded maximum allowed payload size (6291556 bytes)."
    )
    again = pool.invoke(spec, {"small": True})
    assert again.environment_id == result.environment_id and again.json() == "fine"


def test_a_background_thread_that_crashes_after_the_response_fails_the_next_call(pool, make_spec):
    """Frozen right after its response, the thread only fires during the next call, as in Lambda."""
    spec = make_spec(
        """
import os, threading, time
def lambda_handler(event, context):
    if event.get("arm"):
        threading.Thread(target=lambda: (time.sleep(0.1), os._exit(3)), daemon=True).start()
        return "armed"
    time.sleep(event.get("work", 0))
    return "worked"
""",
        timeout_s=5,
    )
    armed = pool.invoke(spec, {"arm": True})
    assert armed.json() == "armed"
    victim = pool.invoke(spec, {"work": 1.0})
    assert victim.environment_id == armed.environment_id
    assert victim.error_type == "Runtime.ExitError"
    assert victim.json()["errorMessage"].endswith("Runtime exited with error: exit status 3")
    after = pool.invoke(spec, {"work": 0})
    assert after.json() == "worked" and after.environment_id == armed.environment_id


def test_an_init_that_keeps_failing_reruns_in_the_same_environment_and_tmp(pool, make_spec):
    spec = make_spec("""
import os
n = int(open("/tmp/attempts").read()) + 1 if os.path.exists("/tmp/attempts") else 1
open("/tmp/attempts", "w").write(str(n))
raise RuntimeError(f"init attempt {n}")
""")
    first = pool.invoke(spec)
    assert first.error_type == "RuntimeError"
    assert first.json()["errorMessage"] == "init attempt 2"  # Init, then its retry inside the invoke
    second = pool.invoke(spec)
    assert second.environment_id == first.environment_id
    assert second.json()["errorMessage"] == "init attempt 3"  # /tmp kept across every re-init
    # The platform keeps only Runtime.X and Function.X types: a user's exception is Runtime.Unknown
    assert second.report.endswith("\tStatus: error\tError Type: Runtime.Unknown")
    init_reports = [line for line in first.logs if line.startswith("INIT_REPORT")]
    assert [line.split("\t")[1:] for line in init_reports] == [
        ["Phase: init", "Status: error", "Error Type: Runtime.Unknown"],
        ["Phase: invoke", "Status: error", "Error Type: Runtime.Unknown"],
    ]


def test_formatting_an_error_imports_nothing_heavy_into_the_runtime(pool, make_spec):
    """traceback would pull in re, tokenize and linecache: ~10 ms of a 128 MB function's 7% CPU."""
    spec = make_spec("""
import sys
def lambda_handler(event, context):
    if event.get("fail"):
        raise ValueError("boom")
    return sorted(m for m in ("traceback", "linecache", "tokenize", "re", "json", "logging") if m in sys.modules)
""")
    assert pool.invoke(spec, {"fail": True}).error_type == "ValueError"
    assert pool.invoke(spec).json() == []

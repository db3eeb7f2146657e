"""Each way a call can end, and what Lambda makes of it: no jail needed."""

from __future__ import annotations

import json

import pytest

from sandbox.result import Outcome, error_type_of, init_report_error_type, judge

RID = "8f2c6a3e-0000-4000-8000-000000000001"


def verdict(kind: str, **outcome):
    return judge(Outcome(kind, **outcome), request_id=RID, timeout_s=3, duration_ms=12.5)


def test_success_returns_the_body_as_is():
    v = verdict("ok", body=b'{"a": 1}')
    assert (v.status, v.error_type, v.payload, v.report_status, v.log_lines, v.duration_ms) == (
        "success",
        None,
        b'{"a": 1}',
        None,
        [],
        12.5,
    )


def test_a_timeout_reports_the_limit_and_sandbox_timedout():
    v = verdict("timeout")
    assert v.status == "timeout" and v.error_type == "Sandbox.Timedout" and v.report_status == "timeout"
    assert v.duration_ms == 3000.0
    assert json.loads(v.payload) == {
        "errorType": "Sandbox.Timedout",
        "errorMessage": f"RequestId: {RID} Error: Task timed out after 3.00 seconds",
    }
    assert v.log_lines[0].endswith(f" {RID} Task timed out after 3.00 seconds")


@pytest.mark.parametrize(
    ("detail", "reason"),
    [
        ("signal: killed", "Runtime exited with error: signal: killed"),
        ("exit status 1", "Runtime exited with error: exit status 1"),
        ("exit status 0", "Runtime exited without providing a reason"),
    ],
)
def test_an_exit_is_runtime_exiterror_with_lambdas_words(detail, reason):
    v = verdict("exit", error_type="Runtime.ExitError", detail=detail)
    assert v.status == "error" and v.report_status == "error"
    assert json.loads(v.payload)["errorMessage"] == f"RequestId: {RID} Error: {reason}"
    assert v.log_lines == [f"RequestId: {RID} Error: {reason}", "Runtime.ExitError"]


def test_an_oom_keeps_its_type():
    v = verdict("exit", error_type="Runtime.OutOfMemory", detail="signal: killed")
    assert (
        v.error_type == "Runtime.OutOfMemory" and json.loads(v.payload)["errorType"] == "Runtime.OutOfMemory"
    )


def test_a_response_over_6_mb_is_function_responsesizetoolarge():
    v = verdict("too_large")
    assert v.error_type == "Function.ResponseSizeTooLarge" and v.report_status is None
    assert "(6291556 bytes)" in json.loads(v.payload)["errorMessage"]


def test_a_handler_error_passes_the_runtimes_body_and_only_an_init_error_marks_the_report():
    body = b'{"errorMessage": "x", "errorType": "ValueError", "stackTrace": []}'
    handler = verdict("error", error_type="ValueError", body=body)
    assert handler.payload == body and handler.report_status is None
    init = verdict("error", error_type="ValueError", body=body, init_failed=True)
    assert init.report_status == "error"


def test_a_lost_environment_is_a_sandbox_failure_with_what_was_measured():
    v = verdict("lost", detail="agent closed its control channel")
    assert v.status == "failure" and v.error_type == "Sandbox.Failure" and v.duration_ms == 12.5
    assert json.loads(v.payload)["errorMessage"] == (
        f"RequestId: {RID} Error: execution environment failed: agent closed its control channel"
    )


def test_an_unknown_ending_is_refused():
    with pytest.raises(ValueError):
        verdict("vanished")


def test_the_error_type_comes_from_the_body_then_the_header():
    assert error_type_of({}, b'{"errorType": "KeyError"}') == "KeyError"
    assert error_type_of({"error_type": "Runtime.X"}, b"not json") == "Runtime.X"
    assert error_type_of({}, b"[" * 50_000) == "Runtime.Unknown"  # hostile bodies are just unknown
    assert error_type_of({}, b'{"errorType": ""}') == "Runtime.Unknown"


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("Runtime.ImportModuleError", "Runtime.ImportModuleError"),
        ("Function.Custom", "Function.Custom"),
        ("ValueError", "Runtime.Unknown"),
        ("Runtime.lower", "Runtime.Unknown"),
        ("Extension.Crash", "Runtime.Unknown"),
        ("Runtime.With1Digit", "Runtime.Unknown"),
        (None, "Runtime.Unknown"),
    ],
)
def test_init_report_keeps_runtime_and_function_types_only(given, kept):
    assert init_report_error_type(given) == kept

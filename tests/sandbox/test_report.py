"""The platform's log lines, character for character as CloudWatch shows them, and billing.

Formats: /work/shared/lambda-model.md §4. Tools that parse Lambda's logs split
on tabs and expect the trailing tab of a plain REPORT, so the exact bytes matter.
"""

from __future__ import annotations

import calendar
import re
import time
import uuid

import pytest

from sandbox import report

RID = "8f5a2a0c-3b1e-4a4e-9d3c-5b2f1e0d9c7a"
ARN = "arn:aws:lambda:us-east-1::runtime:" + "ab" * 32


def test_init_start_names_the_runtime_version_and_its_arn_tab_separated():
    assert (
        report.init_start_line("python:3.11.v39", ARN)
        == f"INIT_START Runtime Version: python:3.11.v39\tRuntime Version ARN: {ARN}"
    )


def test_start_names_the_request_and_the_version_with_spaces():
    assert report.start_line(RID) == f"START RequestId: {RID} Version: $LATEST"


def test_end_names_the_request():
    assert report.end_line(RID) == f"END RequestId: {RID}"


def test_a_plain_report_ends_in_a_tab():
    line = report.report_line(RID, duration_ms=26.73, billed_ms=27, memory_mb=128, max_memory_mb=75)
    assert line == (
        f"REPORT RequestId: {RID}\tDuration: 26.73 ms\tBilled Duration: 27 ms\t"
        "Memory Size: 128 MB\tMax Memory Used: 75 MB\t"
    )


def test_a_cold_report_puts_init_duration_last_then_the_trailing_tab():
    line = report.report_line(
        RID, duration_ms=26.73, billed_ms=158, memory_mb=128, max_memory_mb=75, init_ms=130.49
    )
    assert line == (
        f"REPORT RequestId: {RID}\tDuration: 26.73 ms\tBilled Duration: 158 ms\t"
        "Memory Size: 128 MB\tMax Memory Used: 75 MB\tInit Duration: 130.49 ms\t"
    )


def test_durations_have_two_decimals_and_billed_duration_none():
    line = report.report_line(RID, duration_ms=3, billed_ms=3, memory_mb=1769, max_memory_mb=0)
    assert "\tDuration: 3.00 ms\tBilled Duration: 3 ms\tMemory Size: 1769 MB\tMax Memory Used: 0 MB\t" in line
    line = report.report_line(
        RID, duration_ms=0.004, billed_ms=1, memory_mb=128, max_memory_mb=1, init_ms=1234.5
    )
    assert "\tDuration: 0.00 ms\t" in line and line.endswith("\tInit Duration: 1234.50 ms\t")


def test_a_timed_out_report_ends_with_its_status():
    line = report.report_line(
        RID, duration_ms=3000.0, billed_ms=3000, memory_mb=128, max_memory_mb=40, status="timeout"
    )
    assert line == (
        f"REPORT RequestId: {RID}\tDuration: 3000.00 ms\tBilled Duration: 3000 ms\t"
        "Memory Size: 128 MB\tMax Memory Used: 40 MB\tStatus: timeout"
    )


def test_an_error_report_names_the_error_type_after_the_status():
    line = report.report_line(
        RID,
        duration_ms=812.5,
        billed_ms=813,
        memory_mb=128,
        max_memory_mb=128,
        status="error",
        error_type="Runtime.OutOfMemory",
    )
    assert line == (
        f"REPORT RequestId: {RID}\tDuration: 812.50 ms\tBilled Duration: 813 ms\t"
        "Memory Size: 128 MB\tMax Memory Used: 128 MB\tStatus: error\tError Type: Runtime.OutOfMemory"
    )


def test_a_cold_report_with_a_status_has_init_duration_before_the_status():
    line = report.report_line(
        RID,
        duration_ms=1000.0,
        billed_ms=1131,
        memory_mb=128,
        max_memory_mb=30,
        init_ms=130.49,
        status="timeout",
    )
    assert line.endswith("\tMax Memory Used: 30 MB\tInit Duration: 130.49 ms\tStatus: timeout")


def test_init_report_of_a_failed_init_names_phase_status_and_error_type():
    assert (
        report.init_report_line(1882.55, "init", "error", "Runtime.ImportModuleError")
        == "INIT_REPORT Init Duration: 1882.55 ms\tPhase: init\tStatus: error\tError Type: Runtime.ImportModuleError"
    )
    assert (
        report.init_report_line(250.0, "invoke", "error", "Runtime.ExitError")
        == "INIT_REPORT Init Duration: 250.00 ms\tPhase: invoke\tStatus: error\tError Type: Runtime.ExitError"
    )


def test_init_report_of_a_timed_out_init_has_no_error_type():
    assert (
        report.init_report_line(10000.0, "init", "timeout", None)
        == "INIT_REPORT Init Duration: 10000.00 ms\tPhase: init\tStatus: timeout"
    )


def test_the_timeout_line_is_a_utc_timestamp_the_request_and_the_timeout_in_seconds():
    before = time.time()
    line = report.timeout_line(RID, 3)
    after = time.time()
    match = re.fullmatch(
        r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) "
        + re.escape(RID)
        + r" Task timed out after 3\.00 seconds",
        line,
    )
    assert match, line
    stamped = calendar.timegm(time.strptime(match[1][:19], "%Y-%m-%dT%H:%M:%S")) + int(match[1][20:23]) / 1000
    assert before - 0.001 <= stamped <= after  # now, in UTC
    assert report.timeout_line(RID, 900).endswith(f"{RID} Task timed out after 900.00 seconds")


def test_timestamps_are_utc_with_milliseconds():
    assert report.timestamp(0) == "1970-01-01T00:00:00.000Z"
    assert report.timestamp(1700000000.1234) == "2023-11-14T22:13:20.123Z"
    assert report.timestamp(1700006399.999) == "2023-11-14T23:59:59.999Z"


@pytest.mark.parametrize(
    "duration, init, timeout, billed",
    [
        (26.73, None, None, 27),  # rounded up to the millisecond
        (27.0, None, None, 27),  # a whole millisecond is not rounded further
        (27.0001, None, None, 28),
        (0.01, None, None, 1),
        (0.0, None, None, 1),  # 1 ms at least
        (26.73, 130.49, None, 158),  # a cold start bills its Init: ceil(157.22)
        (0.2, 0.3, None, 1),
        (2999.1, None, 3000, 3000),  # a timeout bills the timeout ...
        (3004.7, None, 3000, 3000),  # ... even when the measured duration ran past it
        (3004.7, 130.49, 3000, 3131),  # ... plus the Init of a cold start
    ],
)
def test_billed_duration_rounds_up_adds_init_and_bills_a_timeout_as_the_timeout(
    duration, init, timeout, billed
):
    assert report.billed_ms(duration, init, timeout) == billed


def test_the_log_stream_is_the_utc_day_the_version_and_the_environment_id():
    env = "0123456789abcdef0123456789abcdef"
    assert report.log_stream_name(env, 1700006399.5) == f"2023/11/14/[$LATEST]{env}"
    assert report.log_stream_name(env, 1700006400.0) == f"2023/11/15/[$LATEST]{env}"
    assert report.log_stream_name(env, 0) == f"1970/01/01/[$LATEST]{env}"


def test_a_log_stream_name_made_now_matches_lambdas_pattern():
    before = time.time()
    name = report.log_stream_name(uuid.uuid4().hex, time.time())
    after = time.time()
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", name), name
    assert name[:10] in {time.strftime("%Y/%m/%d", time.gmtime(t)) for t in (before, after)}

"""CloudWatch's platform lines (INIT_START, START, END, REPORT, INIT_REPORT) and billing."""

from __future__ import annotations

import math
import time

VERSION = "$LATEST"


def ms(value: float) -> str:
    return f"{value:.2f}"


def timestamp(epoch: float | None = None) -> str:
    t = time.time() if epoch is None else epoch
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


def log_stream_name(environment_id: str, created: float) -> str:
    return time.strftime("%Y/%m/%d/", time.gmtime(created)) + f"[{VERSION}]{environment_id}"


def init_start_line(runtime_version: str, runtime_arn: str) -> str:
    return f"INIT_START Runtime Version: {runtime_version}\tRuntime Version ARN: {runtime_arn}"


def init_report_line(duration_ms: float, phase: str, status: str, error_type: str | None) -> str:
    line = f"INIT_REPORT Init Duration: {ms(duration_ms)} ms\tPhase: {phase}\tStatus: {status}"
    if error_type:
        line += f"\tError Type: {error_type}"
    return line


def start_line(request_id: str) -> str:
    return f"START RequestId: {request_id} Version: {VERSION}"


def end_line(request_id: str) -> str:
    return f"END RequestId: {request_id}"


def timeout_line(request_id: str, timeout_s: int) -> str:
    return f"{timestamp()} {request_id} Task timed out after {timeout_s:.2f} seconds"


def report_line(
    request_id: str,
    *,
    duration_ms: float,
    billed_ms: int,
    memory_mb: int,
    max_memory_mb: int,
    init_ms: float | None = None,
    status: str | None = None,
    error_type: str | None = None,
) -> str:
    fields = [
        f"REPORT RequestId: {request_id}",
        f"Duration: {ms(duration_ms)} ms",
        f"Billed Duration: {billed_ms} ms",
        f"Memory Size: {memory_mb} MB",
        f"Max Memory Used: {max_memory_mb} MB",
    ]
    if init_ms is not None:
        fields.append(f"Init Duration: {ms(init_ms)} ms")
    if status is None:
        return "\t".join(fields) + "\t"
    fields.append(f"Status: {status}")
    if error_type:
        fields.append(f"Error Type: {error_type}")
    return "\t".join(fields)


def billed_ms(duration_ms: float, init_ms: float | None, timeout_ms: int | None = None) -> int:
    """1 ms granularity; a cold start bills its Init too (since Aug 2025); a timeout bills the timeout."""
    run = float(timeout_ms) if timeout_ms is not None else duration_ms
    return max(1, math.ceil(run + (init_ms or 0.0)))

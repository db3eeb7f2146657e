"""How an invocation ended, and what Lambda makes of each ending: status, error, payload, log lines.

No jail here: ``judge`` maps an ``Outcome`` (what the host saw) to a ``Verdict``
(what the caller, the REPORT line and the log get), so every ending can be
tested on its own.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

from . import report
from .runtime.contract import MAX_PAYLOAD


@dataclass(frozen=True)
class InitReason:
    """Why a call ran an Init: a cold start (``first_call``, ``busy``, ``evicted``, ``new_revision``,
    ``lost``, ``capacity``, ``shut_down``) or a re-init in a warm environment (``reset_timeout``,
    ``reset_crash``, ``reset_oom``, ``init_retry``), and the same in plain words for a page."""

    code: str
    text: str


@dataclass
class InvokeResult:
    request_id: str
    environment_id: str
    cold: bool
    status: str  # success | error | timeout | failure
    error_type: str | None
    payload: bytes
    duration_ms: float
    billed_duration_ms: int
    max_memory_used_mb: int
    init_duration_ms: float | None
    report: str
    function: str = ""
    logs: list[str] = field(default_factory=list)
    log_truncated: bool = False
    init_reason: str | None = None  # InitReason.code: why this call ran an Init, if it did
    init_reason_text: str | None = None

    def to_dict(self) -> dict:
        data = {name: getattr(self, name) for name in RESULT_FIELDS}
        data["payload"] = self.payload.decode("utf-8", "replace")
        data["logs"] = list(self.logs)
        return data

    def event_fields(self) -> dict:
        """What ``invoke.end`` carries: the result but the ids (in the envelope) and the logs (sent as lines)."""
        data = {name: getattr(self, name) for name in EVENT_FIELDS}
        data["payload"] = self.payload.decode("utf-8", "replace")
        return data

    def json(self):
        return json.loads(self.payload)


RESULT_FIELDS = tuple(f.name for f in dataclasses.fields(InvokeResult))
EVENT_FIELDS = tuple(
    n for n in RESULT_FIELDS if n not in ("request_id", "environment_id", "function", "logs", "payload")
)

KINDS = ("ok", "error", "exit", "timeout", "too_large", "lost")


@dataclass
class Outcome:
    """How a phase ended, as seen from the host."""

    kind: str  # one of KINDS
    error_type: str | None = None
    body: bytes = b""
    detail: str = ""  # exit: "signal: killed", "exit status 1"; lost: why
    init_failed: bool = False  # the error came from a (suppressed) Init, not the handler


@dataclass
class Verdict:
    """What an outcome means for the call."""

    status: str
    error_type: str | None
    payload: bytes
    report_status: str | None  # REPORT's "Status:" field, when it has one
    log_lines: list[str]  # what Lambda writes on the function's stream for this ending
    duration_ms: float  # the REPORT's Duration (a timeout reports its limit)


def judge(outcome: Outcome, *, request_id: str, timeout_s: int, duration_ms: float) -> Verdict:
    kind = outcome.kind
    if kind == "ok":
        return Verdict("success", None, outcome.body, None, [], duration_ms)
    if kind == "timeout":
        message = f"RequestId: {request_id} Error: Task timed out after {timeout_s:.2f} seconds"
        return Verdict(
            "timeout",
            "Sandbox.Timedout",
            error_body("Sandbox.Timedout", message),
            "timeout",
            [report.timeout_line(request_id, timeout_s)],
            float(timeout_s * 1000),  # CloudWatch reports the limit: "Duration: 3000.00 ms"
        )
    if kind == "exit":
        reason = f"Runtime exited with error: {outcome.detail}"
        if outcome.detail == "exit status 0":
            reason = "Runtime exited without providing a reason"
        message = f"RequestId: {request_id} Error: {reason}"
        error_type = outcome.error_type or "Runtime.ExitError"
        return Verdict(
            "error",
            error_type,
            error_body(error_type, message),
            "error",
            [message, "Runtime.ExitError"],
            duration_ms,
        )
    if kind == "too_large":
        message = f"Response payload size exceeded maximum allowed payload size ({MAX_PAYLOAD} bytes)."
        error_type = "Function.ResponseSizeTooLarge"
        return Verdict("error", error_type, error_body(error_type, message), None, [], duration_ms)
    if kind == "error":
        return Verdict(
            "error",
            outcome.error_type or "Runtime.Unknown",
            outcome.body[:MAX_PAYLOAD],
            "error" if outcome.init_failed else None,
            [],
            duration_ms,
        )
    if kind == "lost":
        message = f"RequestId: {request_id} Error: execution environment failed: {outcome.detail}"
        return Verdict(
            "failure",
            "Sandbox.Failure",
            error_body("Sandbox.Failure", message),
            "error",
            [message],
            duration_ms,
        )
    raise ValueError(f"unknown outcome {kind!r}")


def error_body(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


def error_type_of(header: dict, body: bytes, default: str = "Runtime.Unknown") -> str:
    """The error type: the runtime's body says it; the frame header is the fallback."""
    try:
        doc = json.loads(body)
        value = doc.get("errorType") if isinstance(doc, dict) else None
        if isinstance(value, str) and 0 < len(value) <= 128:
            return value
    except (ValueError, RecursionError):
        pass
    value = header.get("error_type")
    return value[:128] if isinstance(value, str) and value else default


def init_report_error_type(error_type: str | None) -> str:
    """INIT_REPORT keeps ``Runtime.X`` and ``Function.X``; anything else is ``Runtime.Unknown``."""
    category, _, reason = (error_type or "").partition(".")
    if category in ("Runtime", "Function") and reason[:1].isupper() and reason.isascii() and reason.isalpha():
        return error_type
    return "Runtime.Unknown"

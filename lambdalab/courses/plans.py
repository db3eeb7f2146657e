"""A scenario's plan (what to run) and checks (what must have been observed), as typed steps.

Plans and checks are data from a fixed list, with parameters: nothing an
instructor writes is ever run on the host. A plan runs against a student's
function through the lab's own services (the same path as the page), and the
checks read what the lab observed: each call's row (cold or warm and why, the
environment, status, error type, response).

Plan steps::

    {"do": "invoke", "mode": "once" | "series" | "burst", "count": n, "event": {...},
     "always_cold": true}    # optional: as a local emulator, each call in a new environment
    {"do": "wait_idle"}      # until every environment of the function is evicted for idleness
    {"do": "shut_down"}      # every environment of the function, now
    {"do": "provision", "count": n}  # set provisioned concurrency, until that many are initialised
    {"do": "wait", "seconds": s}  # let time pass (at most 60 s): frozen environments stay frozen

Checks (``step`` is the index of an invoke step; ``call`` a position in it, from 0)::

    {"check": "cold_count", "step": i, "count": n}
    {"check": "same_instance", "steps": [i, ...]}        # the response's "instance" field
    {"check": "distinct_environments", "step": i}
    {"check": "same_environment", "steps": [i, ...]}
    {"check": "status", "step": i, "call": k, "status": "timeout", "error_type": "Sandbox.Timedout"}
    {"check": "init_reason", "step": i, "call": k, "reason": "evicted"}
    {"check": "response_field", "step": i, "call": k, "field": "calls", "equals": v}
    {"check": "response_range", "step": i, "call": k, "field": "ticks", "at_least": a, "at_most": b}
    {"check": "report", "step": i, "call": k, "has": "Init Duration"}   # or "lacks": ...

Each check carries ``explain_pass`` and ``explain_fail``: what the student reads.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

MODES = ("once", "series", "burst")
STEPS = ("invoke", "wait_idle", "shut_down", "provision", "wait")
MAX_WAIT_S = 60
CHECKS = {
    "cold_count": ("step", "count"),
    "same_instance": ("steps",),
    "distinct_environments": ("step",),
    "same_environment": ("steps",),
    "status": ("step", "call", "status"),
    "init_reason": ("step", "call", "reason"),
    "response_field": ("step", "call", "field", "equals"),
    "response_range": ("step", "call", "field"),
    "report": ("step", "call"),
}
SETTINGS = {
    "memory_mb": (128, 10240),
    "timeout_s": (1, 900),
    "tmp_mb": (512, 10240),
    "idle_timeout_s": (1, 14400),
    "reserved_concurrency": (0, 100),
    "provisioned_concurrency": (0, 5),
}
MAX_STEPS = 20
MAX_CALLS = 20


def validate_plan(plan) -> None:
    if not isinstance(plan, list) or not 1 <= len(plan) <= MAX_STEPS:
        raise ValueError(f"the plan must be a list of 1 to {MAX_STEPS} steps")
    for i, step in enumerate(plan):
        if not isinstance(step, dict) or step.get("do") not in STEPS:
            raise ValueError(f"step {i}: 'do' must be one of {', '.join(STEPS)}")
        if step["do"] == "invoke":
            if step.get("mode", "once") not in MODES:
                raise ValueError(f"step {i}: mode must be one of {', '.join(MODES)}")
            count = step.get("count", 1)
            if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_CALLS:
                raise ValueError(f"step {i}: count must be 1 to {MAX_CALLS}")
            json.dumps(step.get("event", {}))
            if not isinstance(step.get("always_cold", False), bool):
                raise ValueError(f"step {i}: always_cold must be true or false")
        if step["do"] == "provision":
            count = step.get("count")
            if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= 5:
                raise ValueError(f"step {i}: count must be 0 to 5")
        if step["do"] == "wait":
            seconds = step.get("seconds")
            if (
                isinstance(seconds, bool)
                or not isinstance(seconds, (int, float))
                or not 0 < seconds <= MAX_WAIT_S
            ):
                raise ValueError(f"step {i}: seconds must be more than 0 and at most {MAX_WAIT_S}")
        unknown = set(step) - {"do", "mode", "count", "event", "always_cold", "seconds"}
        if unknown:
            raise ValueError(f"step {i}: unknown field {sorted(unknown)[0]}")


def validate_checks(checks, *, steps: int) -> None:
    if not isinstance(checks, list):
        raise ValueError("the checks must be a list")
    for i, check in enumerate(checks):
        if not isinstance(check, dict) or check.get("check") not in CHECKS:
            raise ValueError(f"check {i}: 'check' must be one of {', '.join(CHECKS)}")
        for name in CHECKS[check["check"]]:
            if name not in check:
                raise ValueError(f"check {i}: '{name}' is missing")
        for index in [check["step"]] if "step" in check else check.get("steps", []):
            if not isinstance(index, int) or not 0 <= index < steps:
                raise ValueError(f"check {i}: step {index} is not a step of the plan")
        if check["check"] == "response_range":
            bounds = [check[b] for b in ("at_least", "at_most") if b in check]
            if not bounds or not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds):
                raise ValueError(f"check {i}: give at_least or at_most, as numbers")
        if check["check"] == "report":
            texts = [check[b] for b in ("has", "lacks") if b in check]
            if len(texts) != 1 or not isinstance(texts[0], str) or not 0 < len(texts[0]) <= 100:
                raise ValueError(f"check {i}: give has or lacks, a text of 1 to 100 characters")


def validate_settings(settings, locked) -> None:
    if not isinstance(settings, dict) or not isinstance(locked, list):
        raise ValueError("settings must be an object and locked a list")
    for name, value in settings.items():
        if name not in SETTINGS:
            raise ValueError(f"unknown setting {name}")
        low, high = SETTINGS[name]
        if not isinstance(value, (int, float)) or not low <= value <= high:
            raise ValueError(f"{name} must be between {low} and {high}")
    for name in locked:
        if name not in (*SETTINGS, "code", "event"):
            raise ValueError(f"cannot lock {name}")


def validate_question(question) -> None:
    """An optional prediction to make before the run: a choice among answers, or a number."""
    if not question:
        return
    if not isinstance(question, dict) or not isinstance(question.get("prompt"), str):
        raise ValueError("the question needs a prompt")
    if question.get("kind") == "choice":
        choices = question.get("choices")
        if not isinstance(choices, list) or len(choices) < 2 or question.get("answer") not in choices:
            raise ValueError("a choice question needs 2 or more choices, the answer among them")
    elif question.get("kind") == "number":
        if isinstance(question.get("answer"), bool) or not isinstance(question.get("answer"), (int, float)):
            raise ValueError("a number question needs a numeric answer")
    else:
        raise ValueError("the question's kind must be choice or number")


# -- observing -------------------------------------------------------------------------------


@dataclass
class Observed:
    """What the lab saw of one call of a plan's step."""

    step: int
    call: int
    request_id: str
    status: str
    error_type: str | None
    cold: bool | None
    init_reason: str | None
    environment: str | None
    response: object  # the decoded JSON response, or its text
    report: str = ""  # its REPORT line


@dataclass
class CheckResult:
    check: dict
    passed: bool
    explanation: str
    found: str  # what was observed, in words


@dataclass
class Observations:
    calls: list[Observed] = field(default_factory=list)

    def step(self, index: int) -> list[Observed]:
        return [c for c in self.calls if c.step == index]

    def call(self, step: int, position: int) -> Observed | None:
        calls = self.step(step)
        return calls[position] if 0 <= position < len(calls) else None


def _instance(call: Observed):
    return call.response.get("instance") if isinstance(call.response, dict) else None


def evaluate(checks: list[dict], seen: Observations) -> list[CheckResult]:
    """Each check against what was observed, with the explanation the student reads."""
    results = []
    for check in checks:
        passed, found = _evaluate(check, seen)
        words = check.get("explain_pass" if passed else "explain_fail", "")
        results.append(CheckResult(check, passed, words, found))
    return results


def _evaluate(check: dict, seen: Observations) -> tuple[bool, str]:
    kind = check["check"]
    if kind == "cold_count":
        calls = seen.step(check["step"])
        cold = sum(1 for c in calls if c.cold)
        return cold == check["count"], f"{cold} of {len(calls)} calls were cold"
    if kind == "same_instance":
        ids = {_instance(c) for i in check["steps"] for c in seen.step(i)}
        return len(ids) == 1 and None not in ids, f"instance ids seen: {', '.join(sorted(map(str, ids)))}"
    if kind == "distinct_environments":
        envs = [c.environment for c in seen.step(check["step"])]
        return len(set(envs)) == len(
            envs
        ) and None not in envs, f"{len(set(envs))} environments for {len(envs)} calls"
    if kind == "same_environment":
        envs = {c.environment for i in check["steps"] for c in seen.step(i)}
        return len(envs) == 1 and None not in envs, f"{len(envs)} environment(s)"
    call = seen.call(check["step"], check["call"])
    if call is None:
        return False, "that call did not happen"
    if kind == "status":
        ok = call.status == check["status"] and check.get("error_type") in (None, call.error_type)
        return ok, f"status {call.status}" + (f", {call.error_type}" if call.error_type else "")
    if kind == "init_reason":
        return call.init_reason == check[
            "reason"
        ], f"Init reason: {call.init_reason or 'none (a plain warm call)'}"
    if kind in ("response_field", "response_range"):
        value = call.response.get(check["field"]) if isinstance(call.response, dict) else None
        found = f"{check['field']} = {json.dumps(value)}"
        if kind == "response_field":
            return value == check["equals"], found
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        low, high = check.get("at_least"), check.get("at_most")
        return number and (low is None or value >= low) and (high is None or value <= high), found
    if kind == "report":
        line = call.report or "(no REPORT line)"
        if "has" in check:
            return check["has"] in line, line
        return check["lacks"] not in line, line
    raise ValueError(f"unknown check {kind}")


# -- running -------------------------------------------------------------------------------


class PlanError(Exception):
    """A plan could not be carried out (a call never ended, an environment never idled out)."""


def run(
    *, function, plan: list[dict], owner_tag: str, address: str, timeout_s: float = 120.0
) -> Observations:
    """Carry out a plan against ``function`` through the lab's services, step by step, and return
    what was observed. Blocks until each step's calls have ended (bounded by ``timeout_s``)."""
    from lambdalab.lab import services, stream

    seen = Observations()
    deadline = time.monotonic() + timeout_s
    for index, step in enumerate(plan):
        if step["do"] == "invoke":
            asked = services.invocation_request(
                function=function,
                mode=step.get("mode", "once"),
                count=step.get("count", 1),
                event=json.dumps(step["event"]) if "event" in step else None,
                owner_tag=owner_tag,
                address=address,
                always_cold=step.get("always_cold") or None,
            )
            for position, row in enumerate(_ended(asked.request_ids, deadline)):
                seen.calls.append(_observed(index, position, row))
        elif step["do"] == "shut_down":
            services.environments_shutdown(function=function)
            _until(
                lambda: not stream.environments(str(function.pk)),
                deadline,
                "the environments never shut down",
            )
        elif step["do"] == "wait":
            time.sleep(min(step["seconds"], max(0.0, deadline - time.monotonic())))  # the lesson: time passes
        elif step["do"] == "provision":
            wanted = step["count"]
            services.function_update(function=function, provisioned_concurrency=wanted)
            function.refresh_from_db()
            _until(
                lambda wanted=wanted: (
                    sum(
                        1
                        for env in stream.environments(str(function.pk))
                        if env.get("init") == "provisioned-concurrency" and env["state"] == "frozen"
                    )
                    == wanted
                ),
                deadline,
                f"the {wanted} provisioned environment(s) were never ready",
            )
        elif step["do"] == "wait_idle":
            _until(
                lambda: not stream.environments(str(function.pk)),
                deadline,
                "the environments never idled out",
            )
    return seen


def _ended(request_ids: list[str], deadline: float) -> list:
    from lambdalab.lab.models import Invocation

    rows: dict = {}
    while len(rows) < len(request_ids):
        for row in Invocation.objects.filter(request_id__in=request_ids).exclude(request_id__in=list(rows)):
            rows[str(row.request_id)] = row
        if len(rows) < len(request_ids):
            if time.monotonic() > deadline:
                raise PlanError(f"{len(request_ids) - len(rows)} call(s) did not end in time")
            time.sleep(0.05)  # the worker writes each row once, when its call ends
    return [rows[rid] for rid in request_ids]


def _until(done, deadline: float, why: str) -> None:
    while not done():
        if time.monotonic() > deadline:
            raise PlanError(why)
        time.sleep(0.05)


def _observed(step: int, position: int, row) -> Observed:
    text = bytes(row.response).decode("utf-8", "replace")
    try:
        response = json.loads(text)
    except ValueError:
        response = text
    return Observed(
        step=step,
        call=position,
        request_id=str(row.request_id),
        status=row.status,
        error_type=row.error_type or None,
        cold=row.cold,
        init_reason=row.init_reason or None,
        environment=row.environment_id or None,
        response=response,
        report=row.report,
    )

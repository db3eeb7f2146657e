"""The lab's reads: a user's functions, invocations as the API and the page show them."""

from __future__ import annotations

import re

from django.db.models import QuerySet

from .models import Function, FunctionVersion, Invocation
from .stream import PREVIEW_BYTES  # the same preview in lists as in events


def functions_of(*, user, session_key: str | None) -> QuerySet[Function]:
    if user.is_authenticated:
        return Function.objects.filter(owner=user)
    if not session_key:
        return Function.objects.none()
    return Function.objects.filter(owner=None, session_key=session_key)


def function_for(*, user, session_key: str | None, function_id) -> Function | None:
    """The function if this user (or anonymous session) may see and drive it; else None (a 404)."""
    try:
        return functions_of(user=user, session_key=session_key).select_related("latest").get(pk=function_id)
    except (Function.DoesNotExist, ValueError, TypeError):
        return None


def version_dict(version: FunctionVersion) -> dict:
    return {
        "revision": version.number,
        "code": version.code,
        "handler": version.handler,
        "memory_mb": version.memory_mb,
        "timeout_s": version.timeout_s,
        "tmp_mb": version.tmp_mb,
        "environment": version.environment,
    }


def function_dict(function: Function) -> dict:
    return {
        "id": str(function.pk),
        "name": function.name,
        "event": function.event,
        "idle_timeout_s": function.idle_timeout_s,
        "locked": list(function.locked),
        "reserved_concurrency": function.reserved_concurrency,
        "provisioned_concurrency": function.provisioned_concurrency,
        "always_cold": function.always_cold,
        "created": function.created.isoformat(),
        "updated": function.updated.isoformat(),
        **version_dict(function.latest),
    }


def invocation_dict(row: Invocation, *, full: bool = False) -> dict:
    payload = bytes(row.response)
    data = {
        "request_id": str(row.request_id),
        "batch": str(row.batch) if row.batch else None,
        "mode": row.mode,
        "position": row.position,
        "revision": row.version.number,
        "status": row.status,
        "cold": row.cold,
        "init_reason": row.init_reason or None,
        "init_reason_text": row.init_reason_text or None,
        "environment": row.environment_id or None,
        "error_type": row.error_type or None,
        "duration_ms": row.duration_ms,
        "billed_duration_ms": row.billed_duration_ms,
        "max_memory_used_mb": row.max_memory_used_mb,
        "memory_mb": _memory_mb(row),
        "init_duration_ms": row.init_duration_ms,
        "report": row.report,
        "response_bytes": len(payload),
        "created": row.created.isoformat(),
        "ended": row.ended.isoformat() if row.ended else None,
    }
    text = payload.decode("utf-8", "replace")
    if full:
        data["response"] = text
        data["logs"] = row.logs.split("\n") if row.logs else []
        data["log_truncated"] = row.log_truncated
    else:
        data["response"] = text[:PREVIEW_BYTES]
        data["response_truncated"] = len(text) > PREVIEW_BYTES
    return data


MEMORY_IN_REPORT = re.compile(r"Memory Size: (\d+) MB")


def _memory_mb(row: Invocation) -> int:
    """The memory the call ran with: its REPORT's (a power tuning runs the revision at other
    sizes), else its revision's."""
    found = MEMORY_IN_REPORT.search(row.report or "")
    return int(found[1]) if found else row.version.memory_mb


def invocations_of(*, function: Function, limit: int = 100) -> list[dict]:
    rows = Invocation.objects.filter(function=function).select_related("version").order_by("-created")[:limit]
    return [invocation_dict(row) for row in rows]

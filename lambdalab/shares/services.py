"""Shared links: make one (bounded, idempotent), and fork one into the viewer's own function.

A share is a snapshot of a function as it is now (code, handler, settings, event) and,
optionally, its recorded run: the lifecycle events of chosen calls, as the lab page applied
them. Its id is a short salted hash of that content, as the Go playground names its snippets:
the same content is the same link, and nothing can change what a link shows afterwards.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid

from django.conf import settings
from django.db import IntegrityError, transaction

from lambdalab.lab import placement, rds
from lambdalab.lab.models import Function, Invocation
from lambdalab.lab.services import LabError, admit_hourly, function_create

from .models import Share

ID_LENGTH = 11  # base64url characters: 66 bits of the hash, as the Go playground's links
TITLE_MAX = 100
LINE_MAX = 1000  # characters of one recorded output line
STREAM_CHUNK = 1000
# What a recorded event keeps: the lab's own bookkeeping (its function's id, the engine's key,
# the stream's numbering) is not the viewer's business.
DROPPED_EVENT_FIELDS = ("function", "function_id", "function_name", "seq", "worker")
SECRET_MIN = 4  # environment values at least this long are masked in a run shared without them


class TooLarge(LabError):
    status = 413

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message, field=field, code="RequestTooLargeException")


class Gone(LabError):
    """Staff took the link down."""

    status = 410

    def __init__(self, reason: str = ""):
        message = "This link was taken down" + (f": {reason}" if reason else "")
        super().__init__(message, code="ResourceGoneException")
        self.reason = reason


# -- ids ----------------------------------------------------------------------------------


def _salt() -> bytes:
    """LAB_SHARE_SALT, else one derived from SECRET_KEY: ids can't be made for content elsewhere."""
    if settings.LAB_SHARE_SALT:
        return settings.LAB_SHARE_SALT.encode()
    return hashlib.sha256(b"lambdalab share salt\n" + settings.SECRET_KEY.encode()).hexdigest().encode()


def canonical(content: dict) -> bytes:
    """One JSON text per content: sorted keys, no spaces, UTF-8."""
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def share_id(data: bytes) -> tuple[str, str]:
    """The link's id (11 base64url characters) and the whole digest, of the canonical content."""
    digest = hashlib.sha256(_salt() + data).digest()
    return base64.urlsafe_b64encode(digest).decode()[:ID_LENGTH], digest.hex()


# -- what is shared -------------------------------------------------------------------------


def _title(title, function: Function) -> str:
    if title is None or (isinstance(title, str) and not title.strip()):
        return function.name
    if not isinstance(title, str) or len(title.strip()) > TITLE_MAX:
        raise LabError(f"Title must be text of at most {TITLE_MAX} characters", field="title")
    return " ".join(title.split())


def share_content(
    *,
    function: Function,
    title=None,
    include_run: bool = False,
    include_env_values: bool = False,
    invocation_ids=None,
) -> dict:
    """The snapshot a link holds (before any bound on its size is checked)."""
    version = function.latest
    environment = dict(version.environment)
    content = {
        "title": _title(title, function),
        "code": version.code,
        "handler": version.handler,
        "memory_mb": version.memory_mb,
        "timeout_s": version.timeout_s,
        "tmp_mb": version.tmp_mb,
        "idle_timeout_s": function.idle_timeout_s,
        "reserved_concurrency": function.reserved_concurrency,
        "provisioned_concurrency": function.provisioned_concurrency,
        "always_cold": function.always_cold,
        "environment": environment if include_env_values else dict.fromkeys(environment, ""),
        "env_values": bool(include_env_values),
        "event": function.event,
        "run": None,
    }
    if include_run:
        secrets = [] if include_env_values else [v for v in environment.values() if len(v) >= SECRET_MIN]
        content["run"] = recorded_run(function=function, invocation_ids=invocation_ids, secrets=secrets)
    return content


def _chosen(function: Function, invocation_ids) -> list[Invocation]:
    """The calls to record, oldest first: those asked for, else the function's newest ones."""
    limit = settings.LAB_SHARE_MAX_INVOCATIONS
    rows = Invocation.objects.filter(function=function).select_related("version")
    if invocation_ids is None:
        return list(rows.order_by("-created")[:limit])[::-1]
    if not isinstance(invocation_ids, list) or not all(isinstance(i, str) for i in invocation_ids):
        raise LabError("Invocations must be a list of request ids", field="invocations")
    wanted = list(dict.fromkeys(invocation_ids))
    if len(wanted) > limit:
        raise TooLarge(
            f"A recorded run holds at most {limit} calls; {len(wanted)} were chosen", field="invocations"
        )
    try:
        ids = [uuid.UUID(i) for i in wanted]
    except ValueError:
        raise LabError("Invocations must be a list of request ids", field="invocations") from None
    found = list(rows.filter(pk__in=ids).order_by("created"))
    written = {row.request_id for row in found}
    # A call the page saw end may not have its row yet (its worker writes it just after): it is
    # left out, as one still running would be. Any other id is not a call of this function.
    unknown = [i for i in ids if i not in written and placement.pending(str(i)) != str(function.pk)]
    if unknown:
        raise LabError("Some of those invocations are not ended calls of this function", field="invocations")
    return found


def recorded_run(*, function: Function, invocation_ids=None, secrets: list[str] = ()) -> dict:
    """The chosen calls' lifecycle events, in order, as the page applies them: each call's own
    events, and its environment's (Init before it, the thaw, the freeze and a shutdown after it)
    while no other call used that environment. A call the stream no longer holds (it keeps a day)
    is rebuilt from its row."""
    rows = _chosen(function, invocation_ids)
    if not rows:
        return {"calls": 0, "events": []}
    chosen = {str(row.request_id) for row in rows}
    since = min(_ms(row.ended) - (row.duration_ms or 0) - (row.init_duration_ms or 0) for row in rows)
    picked = _select(_stream_events(str(function.pk), since_ms=int(since) - 15_000), chosen)
    seen = {ev.get("request_id") for ev in picked if ev.get("type") == "invoke.end"}
    for row in rows:
        if str(row.request_id) not in seen:
            picked.extend(_events_from_row(row))
    picked.sort(key=lambda ev: ev.get("time") or 0)  # stable: the stream's order within a millisecond
    events = _bounded_logs(picked)
    if len(events) > settings.LAB_SHARE_MAX_EVENTS:
        raise TooLarge(
            f"The recorded run has {len(events):,} events, over the {settings.LAB_SHARE_MAX_EVENTS:,} "
            "a link may hold: share fewer calls",
            field="invocations",
        )
    events = [_clean_event(ev, secrets) for ev in events]
    return {"calls": len(rows), "events": events}


def _ms(when) -> float:
    return when.timestamp() * 1000 if when else time.time() * 1000


def _stream_events(function_id: str, *, since_ms: int) -> list[dict]:
    """The function's events from the newest back to ``since_ms`` (or as far as the stream keeps)."""
    client = rds.client()
    key = rds.key("ev", function_id)
    found: list[dict] = []
    upper = "+"
    while True:
        chunk = client.xrevrange(key, max=upper, min="-", count=STREAM_CHUNK)
        if not chunk:
            break
        found.extend(json.loads(fields[b"e"]) for _, fields in chunk)
        oldest = int(chunk[-1][0].split(b"-")[0])
        if found[-1].get("time", 0) < since_ms or oldest <= 1:
            break
        upper = f"{oldest - 1}-0"  # ids are <seq>-0
    found.reverse()
    return found


def _select(events: list[dict], chosen: set[str]) -> list[dict]:
    picked: list[dict] = []
    serving: set[str] = set()  # environments that served a chosen call, until another call uses them
    before: dict[str, list[dict]] = {}  # an environment's events since another call last used it
    for ev in events:
        rid = ev.get("request_id")
        env = ev.get("environment") or ""
        if rid in chosen:
            if env and env not in serving:
                picked.extend(before.pop(env, []))  # its Init, or the thaw
                serving.add(env)
            picked.append(ev)
        elif rid:  # another call's: its environment is no longer part of this run
            serving.discard(env)
            before.pop(env, None)
        elif env in serving:
            picked.append(ev)
        elif env:
            if ev.get("type") == "shutdown":
                before.pop(env, None)
            elif ev.get("type") != "freeze":  # a freeze here ends another call
                kept = before.setdefault(env, [])
                if len(kept) < 200:
                    kept.append(ev)
    return picked


def _events_from_row(row: Invocation) -> list[dict]:
    """A call as events, from its row: what the page would have seen, less the log's timing."""
    ended = int(_ms(row.ended))
    start = ended - int(row.duration_ms or 0)
    env = row.environment_id or ""
    rid = str(row.request_id)
    common = {"environment": env, "revision": row.version.number}
    out = []
    if env and row.cold and row.init_duration_ms:
        init_start = start - int(row.init_duration_ms)
        out.append({"type": "init.start", "time": init_start, "request_id": None, "phase": "init", **common})
        out.append(
            {
                "type": "init.function.done",
                "time": start,
                "request_id": None,
                "duration_ms": row.init_duration_ms,
                **common,
            }
        )
    if env:
        out.append(
            {
                "type": "invoke.start",
                "time": start,
                "request_id": rid,
                "cold": row.cold,
                "init_reason": row.init_reason or None,
                "init_reason_text": row.init_reason_text or None,
                **common,
            }
        )
        for line in row.logs.split("\n") if row.logs else []:
            out.append({"type": "log", "time": start, "request_id": rid, "stream": "function", "line": line})
    payload = bytes(row.response).decode("utf-8", "replace")
    out.append(
        {
            "type": "invoke.end",
            "time": ended,
            "request_id": rid,
            "status": row.status,
            "error_type": row.error_type or None,
            "cold": row.cold,
            "duration_ms": row.duration_ms,
            "billed_duration_ms": row.billed_duration_ms,
            "max_memory_used_mb": row.max_memory_used_mb,
            "init_duration_ms": row.init_duration_ms,
            "init_reason": row.init_reason or None,
            "init_reason_text": row.init_reason_text or None,
            "report": row.report,
            "payload": payload[:1024],
            "payload_truncated": len(payload) > 1024,
            "payload_bytes": len(row.response),
            "log_truncated": row.log_truncated,
            **common,
        }
    )
    if env and row.status in (Invocation.Status.SUCCESS, Invocation.Status.ERROR):
        out.append({"type": "freeze", "time": ended, "request_id": None, **common})
    return out


def _bounded_logs(events: list[dict]) -> list[dict]:
    """At most LAB_SHARE_LOG_LINES output lines per call (or per environment's Init), then one line
    that says how many more there were; platform lines (START, END, REPORT) are all kept."""
    limit = settings.LAB_SHARE_LOG_LINES
    counts: dict[str, int] = {}
    out: list[dict] = []
    for ev in events:
        if ev.get("type") == "log" and ev.get("stream") != "platform":
            owner = ev.get("request_id") or f"env:{ev.get('environment')}"
            counts[owner] = counts.get(owner, 0) + 1
            if counts[owner] > limit:
                continue
        out.append(ev)
    cut = {owner: n - limit for owner, n in counts.items() if n > limit}
    if not cut:
        return out
    bounded = []
    for ev in out:
        rid = ev.get("request_id")
        if ev.get("type") == "invoke.end" and rid in cut:  # the note goes in before its END
            bounded.append(_cut_note(ev, cut.pop(rid)))
        bounded.append(ev)
    return bounded


def _cut_note(end: dict, more: int) -> dict:
    return {
        "type": "log",
        "time": end.get("time"),
        "request_id": end.get("request_id"),
        "environment": end.get("environment"),
        "stream": "platform",
        "line": f"[LambdaLab] {more:,} more output lines were not included in the shared link",
    }


def _clean_event(ev: dict, secrets: list[str]) -> dict:
    out = {k: v for k, v in ev.items() if k not in DROPPED_EVENT_FIELDS}
    if isinstance(out.get("line"), str) and len(out["line"]) > LINE_MAX:
        out["line"] = out["line"][:LINE_MAX] + "…"
    if secrets:
        out = {k: _mask(v, secrets) for k, v in out.items()}
    return out


def _mask(value, secrets: list[str]):
    """An environment value left out of the share is not shown by the run either (a handler that
    printed or returned it)."""
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, "****")
        return value
    if isinstance(value, list):
        return [_mask(v, secrets) for v in value]
    if isinstance(value, dict):
        return {k: _mask(v, secrets) for k, v in value.items()}
    return value


def _check_size(content: dict, data: bytes) -> None:
    limit = settings.LAB_SHARE_MAX_BYTES
    if len(content["code"].encode()) > settings.LAB_MAX_CODE_BYTES:
        raise TooLarge(f"Code is over {settings.LAB_MAX_CODE_BYTES // 1024:,} KB", field="code")
    if len(data) <= limit:
        return
    parts = {
        "code": len(content["code"].encode()),
        "event": len(content["event"].encode()),
        "include_run": len(canonical(content["run"])) if content["run"] else 0,
    }
    biggest = max(parts, key=parts.get)
    hint = {
        "code": "the code is most of it",
        "event": "the event is most of it: share a smaller one",
        "include_run": "the recorded run is most of it: leave it out, or share fewer calls",
    }[biggest]
    raise TooLarge(
        f"The share is {len(data) / 1024:,.0f} KB, over the {limit // 1024:,} KB a link may hold ({hint})",
        field=biggest,
    )


# -- making one ------------------------------------------------------------------------------


def _admit(*, owner_tag: str, address: str) -> None:
    admit_hourly(
        what="shared links",
        owner_tag=owner_tag,
        address=address,
        per_owner=settings.LAB_SHARES_PER_HOUR,
        per_address=settings.LAB_SHARES_PER_HOUR,
    )


def share_create(
    *,
    function: Function,
    owner_tag: str,
    address: str,
    user=None,
    title=None,
    include_run: bool = False,
    include_env_values: bool = False,
    invocation_ids=None,
) -> tuple[Share, bool]:
    """The link for the function as it is now; an existing one (not counted again) if the same
    content was shared before. Returns the share and whether it is new."""
    for name, value in (("include_run", include_run), ("include_env_values", include_env_values)):
        if not isinstance(value, bool):
            raise LabError(f"{name} must be true or false", field=name)
    content = share_content(
        function=function,
        title=title,
        include_run=include_run,
        include_env_values=include_env_values,
        invocation_ids=invocation_ids,
    )
    data = canonical(content)
    _check_size(content, data)
    sid, digest = share_id(data)
    existing = Share.objects.filter(pk=sid).first()
    if existing is not None:
        return _same(existing, digest), False
    _admit(owner_tag=owner_tag, address=address)
    try:
        with transaction.atomic():
            share = Share.objects.create(
                id=sid,
                digest=digest,
                title=content["title"],
                content=content,
                size=len(data),
                has_run=content["run"] is not None,
                env_values=content["env_values"],
                created_by=user if user is not None and user.is_authenticated else None,
                source_function=function.pk,
            )
    except IntegrityError:  # the same content shared at the same moment: one link
        return _same(Share.objects.get(pk=sid), digest), False
    return share, True


def _same(share: Share, digest: str) -> Share:
    if share.digest != digest:  # 66 bits of sha256 agreeing on different content: never seen yet
        raise LabError("This content's link id is taken by another share", code="ResourceConflictException")
    return share


# -- forking one --------------------------------------------------------------------------


def share_fork(*, share: Share, owner=None, session_key: str = "", address: str | None = None) -> Function:
    """A new function of the viewer's own (their account, or their browser session) with the
    shared code, handler, settings and event. Environment values left out stay empty."""
    if share.taken_down:
        raise Gone(share.taken_down_reason)
    content = share.content
    name = content["title"][:64].strip() or f"shared-{share.id}"
    return function_create(
        owner=owner,
        session_key=session_key,
        address=address,
        name=name,
        code=content["code"],
        handler=content["handler"],
        memory_mb=content["memory_mb"],
        timeout_s=content["timeout_s"],
        tmp_mb=content["tmp_mb"],
        environment=content["environment"],
        event=content["event"],
        idle_timeout_s=content["idle_timeout_s"],
        reserved_concurrency=content["reserved_concurrency"],
        provisioned_concurrency=content.get("provisioned_concurrency", 0),
        always_cold=content.get("always_cold", False),
    )

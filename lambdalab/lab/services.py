"""The lab's writes: functions and revisions, asking for invocations, running them on a worker.

Views, the consumer and tasks stay thin and call these (HackSoft's styleguide:
``<entity>_<action>`` with keyword-only arguments).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from sandbox import EnvironmentBusy, EnvironmentNotFound, FunctionSpec, PoolError
from sandbox.result import InitReason, InvokeResult

from . import placement, rds, stream
from .models import REVISION_FIELDS, Function, FunctionVersion, Invocation, lambda_name

log = logging.getLogger(__name__)

MAX_EVENT_BYTES = 6 * 1024 * 1024  # Lambda's synchronous request limit
MODES = ("once", "series", "burst")

STARTER_CODE = """import os
import time
import uuid

# Module-level code runs once per execution environment, during Init.
INSTANCE_ID = uuid.uuid4().hex[:8]
STARTED = time.time()
calls = 0


def lambda_handler(event, context):
    global calls
    calls += 1  # survives between warm invocations of the same environment
    print(f"instance {INSTANCE_ID}: call {calls} in this environment")
    return {
        "instance": INSTANCE_ID,
        "calls_in_this_environment": calls,
        "environment_age_s": round(time.time() - STARTED, 3),
        "request_id": context.aws_request_id,
        "tmp_files": sorted(os.listdir("/tmp")),
    }
"""


class LabError(Exception):
    """A request the lab refuses: ``field`` (or None) and the reason, for the page and the API."""

    status = 400

    def __init__(
        self, message: str, *, field: str | None = None, code: str = "InvalidParameterValueException"
    ):
        super().__init__(message)
        self.message = message
        self.field = field
        self.code = code


class Throttled(LabError):
    status = 429


class NotFound(LabError):
    status = 404


class Conflict(LabError):
    status = 409


class NoAnswer(LabError):
    status = 504


# -- validation ----------------------------------------------------------------------------

LIMITS = {
    "memory_mb": (128, 10240),
    "timeout_s": (1, 900),
    "tmp_mb": (512, 10240),
}
NAMES = {
    "memory_mb": "Memory",
    "timeout_s": "Timeout",
    "tmp_mb": "Ephemeral storage (/tmp)",
    "idle_timeout_s": "Idle eviction",
    "code": "The code",
    "event": "The event",
}
UNITS = {"memory_mb": "MB", "timeout_s": "seconds", "tmp_mb": "MB"}


def _clean(values: dict) -> dict:
    """Check what a function update carries, field by field, with Lambda's ranges and words."""
    out = {}
    for name, (low, high) in LIMITS.items():
        if name in values:
            value = values[name]
            if isinstance(value, bool) or not isinstance(value, int):
                raise LabError(f"{NAMES[name]} must be a whole number of {UNITS[name]}", field=name)
            if not low <= value <= high:
                raise LabError(
                    f"{NAMES[name]} must be between {low:,} and {high:,} {UNITS[name]}", field=name
                )
            out[name] = value
    if "idle_timeout_s" in values:
        value = values["idle_timeout_s"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 1 <= value <= 4 * 3600:
            raise LabError("Idle eviction must be between 1 and 14,400 seconds", field="idle_timeout_s")
        out["idle_timeout_s"] = float(value)
    if "code" in values:
        code = values["code"]
        if not isinstance(code, str):
            raise LabError("Code must be text", field="code")
        if len(code.encode()) > settings.LAB_MAX_CODE_BYTES:
            raise LabError(f"Code is over {settings.LAB_MAX_CODE_BYTES // 1024:,} KB", field="code")
        out["code"] = code
    if "handler" in values:
        handler = values["handler"]
        if not isinstance(handler, str) or "." not in handler or not 3 <= len(handler) <= 128:
            raise LabError(
                "Handler must look like file.function, e.g. lambda_function.lambda_handler", field="handler"
            )
        out["handler"] = handler
    if "environment" in values:
        env = values["environment"]
        if not isinstance(env, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env.items()
        ):
            raise LabError("Environment variables must be names and text values", field="environment")
        out["environment"] = env
    if "reserved_concurrency" in values:
        value = values["reserved_concurrency"]
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100
        ):
            raise LabError(
                "Reserved concurrency must be a whole number from 0 to 100, or none",
                field="reserved_concurrency",
            )
        out["reserved_concurrency"] = value
    if "provisioned_concurrency" in values:
        value = values["provisioned_concurrency"]
        most = settings.LAB_MAX_PROVISIONED
        if value is None:
            value = 0
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= most:
            raise LabError(
                f"Provisioned concurrency must be a whole number from 0 to {most}",
                field="provisioned_concurrency",
            )
        out["provisioned_concurrency"] = value
    if "always_cold" in values:
        if not isinstance(values["always_cold"], bool):
            raise LabError("Always cold is on or off (true or false)", field="always_cold")
        out["always_cold"] = values["always_cold"]
    if "name" in values:
        name = values["name"]
        if not isinstance(name, str) or not 1 <= len(name.strip()) <= 64:
            raise LabError("Name must be 1 to 64 characters", field="name")
        out["name"] = name.strip()
    if "event" in values:
        out["event"] = event_text(values["event"])
    return out


def event_text(event) -> str:
    """The event as JSON text, checked as Lambda checks a request body."""
    text = event if isinstance(event, str) else json.dumps(event)
    if len(text.encode()) > MAX_EVENT_BYTES:
        raise LabError(
            f"Event is {len(text.encode()):,} bytes: over the 6 MB (6,291,456 bytes) request limit",
            field="event",
            code="RequestTooLargeException",
        )
    try:
        json.loads(text or "{}")
    except ValueError as exc:
        raise LabError(
            f"Could not parse request body into json: {exc}",
            field="event",
            code="InvalidRequestContentException",
        ) from None
    return text or "{}"


def _check_spec(version_values: dict) -> None:
    """The engine's own checks (environment variable names, reserved ones, the 4 KB total)."""
    try:
        FunctionSpec(
            source=version_values["code"],
            handler=version_values["handler"],
            memory_mb=version_values["memory_mb"],
            timeout_s=version_values["timeout_s"],
            tmp_mb=version_values["tmp_mb"],
            environment=version_values["environment"],
        )
    except ValueError as exc:
        message = str(exc)
        field = "environment" if message.startswith("environment") else None
        raise LabError(message[0].upper() + message[1:], field=field) from None


# -- functions ------------------------------------------------------------------------------


# Counts of what an owner and an address made this hour, each with its limit: KEYS the counters,
# ARGV their limits. Counts one more in each, or returns the index of the one at its limit
# (nothing counted then).
HOURLY = """
for i, k in ipairs(KEYS) do
  if tonumber(redis.call('GET', k) or '0') >= tonumber(ARGV[i]) then return i end
end
for _, k in ipairs(KEYS) do
  redis.call('INCR', k)
  redis.call('EXPIRE', k, 7200)
end
return 0
"""


def admit_hourly(*, what: str, owner_tag: str, address: str, per_owner: int, per_address: int) -> None:
    """One more ``what`` (new functions, shared links) this hour for this owner and this address,
    or ``Throttled`` if either is at its limit."""
    hour = int(time.time() // 3600)
    over = rds.client().eval(
        HOURLY,
        2,
        rds.key("hourly", what, "o", owner_tag, hour),
        rds.key("hourly", what, "a", address, hour),
        per_owner,
        per_address,
    )
    if over:
        who, limit = ("you have", per_owner) if over == 1 else ("this address has", per_address)
        raise Throttled(
            f"Rate exceeded: {who} made {limit:,} {what} this hour; try again later",
            code="TooManyRequestsException",
        )


@transaction.atomic
def function_create(
    *,
    owner=None,
    session_key: str = "",
    name: str = "my-function",
    locked: tuple = (),
    address: str | None = None,
    **values,
) -> Function:
    """A new function and its first revision. ``address``: who asks, from where (a request's):
    new functions per hour are bounded per owner and per address (``Throttled``)."""
    cleaned = _clean({"name": name, **values})
    if address is not None:
        user_id = owner.pk if owner is not None and owner.is_authenticated else None
        admit_hourly(
            what="new functions",
            owner_tag=owner_tag(user_id, None if user_id else session_key),
            address=address,
            per_owner=settings.LAB_NEW_FUNCTIONS_PER_HOUR,
            per_address=settings.LAB_NEW_FUNCTIONS_PER_HOUR_PER_ADDRESS,
        )
    function = Function(
        owner=owner if owner is not None and owner.is_authenticated else None,
        session_key="" if owner is not None and owner.is_authenticated else session_key,
        name=cleaned.pop("name"),
        event=cleaned.pop("event", '{\n  "key1": "value1",\n  "key2": "value2"\n}'),
        idle_timeout_s=cleaned.pop("idle_timeout_s", settings.LAB_DEFAULT_IDLE_S),
        reserved_concurrency=cleaned.pop("reserved_concurrency", None),
        provisioned_concurrency=cleaned.pop("provisioned_concurrency", 0),
        always_cold=cleaned.pop("always_cold", False),
        locked=list(locked),
    )
    _check_concurrency(function)
    function.save(force_insert=True)
    version_values = {
        "code": STARTER_CODE,
        "handler": "lambda_function.lambda_handler",
        "memory_mb": 128,
        "timeout_s": 3,
        "tmp_mb": 512,
        "environment": {},
    } | cleaned
    _check_spec(version_values)
    function.latest = FunctionVersion.objects.create(
        function=function, number=1, lambda_name=lambda_name(function.name), **version_values
    )
    function.save(update_fields=["latest"])
    transaction.on_commit(lambda: note_latest(function))
    if function.provisioned_concurrency:
        transaction.on_commit(lambda: provisioned_apply(function_id=str(function.pk)))
    return function


def function_token(function: Function) -> str:
    """Changes whenever the function does (a new revision, the event, the idle eviction)."""
    return f"{function.latest_id}.{int(function.updated.timestamp() * 1_000_000)}"


def note_latest(function: Function) -> None:
    """Say in Redis how the function stands now, so that a WebSocket invoking it knows when to
    read it again."""
    rds.client().set(rds.key("fnver", function.pk), function_token(function), ex=86400)


@dataclass
class Update:
    function: Function
    new_revision: bool
    changed: list[str]  # the restart settings that changed: why the next call will be cold


@transaction.atomic
def function_update(*, function: Function, **values) -> Update:
    """A new immutable revision if a setting Lambda restarts for changed; else the same one."""
    cleaned = _clean(values)
    function = Function.objects.select_for_update().get(pk=function.pk)
    latest = function.latest
    for name in cleaned:
        if name in function.locked and cleaned[name] != (
            getattr(latest, name) if name in REVISION_FIELDS else getattr(function, name)
        ):
            label = NAMES.get(name, name.replace("_", " ").capitalize())
            raise LabError(f"{label} is set by the course scenario and cannot be changed", field=name)
    provisioned_before = function.provisioned_concurrency
    for name in NOT_REVISIONS:
        if name in cleaned:
            setattr(function, name, cleaned.pop(name))
    _check_concurrency(function)
    current = {name: getattr(latest, name) for name in REVISION_FIELDS}
    wanted = current | cleaned
    changed = [name for name in REVISION_FIELDS if wanted[name] != current[name]]
    if changed:
        _check_spec(wanted)
        function.latest = FunctionVersion.objects.create(
            function=function, number=latest.number + 1, lambda_name=lambda_name(function.name), **wanted
        )
    function.save()
    # any change (the event, the idle eviction too) makes a socket read the function again
    transaction.on_commit(lambda: note_latest(function))
    if function.provisioned_concurrency != provisioned_before or (changed and provisioned_before):
        # provisioned environments follow the latest revision, as many as asked for
        transaction.on_commit(lambda: provisioned_apply(function_id=str(function.pk)))
    return Update(function, bool(changed), changed)


# What a function is set to that is not a revision: changing them restarts no environment.
NOT_REVISIONS = (
    "name",
    "event",
    "idle_timeout_s",
    "reserved_concurrency",
    "provisioned_concurrency",
    "always_cold",
)


def _check_concurrency(function: Function) -> None:
    """Lambda's rule: provisioned concurrency fits within the reserved concurrency, if any; and
    an always-cold function keeps no environment ahead."""
    reserved, provisioned = function.reserved_concurrency, function.provisioned_concurrency
    if reserved is not None and provisioned > reserved:
        raise LabError(
            f"Provisioned concurrency ({provisioned}) cannot be more than the reserved concurrency ({reserved})",
            field="provisioned_concurrency",
        )
    if provisioned and function.always_cold:
        raise LabError(
            "Always-cold mode keeps no environment: set provisioned concurrency to 0 first",
            field="always_cold",
        )


def function_delete(*, function: Function) -> None:
    environments_shutdown(function=function)
    function.delete()


def functions_adopt(*, user, session_key: str) -> int:
    """What someone made anonymously moves into their account when they sign up or log in."""
    if not session_key or not user.is_authenticated:
        return 0
    return Function.objects.filter(owner=None, session_key=session_key).update(owner=user, session_key="")


# -- invoking ---------------------------------------------------------------------------------


def owner_tag(user_id: int | None, session_key: str | None) -> str:
    """Who a call is counted against (calls per minute, live environments): an account, or a session."""
    return f"u{user_id}" if user_id else f"s{session_key or ''}"


_version_keys: dict[int, str] = {}  # revision id -> the engine's key (revisions never change)


def version_key(function: Function) -> str:
    key = _version_keys.get(function.latest_id)
    if key is None:
        key = function.latest.spec(idle_timeout_s=function.idle_timeout_s).key
        if len(_version_keys) > 10_000:
            _version_keys.clear()
        _version_keys[function.latest_id] = key
    return key


@dataclass
class Requested:
    batch: str
    request_ids: list[str]
    revision: int


def invocation_request(
    *,
    function: Function,
    mode: str = "once",
    count: int = 1,
    event=None,
    owner_tag: str,
    address: str,
    checked: bool = True,
    always_cold: bool | None = None,
) -> Requested:
    """Ask for ``count`` invocations (``once``, ``series``: in a row, ``burst``: at once).

    ``always_cold``: every call in a new environment, discarded after it (None: as the function
    is set). ``checked=False``: ``function`` may be out of date (a WebSocket's copy); if it changed
    since, ``placement.Stale`` is raised and nothing is asked for.

    The hot path touches no table: admission (calls per minute, live environments, per owner and
    per address) and placement are one Redis script, the tasks go to Celery, and each call's row
    is written once, by its worker, when it ends (``pending`` answers for it until then).
    """
    if mode not in MODES:
        raise LabError(f"Mode must be one of {', '.join(MODES)}", field="mode")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise LabError("Count must be a whole number from 1", field="count")
    if mode == "once":
        count = 1
    if count > settings.LAB_MAX_BURST:
        raise LabError(f"At most {settings.LAB_MAX_BURST} invocations at once or in a row", field="count")
    text = event_text(event) if event is not None else function.event
    if always_cold is None:
        always_cold = function.always_cold
    batch = str(uuid.uuid4())
    ids = [str(uuid.uuid4()) for _ in range(count)]
    groups = [ids] if mode == "series" else [[rid] for rid in ids]
    try:
        placed = placement.request(
            function_id=str(function.pk),
            key=version_key(function),
            owner=owner_tag,
            address=address,
            request_ids=ids,
            version_id=function.latest_id,
            reserved=function.reserved_concurrency,
            always_cold=always_cold,
            new_environments=count if mode == "burst" else 1,
            placements=len(groups),
            rate_limit=settings.LAB_INVOCATIONS_PER_MINUTE,
            live_limit=settings.LAB_MAX_LIVE_ENVIRONMENTS,
            token="" if checked else function_token(function),
        )
    except placement.Refused as refused:
        if refused.what == "rate":
            message = (
                f"Rate exceeded: at most {settings.LAB_INVOCATIONS_PER_MINUTE} invocations per minute; "
                "try again in a minute"
            )
        else:
            message = (
                f"You have {refused.used} live execution environments (at most "
                f"{settings.LAB_MAX_LIVE_ENVIRONMENTS}); shut some down or wait for them to be evicted"
            )
        raise Throttled(message, code="TooManyRequestsException") from None
    from .tasks import invoke

    position = 1
    for request_ids, where in zip(groups, placed, strict=True):
        if where.queue == placement.THROTTLED:  # never runs: its row says so, its invoke.end is out
            _throttled(function, batch, mode, position, request_ids)
            position += len(request_ids)
            continue
        call = {
            "function": str(function.pk),
            "version": function.latest_id,
            "idle_timeout_s": function.idle_timeout_s,
            "batch": batch,
            "mode": mode,
            "first": position,
            "request_ids": request_ids,
            "prefer": where.environment,
            "reason": where.reason,
            "reason_text": where.reason_text,
            "always_cold": always_cold,
        }
        options = {"queue": where.queue}
        if where.environment is not None:
            options["expires"] = placement.OWN_QUEUE_EXPIRES_S
        invoke.apply_async((call, text), **options)
        position += len(request_ids)
    return Requested(batch, ids, function.latest.number)


def _throttled(function: Function, batch: str, mode: str, first: int, request_ids: list[str]) -> None:
    body = json.dumps(
        {
            "Type": "User",
            "message": "Rate Exceeded.",
            "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded",
        }
    ).encode()
    Invocation.objects.bulk_create(
        Invocation(
            request_id=rid,
            function=function,
            version=function.latest,
            batch=batch,
            mode=mode,
            position=first + i,
            status=Invocation.Status.THROTTLED,
            error_type="TooManyRequestsException",
            response=body,
            ended=timezone.now(),
        )
        for i, rid in enumerate(request_ids)
    )


def invocations_run(*, call: dict, event: str) -> None:
    """On a worker: run the calls (a series in order), each row written once, when it ends."""
    from .worker import runtime

    rt = runtime()
    known = rt.revision(call["version"], call["idle_timeout_s"])
    if known is None:
        return  # deleted with its function meanwhile
    version, spec = known
    function = version.function
    prefer = call["prefer"]
    marked = prefer is not None  # a warm placement marked its calls in flight already
    cold_reason = InitReason(call["reason"], call["reason_text"]) if call["reason"] else None
    for offset, request_id in enumerate(call["request_ids"]):
        row = Invocation(
            request_id=request_id,
            function=function,
            version=version,
            batch=call["batch"],
            mode=call["mode"],
            position=call["first"] + offset,
            worker=rt.worker,
        )
        if not marked:
            placement.start_call(rt.worker, request_id, str(function.pk), version.pk)
        try:
            result = rt.pool.invoke(
                spec,
                event.encode(),
                request_id=request_id,
                prefer=prefer,
                cold_reason=cold_reason,
                discard=call.get("always_cold", False),
            )
            _record(row, result)
        except PoolError as exc:
            _refuse(row, str(exc), rt)
        finally:
            placement.end_call(rt.worker, request_id, str(function.pk))
        prefer, cold_reason = None, None  # the next of a series finds its environment warm


def _write(row: Invocation) -> None:
    """The row's one write, then it stops being pending."""
    row.ended = timezone.now()
    row.save(force_insert=True)
    placement.written(str(row.request_id))


def _record(row: Invocation, result: InvokeResult) -> None:
    row.status = result.status
    row.cold = result.cold
    row.init_reason = result.init_reason or ""
    row.init_reason_text = result.init_reason_text or ""
    row.environment_id = result.environment_id
    row.error_type = result.error_type or ""
    row.duration_ms = result.duration_ms
    row.billed_duration_ms = result.billed_duration_ms
    row.max_memory_used_mb = result.max_memory_used_mb
    row.init_duration_ms = result.init_duration_ms
    row.response = result.payload
    row.report = result.report
    row.logs = "\n".join(result.logs)
    row.log_truncated = result.log_truncated
    _write(row)


def _refuse(row: Invocation, why: str, rt) -> None:
    """The worker had no room for the call (Lambda's 429): it ends, in the stream too."""
    row.status = Invocation.Status.REFUSED
    row.error_type = "TooManyRequestsException"
    row.response = json.dumps({"errorType": "TooManyRequestsException", "errorMessage": why}).encode()
    _write(row)
    _publish_end(
        rt.publisher, str(row.function_id), str(row.request_id), "refused", "TooManyRequestsException", why
    )


def _publish_end(
    publisher, function_id: str, request_id: str, status: str, error_type: str, why: str
) -> None:
    """An invoke.end for a call the engine never ran (refused) or lost with its worker."""
    publisher.submit(
        {
            "type": "invoke.end",
            "time": int(time.time() * 1000),
            "function": "",
            "function_name": "",
            "environment": "",
            "request_id": request_id,
            "function_id": function_id,
            "revision": "",
            "status": status,
            "error_type": error_type,
            "payload": json.dumps({"errorType": error_type, "errorMessage": why}),
            "cold": None,
            "duration_ms": 0.0,
            "billed_duration_ms": 0,
            "max_memory_used_mb": 0,
            "init_duration_ms": None,
            "report": "",
            "log_truncated": False,
            "init_reason": None,
            "init_reason_text": None,
        }
    )
    publisher.flush()  # no freeze follows this one: out at once


def reap_dead_workers(publisher) -> None:
    """Clear workers that stopped heartbeating: their environments and their calls in flight."""
    for worker in placement.dead_workers():
        taken = placement.take_dead_worker(worker)
        if taken is None:
            continue
        envs, inflight = taken
        now = int(time.time() * 1000)
        for function_id, key, env in envs:
            publisher.submit(
                {
                    "type": "shutdown",
                    "time": now,
                    "function": key,
                    "function_name": "",
                    "environment": env,
                    "request_id": None,
                    "function_id": function_id,
                    "revision": "",
                    "reason": "failure",
                    "detail": f"worker {worker} stopped",
                    "idle_s": 0,
                }
            )
        why = f"the worker running this call ({worker}) stopped"
        for request_id, (function_id, version_id) in inflight.items():
            if Invocation.objects.filter(pk=request_id).exists():
                continue  # it ended and was written before the worker went
            version = FunctionVersion.objects.filter(pk=version_id).first()
            if version is None:
                continue  # its function was deleted meanwhile
            _write(
                Invocation(
                    request_id=request_id,
                    function_id=function_id,
                    version=version,
                    status=Invocation.Status.FAILURE,
                    error_type="Sandbox.Failure",
                    response=json.dumps({"errorType": "Sandbox.Failure", "errorMessage": why}).encode(),
                    worker=worker,
                )
            )
            _publish_end(publisher, function_id, request_id, "failure", "Sandbox.Failure", why)
        for function_id in placement.provisioned_by(worker):  # provisioned again, elsewhere
            placement.set_provisioned_holder(function_id, None)
            provisioned_apply(function_id=function_id)
        log.warning("worker %s stopped: cleared %d environments, %d calls", worker, len(envs), len(inflight))


def functions_expire(*, now=None) -> int:
    """Anonymous functions not touched for the retention period go, with their invocations."""
    now = now or timezone.now()
    cutoff = now - timezone.timedelta(days=settings.LAB_ANONYMOUS_RETENTION_DAYS)
    old = list(Function.objects.filter(owner=None, updated__lt=cutoff)[:500])  # bounded per round
    for function in old:
        function_delete(function=function)
    return len(old)


# -- environments -----------------------------------------------------------------------------


def environments_shutdown(*, function: Function) -> int:
    """Shut down every environment of the function now, on whichever workers hold them."""
    from .tasks import shutdown_environments

    workers = {env["worker"] for env in stream.environments(str(function.pk))}
    for worker in workers:
        shutdown_environments.apply_async(
            (str(function.pk),), queue=placement.worker_queue(worker), expires=30
        )
    return len(workers)


def environments_shutdown_here(*, function_id: str) -> int:
    """On a worker: shut down this worker's environments of the function (idle ones now)."""
    from .worker import runtime

    rt = runtime()
    keys = {key for key, ids in rt.known_versions().items() if ids[0] == function_id}
    done = 0
    for env in rt.pool.environments():
        if env["function"] in keys and rt.pool.shutdown_environment(env["id"], reason="request"):
            done += 1
    return done


# -- provisioned concurrency ------------------------------------------------------------------

PROVISION_LOCK_S = 180  # one reconciliation of a function at a time (Init may take 130 s)


def provisioned_apply(*, function_id: str, countdown: float = 0) -> None:
    """Have a worker bring the function's provisioned environments in line with its setting: the
    worker that holds them (they live together, so one worker can count them), else any."""
    from .tasks import provision

    holder = placement.provisioned_holder(function_id)
    queue = placement.worker_queue(holder) if holder else placement.SHARED_QUEUE
    provision.apply_async((function_id,), queue=queue, expires=120 + countdown, countdown=countdown)


def provisioned_apply_here(*, function_id: str) -> int:
    """On a worker: as many provisioned environments of the latest revision as the function asks
    for, here; those of older revisions (or beyond the number) provisioned no more. Returns how
    many are ready. The outcome goes to the function's stream as a ``provisioned`` event."""
    from .worker import runtime

    rt = runtime()
    holder = placement.provisioned_holder(function_id)
    if holder not in (None, rt.worker):  # moved meanwhile: the holder does it
        provisioned_apply(function_id=function_id)
        return 0
    with placement.provisioning(function_id, PROVISION_LOCK_S) as mine:
        if not mine:
            provisioned_apply(function_id=function_id, countdown=2)  # another is at it: after it, again
            return 0
        function = Function.objects.select_related("latest").filter(pk=function_id).first()
        wanted = function.provisioned_concurrency if function is not None else 0
        spec = rt.revision(function.latest_id, function.idle_timeout_s)[1] if wanted else None
        keys = {key for key, ids in rt.known_versions().items() if ids[0] == function_id}
        held = [e for e in rt.pool.environments() if e["function"] in keys and e["provisioned"]]
        current = [e for e in held if spec is not None and e["function"] == spec.key]
        for env in [e for e in held if e not in current] + current[wanted:]:
            rt.pool.unprovision(env["id"])
        ready, error = min(len(current), wanted), None
        if wanted > ready:
            try:
                ready += len(rt.pool.provision(spec, wanted - ready))
            except PoolError as exc:
                error = str(exc)[:300]
        placement.set_provisioned_holder(function_id, rt.worker if ready else None)
    rt.publisher.submit(
        {
            "type": "provisioned",
            "time": int(time.time() * 1000),
            "function": spec.key if spec else "",
            "function_name": "",
            "environment": "",
            "request_id": None,
            "function_id": function_id,
            "revision": str(function.latest.number) if function is not None else "",
            "wanted": wanted,
            "ready": ready,
            "error": error,
        }
    )
    rt.publisher.flush()
    return ready


CONTROLS = ("evict", "reset", "age")


def environment_control(*, function: Function, environment_id: str, action: str, seconds: float = 0) -> str:
    """Make a lesson happen now, on the worker holding the environment: evict it (as its idle
    eviction would), reset its runtime (as a crash would), or move its idle clock on. Returns
    the worker; the page sees the outcome in the event stream."""
    if action not in CONTROLS:
        raise LabError(f"Action must be one of {', '.join(CONTROLS)}", field="action")
    if action == "age" and (
        isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds <= 86400
    ):
        raise LabError("Seconds must be between 0 and 86,400", field="seconds")
    env = next((e for e in stream.environments(str(function.pk)) if e["id"] == environment_id), None)
    if env is None:
        raise NotFound("No such live environment of this function", code="ResourceNotFoundException")
    from .tasks import control_environment

    control_environment.apply_async(
        (environment_id, action, float(seconds)), queue=placement.worker_queue(env["worker"]), expires=30
    )
    return env["worker"]


INSPECT_WAIT_S = 3.0  # how long a request waits for the worker holding the environment


def environment_inspect(*, function: Function, environment_id: str) -> dict:
    """The State inspector: what a frozen environment of the function holds (its module's names
    as described before its last freeze, its threads, its /tmp now), asked of the worker that
    holds it, which answers on a Redis list the request waits on for ``INSPECT_WAIT_S``."""
    env = next((e for e in stream.environments(str(function.pk)) if e["id"] == environment_id), None)
    if env is None:
        raise NotFound("No such live environment of this function", code="ResourceNotFoundException")
    if env.get("state") != "frozen":
        raise _busy(env.get("state") or "busy")
    from .tasks import inspect_environment

    reply_to = rds.key("inspect", uuid.uuid4().hex)
    inspect_environment.apply_async(
        (environment_id, reply_to), queue=placement.worker_queue(env["worker"]), expires=INSPECT_WAIT_S
    )
    answer = rds.client().blpop([reply_to], timeout=INSPECT_WAIT_S)
    if answer is None:
        raise NoAnswer(
            f"The worker holding this environment did not answer within {INSPECT_WAIT_S:.0f} s",
            code="ServiceException",
        )
    answer = json.loads(answer[1])
    if answer.get("error") == "busy":
        raise _busy("busy")
    if answer.get("error"):
        raise NotFound("No such live environment of this function", code="ResourceNotFoundException")
    return answer["state"]


def _busy(state: str) -> Conflict:
    return Conflict(
        f"The environment is {state}: it can be inspected once it is frozen again",
        code="ResourceConflictException",
    )


def environment_inspect_here(*, environment_id: str, reply_to: str) -> None:
    """On a worker: inspect the environment and put the answer where the request waits for it."""
    from .worker import runtime

    try:
        answer = {"state": runtime().pool.inspect(environment_id)}
    except EnvironmentNotFound:
        answer = {"error": "not_found"}
    except EnvironmentBusy:
        answer = {"error": "busy"}
    client = rds.client()
    with client.pipeline() as pipe:  # the list outlives a request that gave up only briefly
        pipe.rpush(reply_to, json.dumps(answer))
        pipe.expire(reply_to, 30)
        pipe.execute()


def environment_control_here(*, environment_id: str, action: str, seconds: float) -> bool:
    """On a worker: carry out the control (False if the environment is busy or gone by now)."""
    from .worker import runtime

    pool = runtime().pool
    if action == "evict":
        return pool.shutdown_environment(environment_id, reason="idle")
    if action == "reset":
        return pool.reset_environment(environment_id)
    return pool.age_environment(environment_id, seconds)
